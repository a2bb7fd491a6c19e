/* folds.c: seeded shuffles, stratified folds, mean and deviation (see
 * folds.h). */
#include "folds.h"

#include <math.h>
#include <stdlib.h>

#include "cli.h"
#include "hash.h"

void shuffle(size_t *idx, size_t n, uint64_t *state)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)splitmix64_below(state, i);
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
