/* divergence.h: how far apart two histograms are (Jensen-Shannon divergence
 * in base 2, total variation, Hellinger distance), a sparse pair of
 * histograms over 64-bit bin keys, and the fixed binnings jsdiv(1) documents.
 * Pure math: no I/O, so the unit test and realism-eval can link it alone. */
#ifndef TGPT_DIVERGENCE_H
#define TGPT_DIVERGENCE_H

#include <stddef.h>
#include <stdint.h>

/* All three lie in [0, 1]: 0 for equal distributions, 1 for disjoint ones. */
struct divergence {
	double jsd;       /* Jensen-Shannon divergence, log base 2 */
	double tvd;       /* total variation: half the L1 distance */
	double hellinger; /* sqrt(1 - sum sqrt(p q)) */
};

/* P and Q are counts (or weights) over the same n bins; each is normalised by
 * its own total. Returns 0, or -1 (d untouched) when a total is not positive
 * or a count is negative or not finite. */
int divergence_dense(const double *p, const double *q, size_t n, struct divergence *d);

/* Two histograms over the same bins, side 0 and side 1, stored sparsely:
 * only the bins either side has seen. */
struct hist_bin {
	uint64_t key;
	uint64_t n[2];
};
struct hist2 {
	struct hist_bin *bin; /* open addressing; a bin with n[0] + n[1] == 0 is free */
	size_t cap, used;     /* cap is a power of two (or 0) */
	uint64_t total[2];
};

void hist2_init(struct hist2 *h);
void hist2_add(struct hist2 *h, uint64_t key, int side);
/* Count of a bin on a side (0 when never seen). */
uint64_t hist2_count(const struct hist2 *h, uint64_t key, int side);
/* Divergences of the two sides. Returns 0; 1 when exactly one side is empty
 * (d is then all ones: nothing on one side is as far as it gets); -1 when
 * both are (d untouched: there is nothing to compare). */
int hist2_divergence(const struct hist2 *h, struct divergence *d);
/* The used bins, sorted by key, in a new array (free it); *n their number. */
struct hist_bin *hist2_sorted(const struct hist2 *h, size_t *n);
void hist2_free(struct hist2 *h);

/* ---- fixed binnings: values to bin keys (see jsdiv(1), BINNING) */

/* Bins of WIDTH from 0: key floor(x / width), the last one (nbins - 1) also
 * taking everything above. Negative x goes to bin 0. */
uint64_t bin_linear(double x, double width, uint64_t nbins);

/* Logarithmic bins, PER_DECADE to a decade, from LO up to LO * 10^DECADES:
 * key 0 negative values, key 1 [0, lo), key 2 + k the bin
 * [lo 10^(k/per_decade), lo 10^((k+1)/per_decade)); values at or above the
 * top edge share the last key, 2 + decades * per_decade. */
uint64_t bin_log(double x, double lo, unsigned per_decade, unsigned decades);
/* The lower edge of a bin_log key (-1 for key 0, 0 for key 1). */
double bin_log_edge(uint64_t key, double lo, unsigned per_decade);

/* Counts: exact below EXACT, then bin_log from EXACT (10 to a decade, up to
 * 10^12): key EXACT + k for the k-th logarithmic bin. */
uint64_t bin_count(uint64_t x, uint64_t exact);
double bin_count_edge(uint64_t key, uint64_t exact);

#endif
