/* divergence.c: Jensen-Shannon divergence, total variation and Hellinger
 * distance between two histograms, the sparse pair of histograms jsdiv fills,
 * and the fixed binnings (see divergence.h and jsdiv(1)). */
#include "divergence.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "cli.h"

/* Rounding can leave a sum a hair outside [0, 1]. */
static double unit_clamp(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* One bin's share of each divergence, p and q already normalised. The
 * Jensen-Shannon term is 1/2 p log2(2p / (p + q)) + 1/2 q log2(2q / (p + q)),
 * with 0 log 0 = 0; Hellinger accumulates (sqrt p - sqrt q)^2, whose half sum
 * is 1 - sum sqrt(p q) but is exactly 0 for equal inputs. */
struct div_sums {
	double jsd, l1, hell;
};

static void add_bin(struct div_sums *s, double p, double q)
{
	double m = p + q;
	if (p > 0)
		s->jsd += 0.5 * p * log2(2 * p / m);
	if (q > 0)
		s->jsd += 0.5 * q * log2(2 * q / m);
	s->l1 += fabs(p - q);
	double r = sqrt(p) - sqrt(q);
	s->hell += r * r;
}

static void finish(const struct div_sums *s, struct divergence *d)
{
	d->jsd = unit_clamp(s->jsd);
	d->tvd = unit_clamp(0.5 * s->l1);
	d->hellinger = sqrt(unit_clamp(0.5 * s->hell));
}

int divergence_dense(const double *p, const double *q, size_t n, struct divergence *d)
{
	double tp = 0, tq = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(p[i]) || !isfinite(q[i]) || p[i] < 0 || q[i] < 0)
			return -1;
		tp += p[i];
		tq += q[i];
	}
	if (!(tp > 0) || !(tq > 0))
		return -1;
	struct div_sums s = { 0, 0, 0 };
	for (size_t i = 0; i < n; i++)
		add_bin(&s, p[i] / tp, q[i] / tq);
	finish(&s, d);
	return 0;
}

/* ------------------------------------------------------------ sparse pair */

static int bin_free(const struct hist_bin *b)
{
	return b->n[0] == 0 && b->n[1] == 0;
}

void hist2_init(struct hist2 *h)
{
	memset(h, 0, sizeof *h);
}

/* The slot of KEY: its bin, or the free slot where it would go. */
static struct hist_bin *slot(const struct hist2 *h, uint64_t key)
{
	size_t mask = h->cap - 1;
	for (size_t i = mix64(key) & mask;; i = (i + 1) & mask)
		if (bin_free(&h->bin[i]) || h->bin[i].key == key)
			return &h->bin[i];
}

static void grow_table(struct hist2 *h)
{
	struct hist2 old = *h;
	h->cap = old.cap ? old.cap * 2 : 64;
	h->bin = xcalloc(h->cap, sizeof *h->bin);
	for (size_t i = 0; i < old.cap; i++)
		if (!bin_free(&old.bin[i]))
			*slot(h, old.bin[i].key) = old.bin[i];
	free(old.bin);
}

void hist2_add(struct hist2 *h, uint64_t key, int side)
{
	/* at most half full, so probes stay short */
	if (2 * (h->used + 1) > h->cap)
		grow_table(h);
	struct hist_bin *b = slot(h, key);
	if (bin_free(b)) {
		b->key = key;
		h->used++;
	}
	b->n[side != 0]++;
	h->total[side != 0]++;
}

uint64_t hist2_count(const struct hist2 *h, uint64_t key, int side)
{
	if (h->cap == 0)
		return 0;
	const struct hist_bin *b = slot(h, key);
	return bin_free(b) ? 0 : b->n[side != 0];
}

int hist2_divergence(const struct hist2 *h, struct divergence *d)
{
	if (h->total[0] == 0 && h->total[1] == 0)
		return -1;
	if (h->total[0] == 0 || h->total[1] == 0) {
		d->jsd = d->tvd = d->hellinger = 1;
		return 1;
	}
	struct div_sums s = { 0, 0, 0 };
	double tp = (double)h->total[0], tq = (double)h->total[1];
	for (size_t i = 0; i < h->cap; i++)
		if (!bin_free(&h->bin[i]))
			add_bin(&s, (double)h->bin[i].n[0] / tp, (double)h->bin[i].n[1] / tq);
	finish(&s, d);
	return 0;
}

static int by_key(const void *a, const void *b)
{
	uint64_t x = ((const struct hist_bin *)a)->key, y = ((const struct hist_bin *)b)->key;
	return (x > y) - (x < y);
}

struct hist_bin *hist2_sorted(const struct hist2 *h, size_t *n)
{
	struct hist_bin *out = xmalloc((h->used ? h->used : 1) * sizeof *out);
	size_t k = 0;
	for (size_t i = 0; i < h->cap; i++)
		if (!bin_free(&h->bin[i]))
			out[k++] = h->bin[i];
	qsort(out, k, sizeof *out, by_key);
	*n = k;
	return out;
}

void hist2_free(struct hist2 *h)
{
	free(h->bin);
	hist2_init(h);
}

/* ------------------------------------------------------------ binnings */

/* Values a rounding error below an edge (0.15 / 0.05 computed as 2.99999...)
 * belong to the bin the edge opens. */
#define EDGE_SLACK 1e-9

uint64_t bin_linear(double x, double width, uint64_t nbins)
{
	if (!(x > 0)) /* also NaN */
		return 0;
	double k = floor(x / width + EDGE_SLACK);
	return k >= (double)(nbins - 1) ? nbins - 1 : (uint64_t)k;
}

uint64_t bin_log(double x, double lo, unsigned per_decade, unsigned decades)
{
	uint64_t top = 2 + (uint64_t)per_decade * decades;
	if (isnan(x) || x < 0)
		return 0;
	if (x < lo)
		return 1;
	double k = floor(per_decade * log10(x / lo) + EDGE_SLACK);
	return k >= (double)(top - 2) ? top : 2 + (uint64_t)k;
}

double bin_log_edge(uint64_t key, double lo, unsigned per_decade)
{
	if (key == 0)
		return -1;
	if (key == 1)
		return 0;
	return lo * pow(10, (double)(key - 2) / per_decade);
}

#define COUNT_PER_DECADE 10
#define COUNT_DECADES 12

uint64_t bin_count(uint64_t x, uint64_t exact)
{
	if (x < exact)
		return x;
	return exact + bin_log((double)x, (double)exact, COUNT_PER_DECADE, COUNT_DECADES) - 2;
}

double bin_count_edge(uint64_t key, uint64_t exact)
{
	if (key < exact)
		return (double)key;
	return bin_log_edge(key - exact + 2, (double)exact, COUNT_PER_DECADE);
}
