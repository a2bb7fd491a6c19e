/* sgemm-rate.c: BLIS's own sgemm rate on this machine, the ceiling the
 * training benchmark (bench/train.sh) measures tgpt's achieved GFLOP/s
 * against. Times C (m,n) = A (m,k) . B^T with B stored (n,k), as the model's
 * linear layers call it; the default shape is the bench model's feed-forward
 * product at context 12,032 (12032x256 times 256x1024). Prints one line:
 *   sgemm MxNxK threads J runs R: best X GFLOP/s, median Y GFLOP/s
 * Built by `make build/bench/sgemm-rate` (and by `make bench`). */
#include <blis.h>
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <time.h>

#include "../common/cli.h"

static const char usage[] =
	"usage: sgemm-rate [-m rows] [-n cols] [-k inner] [-j threads] [-r runs]\n"
	"  defaults: -m 12032 -n 1024 -k 256 -j 2 -r 10 (best and median of the runs\n"
	"  after one warm-up)\n";

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* A size option: a whole number in [1, max], else a usage error. */
static long size_arg(const char *s, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > max) {
		fprintf(stderr, "sgemm-rate: '%s' is not a number in [1, %ld]\n%s", s, max, usage);
		exit(EX_USAGE);
	}
	return v;
}

/* A buffer of count floats with small non-zero values (no denormals). */
static float *filled(size_t count)
{
	float *p = malloc(count * sizeof *p);
	if (!p)
		err(EX_OSERR, "malloc");
	for (size_t i = 0; i < count; i++)
		p[i] = (float)((i * 7919 % 1000) + 1) * 1e-3f;
	return p;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long m = 12032, n = 1024, k = 256, threads = 2, runs = 10;
	int opt;
	while ((opt = getopt_long(argc, argv, "m:n:k:j:r:h", longopts, NULL)) != -1)
		switch (opt) {
		case 'm': m = size_arg(optarg, 1 << 16); break;
		case 'n': n = size_arg(optarg, 1 << 16); break;
		case 'k': k = size_arg(optarg, 1 << 16); break;
		case 'j': threads = size_arg(optarg, 1024); break;
		case 'r': runs = size_arg(optarg, 10000); break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EX_USAGE;
		}
	if (optind != argc) {
		fputs(usage, stderr);
		return EX_USAGE;
	}
	float *a = filled((size_t)m * k), *b = filled((size_t)n * k);
	float *c = calloc((size_t)m * n, sizeof *c), one = 1.0f, zero = 0.0f;
	double *secs = calloc(runs, sizeof *secs);
	if (!c || !secs)
		err(EX_OSERR, "calloc");
	/* The thread count as the model sets it (model_set_threads). */
	bli_thread_set_num_threads(threads);
	for (long r = -1; r < runs; r++) {	/* run -1 is the warm-up */
		double t = now_seconds();
		bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, m, n, k, &one, a, k, 1, b, k, 1, &zero,
			c, n, 1);
		if (r >= 0)
			secs[r] = now_seconds() - t;
	}
	qsort(secs, runs, sizeof *secs, cmp_double);
	double flop = 2.0 * m * n * k;
	printf("sgemm %ldx%ldx%ld threads %ld runs %ld: best %.1f GFLOP/s, median %.1f GFLOP/s\n",
		m, n, k, threads, runs, flop / secs[0] / 1e9, flop / secs[runs / 2] / 1e9);
	free(a), free(b), free(c), free(secs);
	return 0;
}
