/* metrics.c: seeded shuffles, stratified folds, confusion matrices and F1
 * (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Rejection keeps it free of modulo bias. */
uint64_t rng_below(uint64_t *state, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	for (;;) {
		uint64_t r = rng_next(state);
		if (r < limit)
			return r % n;
	}
}

void shuffle(size_t *idx, size_t n, uint64_t *state)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(state, i);
		size_t t = idx[i - 1];
		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}

void stratified_folds(const int *y, size_t n, int n_classes, int k, uint64_t seed, int *fold)
{
	size_t *idx = xmalloc((n ? n : 1) * sizeof *idx);
	uint64_t state = seed;
	size_t dealt = 0;
	for (int c = 0; c < n_classes; c++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (y[i] == c)
				idx[m++] = i;
		shuffle(idx, m, &state);
		/* continue the round where the last class stopped, so that
		 * fold sizes stay even across classes too */
		for (size_t j = 0; j < m; j++)
			fold[idx[j]] = (int)((dealt + j) % (size_t)k);
		dealt += m;
	}
	free(idx);
}

void confusion_init(struct confusion *c, int k)
{
	c->k = k;
	c->counts = xcalloc((size_t)k * (size_t)k, sizeof *c->counts);
}

void confusion_add(struct confusion *c, int truth, int predicted)
{
	c->counts[(size_t)truth * (size_t)c->k + (size_t)predicted]++;
}

void confusion_free(struct confusion *c)
{
	free(c->counts);
	c->counts = NULL;
}

uint64_t confusion_total(const struct confusion *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < (size_t)c->k * (size_t)c->k; i++)
		n += c->counts[i];
	return n;
}

uint64_t confusion_true(const struct confusion *c, int t)
{
	uint64_t n = 0;
	for (int p = 0; p < c->k; p++)
		n += c->counts[(size_t)t * (size_t)c->k + (size_t)p];
	return n;
}

uint64_t confusion_predicted(const struct confusion *c, int p)
{
	uint64_t n = 0;
	for (int t = 0; t < c->k; t++)
		n += c->counts[(size_t)t * (size_t)c->k + (size_t)p];
	return n;
}

struct class_score class_score(const struct confusion *c, int cls)
{
	struct class_score s = { 0, 0, 0 };
	double tp = (double)c->counts[(size_t)cls * (size_t)c->k + (size_t)cls];
	double truth = (double)confusion_true(c, cls), pred = (double)confusion_predicted(c, cls);
	if (pred > 0)
		s.precision = tp / pred;
	if (truth > 0)
		s.recall = tp / truth;
	/* 2 tp / (truth + pred): the harmonic mean, defined whenever either is */
	if (truth + pred > 0)
		s.f1 = 2 * tp / (truth + pred);
	return s;
}

double macro_f1(const struct confusion *c)
{
	double sum = 0;
	int n = 0;
	for (int cls = 0; cls < c->k; cls++) {
		if (confusion_true(c, cls) + confusion_predicted(c, cls) == 0)
			continue;
		sum += class_score(c, cls).f1;
		n++;
	}
	return n ? sum / n : NAN;
}

double accuracy(const struct confusion *c)
{
	uint64_t total = confusion_total(c), right = 0;
	for (int i = 0; i < c->k; i++)
		right += c->counts[(size_t)i * (size_t)c->k + (size_t)i];
	return total ? (double)right / (double)total : NAN;
}

void mean_std(const double *x, size_t n, double *mean, double *std)
{
	double m = 0, ss = 0;
	for (size_t i = 0; i < n; i++)
		m += x[i];
	m = n ? m / (double)n : NAN;
	for (size_t i = 0; i < n; i++)
		ss += (x[i] - m) * (x[i] - m);
	*mean = m;
	*std = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
}
