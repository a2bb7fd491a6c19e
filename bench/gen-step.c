/* gen-step.c: times generation with the recurrent tgpt model (recurrent.h):
 * B streams at position P (reached by feeding random tokens, untimed) each
 * sample a token (top-k 26, temperature 1: gen_sample) and feed it back,
 * n times; prints one JSON line per position with the median and best
 * tokens/s over the repeats (each repeat restores the streams to P), for
 * comparison with the PyTorch peer's gen mode
 * (../shared/peers/torch_lingpt.py gen lin_chunk 1 --gen_tokens 256).
 * Built by `make build/bench/gen-step`.
 *   gen-step [-p preset] [-B batch] [-j threads] [-n tokens] [-r repeats] [-k top_k]
 *            [-P f32|f16|int8] [pos...]
 * Positions default to 100 and 10000; -P picks the weights' precision
 * (rec_set_precision; default f32). */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/hash.h"
#include "../tools/tgpt-infer/generate.h"
#include "../tools/tgpt/model.h"
#include "../tools/tgpt/recurrent.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int int_arg(const char *s, int min)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > 100000000)
		errx(EX_USAGE, "bad number %s", s);
	return (int)v;
}

/* Feeds random tokens to every stream until position pos. */
static void fast_forward(struct rec *r, int *tok, long pos, uint64_t *rng)
{
	while (rec_pos(r, 0) < pos) {
		for (int b = 0; b < r->B; b++)
			tok[b] = (int)(splitmix64(rng) % 256);
		rec_step(r, tok);
	}
}

/* Seconds for n tokens per stream: sample from each stream's logits, feed. */
static double time_tokens(struct rec *r, struct gen_sampler *s, int *tok, int n, uint64_t *rng)
{
	double t = now_seconds();
	for (int i = 0; i < n; i++) {
		for (int b = 0; b < r->B; b++)
			tok[b] = gen_sample(s, rec_logits(r, b), NULL, rng);
		rec_step(r, tok);
	}
	return now_seconds() - t;
}

int main(int argc, char **argv)
{
	const char *preset = "bench";
	int B = 1, threads = 2, n = 256, repeats = 5, top_k = 26, prec = REC_F32, opt;
	while ((opt = getopt(argc, argv, "p:B:j:n:r:k:P:")) != -1)
		switch (opt) {
		case 'p': preset = optarg; break;
		case 'B': B = int_arg(optarg, 1); break;
		case 'j': threads = int_arg(optarg, 1); break;
		case 'n': n = int_arg(optarg, 1); break;
		case 'r': repeats = int_arg(optarg, 1); break;
		case 'k': top_k = int_arg(optarg, 0); break;
		case 'P':
			if ((prec = rec_precision_parse(optarg)) < 0)
				errx(EX_USAGE, "bad precision %s (f32, f16 or int8)", optarg);
			break;
		default:
			fprintf(stderr, "usage: gen-step [-p preset] [-B batch] [-j threads] [-n tokens] "
				"[-r repeats] [-k top_k] [-P f32|f16|int8] [pos...]\n");
			return EX_USAGE;
		}
	long dflt[] = { 100, 10000 }, *pos = dflt;
	int npos = 2;
	if (optind < argc) {
		npos = argc - optind;
		pos = calloc(npos, sizeof *pos);
		for (int i = 0; i < npos; i++)
			pos[i] = int_arg(argv[optind + i], 0);
	}
	struct model_config c;
	if (model_config_preset(preset, &c))
		errx(EX_USAGE, "unknown preset %s", preset);
	model_set_threads(threads);
	struct model m;
	if (model_init(&m, &c, 1))
		errx(EX_USAGE, "preset %s: %s", preset, model_config_check(&c));
	struct rec r;
	struct gen_sampler s;
	rec_init(&r, &m, B);
	rec_set_precision(&r, prec);
	gen_sampler_init(&s, c.vocab, top_k, 1.0f);
	struct rec_snapshot *snap = calloc(B, sizeof *snap);
	int *tok = calloc(B, sizeof *tok);
	double *secs = calloc(repeats, sizeof *secs);
	if (!snap || !tok || !secs)
		err(EX_OSERR, "gen-step");
	for (int b = 0; b < B; b++)
		rec_snapshot_init(&snap[b], &r);
	uint64_t rng = 1;
	for (int p = 0; p < npos; p++) {
		for (int b = 0; b < B; b++)
			rec_reset(&r, b);
		fast_forward(&r, tok, pos[p], &rng);
		for (int b = 0; b < B; b++)
			rec_save(&r, b, &snap[b]);
		time_tokens(&r, &s, tok, n < 32 ? n : 32, &rng);	/* warm-up */
		for (int k = 0; k < repeats; k++) {
			for (int b = 0; b < B; b++)
				rec_restore(&r, b, &snap[b]);
			secs[k] = time_tokens(&r, &s, tok, n, &rng);
		}
		qsort(secs, repeats, sizeof *secs, cmp_double);
		double med = secs[repeats / 2], best = secs[0];
		printf("{\"preset\":\"%s\",\"weights\":\"%s\",\"batch\":%d,\"threads\":%d,"
			"\"pos\":%ld,\"tokens\":%d,"
			"\"params\":%zu,\"state_kb_per_stream\":%.0f,\"step_us\":%.1f,"
			"\"tok_per_s\":%.1f,\"best_tok_per_s\":%.1f}\n",
			preset, rec_precision_name(prec), B, threads, pos[p], n, model_num_params(&m),
			r.state_floats * sizeof(float) / 1024.0, med / n * 1e6, (double)B * n / med,
			(double)B * n / best);
		fflush(stdout);
	}
	for (int b = 0; b < B; b++)
		rec_snapshot_free(&snap[b]);
	free(snap), free(tok), free(secs);
	if (pos != dflt)
		free(pos);
	gen_sampler_free(&s);
	rec_free(&r);
	model_free(&m);
	return 0;
}
