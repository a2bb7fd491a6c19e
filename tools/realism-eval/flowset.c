/* flowset.c: the flow vectors realism-eval's two modes classify, and the
 * XGBoost classifier (boost.h) trained on some of their rows and tested on
 * others. */
#include <stdlib.h>
#include <string.h>

#include "boost.h"
#include "realism.h"

float *flowset_row(struct flowset *s)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		s->x = xrealloc(s->x, cap * s->ncol * sizeof *s->x);
		s->label = xrealloc(s->label, cap * sizeof *s->label);
		s->source = xrealloc(s->source, cap * sizeof *s->source);
		s->first_ns = xrealloc(s->first_ns, cap * sizeof *s->first_ns);
		s->cap = cap;
	}
	return s->x + s->n++ * s->ncol;
}

void flowset_free(struct flowset *s)
{
	free(s->x);
	free(s->label);
	free(s->source);
	free(s->first_ns);
	memset(s, 0, sizeof *s);
}

/* Rows idx[0..n) of the set, copied into one matrix. */
static float *gather(const struct flowset *s, const size_t *idx, size_t n)
{
	float *m = xmalloc((n ? n : 1) * s->ncol * sizeof *m);
	for (size_t i = 0; i < n; i++)
		memcpy(m + i * s->ncol, s->x + idx[i] * s->ncol, s->ncol * sizeof *m);
	return m;
}

/* Trains on the rows train[] and predicts the rows test[] (classes y). */
void fit_predict(const struct options *o, int n_classes, const struct flowset *s,
			const int *y, const size_t *train, size_t n_train, const size_t *test,
			size_t n_test, int *pred)
{
	struct boost_params bp = { n_classes, o->rounds, o->depth, o->eta, o->threads, o->seed };
	float *xtr = gather(s, train, n_train), *xte = gather(s, test, n_test);
	int *ytr = xmalloc((n_train ? n_train : 1) * sizeof *ytr);
	for (size_t i = 0; i < n_train; i++)
		ytr[i] = y[train[i]];
	boost_fit_predict(&bp, xtr, ytr, n_train, xte, n_test, s->ncol, pred);
	free(xtr);
	free(xte);
	free(ytr);
}
