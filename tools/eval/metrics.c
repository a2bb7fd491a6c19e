/* metrics.c: counts of predictions and the scores they give (metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void scores_init(struct scores *s, uint32_t n_classes, int with_confusion)
{
	memset(s, 0, sizeof *s);
	s->n_classes = n_classes;
	s->tp = xcalloc((size_t)n_classes + 1, sizeof *s->tp);
	s->fp = xcalloc((size_t)n_classes + 1, sizeof *s->fp);
	s->fn = xcalloc((size_t)n_classes + 1, sizeof *s->fn);
	if (with_confusion)
		s->confusion = xcalloc((size_t)n_classes * n_classes + 1, sizeof *s->confusion);
}

void scores_reset(struct scores *s)
{
	size_t n = s->n_classes;
	s->n = s->correct = 0;
	memset(s->tp, 0, n * sizeof *s->tp);
	memset(s->fp, 0, n * sizeof *s->fp);
	memset(s->fn, 0, n * sizeof *s->fn);
	if (s->confusion)
		memset(s->confusion, 0, n * n * sizeof *s->confusion);
}

void scores_add(struct scores *s, uint32_t truth, uint32_t predicted)
{
	s->n++;
	if (truth == predicted) {
		s->correct++;
		s->tp[truth]++;
	} else {
		s->fn[truth]++;
		s->fp[predicted]++;
	}
	if (s->confusion)
		s->confusion[(size_t)truth * s->n_classes + predicted]++;
}

void scores_free(struct scores *s)
{
	free(s->tp);
	free(s->fp);
	free(s->fn);
	free(s->confusion);
	memset(s, 0, sizeof *s);
}

uint64_t scores_cell(const struct scores *s, uint32_t t, uint32_t p)
{
	return s->confusion[(size_t)t * s->n_classes + p];
}

int scores_occurs(const struct scores *s, uint32_t c)
{
	return s->tp[c] || s->fp[c] || s->fn[c];
}

/* num / den, 0 when den is 0 (metrics.h). */
static double ratio(uint64_t num, uint64_t den)
{
	return den ? (double)num / (double)den : 0.0;
}

struct class_score class_score(const struct scores *s, uint32_t c)
{
	uint64_t tp = s->tp[c], fp = s->fp[c], fn = s->fn[c];
	struct class_score cs = {
		.precision = ratio(tp, tp + fp),
		.recall = ratio(tp, tp + fn),
		.f1 = ratio(2 * tp, 2 * tp + fp + fn),
		.support = tp + fn,
	};
	return cs;
}

double scores_accuracy(const struct scores *s)
{
	return s->n ? ratio(s->correct, s->n) : NAN;
}

double scores_macro_f1(const struct scores *s, uint32_t *classes)
{
	double sum = 0;
	uint32_t k = 0;
	for (uint32_t c = 0; c < s->n_classes; c++)
		if (scores_occurs(s, c)) {
			sum += class_score(s, c).f1;
			k++;
		}
	if (classes)
		*classes = k;
	return k ? sum / k : NAN;
}
