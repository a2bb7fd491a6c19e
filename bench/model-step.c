/* model-step.c: times training steps (forward, backward, AdamW) or forwards
 * of the tgpt model on random tokens, for comparison with the PyTorch peer
 * (../shared/peers/torch_lingpt.py); prints one JSON line (median and best of
 * the steps after a warm-up one; sgemm_gflop counts every product of a
 * step, the per-head ones inside the attention included). Built by
 * `make build/bench/model-step`; wrap in /usr/bin/time -v for peak memory.
 *   model-step [-p preset] [-T len] [-B batch] [-j threads] [-s steps] [-f] [-c chunk] */
#include <blis.h>
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../tools/tgpt/layers.h"
#include "../tools/tgpt/model.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* GFLOP/s of one large sgemm of the model's commonest shape, for reference. */
static double sgemm_rate(int N, int D)
{
	float *a = calloc((size_t)N * D, 4), *b = calloc((size_t)4 * D * D, 4);
	float *c = calloc((size_t)N * 4 * D, 4);
	if (!a || !b || !c)
		err(EX_OSERR, "sgemm_rate");
	mm(0, 1, N, 4 * D, D, 1.0f, a, D, b, D, 0.0f, c, 4 * D);
	double t = now_seconds();
	for (int r = 0; r < 3; r++)
		mm(0, 1, N, 4 * D, D, 1.0f, a, D, b, D, 0.0f, c, 4 * D);
	t = now_seconds() - t;
	free(a), free(b), free(c);
	return 3 * 2.0 * N * 4.0 * D * D / t / 1e9;
}

int main(int argc, char **argv)
{
	const char *preset = "bench";
	int T = 12032, B = 1, threads = 2, steps = 3, fwd_only = 0, chunk = 0, opt;
	while ((opt = getopt(argc, argv, "p:T:B:j:s:fc:")) != -1)
		switch (opt) {
		case 'p': preset = optarg; break;
		case 'T': T = atoi(optarg); break;
		case 'B': B = atoi(optarg); break;
		case 'j': threads = atoi(optarg); break;
		case 's': steps = atoi(optarg); break;
		case 'f': fwd_only = 1; break;
		case 'c': chunk = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: model-step [-p preset] [-T len] [-B batch] [-j threads] "
				"[-s steps] [-f] [-c chunk]\n");
			return EX_USAGE;
		}
	struct model_config c;
	if (model_config_preset(preset, &c))
		errx(EX_USAGE, "unknown preset %s", preset);
	if (T > c.max_ctx)
		c.max_ctx = T;
	if (chunk)
		c.chunk = chunk;
	const char *why = model_config_check(&c);
	if (why)
		errx(EX_USAGE, "%s", why);
	model_set_threads(threads);
	struct model m;
	model_init(&m, &c, 1);
	int n = B * T, *tok = malloc(n * sizeof *tok), *tgt = malloc(n * sizeof *tgt);
	srand(1);
	for (int i = 0; i < n; i++)
		tok[i] = rand() % c.vocab, tgt[i] = rand() % c.vocab;

	double *times = calloc(steps + 1, sizeof *times), flops = 0, loss = 0;
	for (int s = 0; s <= steps; s++) {	/* step 0 is the warm-up */
		double f0 = mm_flops, t = now_seconds();
		if (fwd_only) {
			model_forward(&m, tok, NULL, B, T);
		} else {
			model_zero_grad(&m);
			loss = model_forward(&m, tok, tgt, B, T);
			model_backward(&m);
			model_clip_grad(&m, 1.0f);
			model_adamw_update(&m, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1);
		}
		times[s] = now_seconds() - t;
		flops = mm_flops - f0;
	}
	qsort(times + 1, steps, sizeof *times, cmp_double);
	double med = times[1 + steps / 2], best = times[1];
	printf("{\"preset\":\"%s\",\"mode\":\"%s\",\"T\":%d,\"batch\":%d,\"threads\":%d,"
		"\"chunk\":%d,\"params\":%zu,\"loss\":%.4f,\"step_s\":%.4f,\"best_step_s\":%.4f,"
		"\"tok_per_s\":%.1f,"
		"\"sgemm_gflop\":%.1f,\"sgemm_gflops_achieved\":%.1f,\"blis_sgemm_gflops\":%.1f,"
		"\"acts_mb\":%.0f}\n",
		preset, fwd_only ? "fwd" : "train", T, B, threads, c.chunk, model_num_params(&m), loss,
		med, best, n / med, flops / 1e9, flops / med / 1e9, sgemm_rate(n < 12032 ? n : 12032,
		c.d_model), model_acts_bytes(&m, B, T) / 1e6);
	model_free(&m);
	free(tok), free(tgt), free(times);
	return 0;
}
