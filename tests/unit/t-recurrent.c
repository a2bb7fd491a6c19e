/* t-recurrent.c: unit tests of the recurrent form of the tgpt model
 * (tools/tgpt/recurrent.h): its logits equal the parallel forward's at every
 * position on the tiny preset and its variants (reversible or plain, GELU or
 * GLU, axial or learned positions, local and linear heads, token shift on
 * or off) and on the bench preset; streams stepped together or apart agree;
 * the state has a fixed size and a step allocates nothing; positions past
 * the context run; snapshots rewind exactly; thread counts agree. */
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/tgpt/model.h"
#include "../../tools/tgpt/recurrent.h"
#include "../tap.h"

static uint64_t rng_state = 4242;

static uint64_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return rng_state >> 33;
}

static float uniform(void)	/* [-1, 1) */
{
	return (float)((double)rnd() / 2147483648.0 - 1.0);
}

/* A model whose every parameter matters: the presets initialise linear
 * weights at 0.02 and gains at exactly 1, which would leave attention
 * nearly uniform and the logits nearly flat. */
static void init_model(struct model *m, struct model_config c, uint64_t seed)
{
	c.init_std = 0.25f;
	c.emb_std = 1.0f;
	c.pos_std = 1.0f;
	if (model_init(m, &c, seed))
		abort();
	for (size_t i = 0; i < m->n_params; i++)
		m->params_mem[i] += 0.1f * uniform();
}

static void random_tokens(int *tok, int n, int vocab)
{
	for (int i = 0; i < n; i++)
		tok[i] = (int)(rnd() % vocab);
}

/* The largest |a - b| over n, and the largest |b|. */
static double max_diff(const float *a, const float *b, size_t n, double *scale)
{
	double d = 0.0, s = 0.0;
	for (size_t i = 0; i < n; i++) {
		double x = fabs((double)a[i] - b[i]);
		d = x > d || x != x ? x : d;
		s = fabs(b[i]) > s ? fabs(b[i]) : s;
	}
	*scale = s;
	return d;
}

/* Recurrent logits against model_forward's for NSEQ sequences of T tokens:
 * streams 0 and 1 step together, stream 2 alone through rec_feed. */
#define NSEQ 3
static void check_equal(const char *name, struct model_config c, int T)
{
	struct model m;
	struct rec r;
	int V = c.vocab, *tok = malloc(sizeof(int) * NSEQ * T);
	float *rl = malloc(sizeof(float) * NSEQ * T * V);
	init_model(&m, c, 7);
	random_tokens(tok, NSEQ * T, V);
	model_forward(&m, tok, NULL, NSEQ, T);
	const float *pl = model_logits(&m);
	ok(rec_init(&r, &m, NSEQ) == 0, "rec_init");
	for (int t = 0; t < T; t++) {
		int step[NSEQ] = { tok[t], tok[T + t], -1 };
		rec_step(&r, step);
		for (int b = 0; b < 2; b++)
			memcpy(rl + ((size_t)b * T + t) * V, rec_logits(&r, b), V * sizeof(float));
	}
	for (int t = 0; t < T; t++) {
		rec_feed(&r, 2, tok + 2 * T + t, 1);
		memcpy(rl + ((size_t)2 * T + t) * V, rec_logits(&r, 2), V * sizeof(float));
	}
	double scale, d = max_diff(rl, pl, (size_t)NSEQ * T * V, &scale);
	char what[160];
	snprintf(what, sizeof what, "%s: recurrent logits = parallel at all %d positions of %d "
		"sequences (max diff %.2g, logits up to %.3g)", name, T, NSEQ, d, scale);
	ok(d <= 1e-4 * (scale > 1.0 ? scale : 1.0) && scale > 0.5, what);
	is_int(rec_pos(&r, 0), T, "position counts the tokens fed");
	rec_free(&r);
	model_free(&m);
	free(tok);
	free(rl);
}

static void test_equal_parallel(void)
{
	struct model_config c = model_config_tiny();	/* W 8, chunk 8, T 64 */
	check_equal("tiny (reversible, axial, shift, 1 local + 1 linear head)", c, 64);
	check_equal("tiny, 3 windows and a half", c, 28);
	c.reversible = 0;
	check_equal("tiny plain residual", c, 40);
	c = model_config_tiny();
	c.ff_glu = 1;
	check_equal("tiny GLU", c, 40);
	c = model_config_tiny();
	c.pos = POS_LEARNED;
	check_equal("tiny learned positions", c, 40);
	c = model_config_tiny();
	c.token_shift = 0;
	check_equal("tiny without token shift", c, 40);
	c = model_config_tiny();
	c.n_head = 3, c.n_local = 3;
	check_equal("tiny all local heads", c, 40);
	c = model_config_tiny();
	c.n_local = 0, c.chunk = 5;
	check_equal("tiny all linear heads (chunk 5)", c, 40);
	c = model_config_tiny();
	c.emb_dim = c.d_model, c.n_head = 4, c.n_local = 2, c.d_head = 8, c.qkv_bias = 1;
	c.head_bias = 0, c.axial_w = 12, c.max_ctx = 64, c.window = 16;
	check_equal("tiny E = D, 2 + 2 heads, qkv bias, axial 12, window 16", c, 64);
	c = model_config_tiny();
	c.d_model = 33;	/* odd width: the shift splits 16 / 17 */
	check_equal("tiny odd width", c, 24);
	c = model_config_bench();
	c.max_ctx = 96, c.n_layer = 2;
	check_equal("bench shape (2 layers, vocab 300)", c, 96);
}

/* ------------------------------------------------------------------ fixed state */

static void test_fixed_state(void)
{
	struct model_config c = model_config_tiny();
	struct model m;
	struct rec r;
	init_model(&m, c, 3);
	rec_init(&r, &m, 2);
	size_t per_layer = 2 * (c.d_model / 2) + 2 * 2 * c.window * c.d_head +
		(c.d_head * c.d_head + c.d_head);
	is_int(rec_state_floats(&c), c.n_layer * per_layer,
		"state size: shift rows, ring, S and z");
	size_t floats = r.state_floats;
	int tok[2];
	for (int t = 0; t < 50; t++) {	/* warm up (BLIS's buffer pools) */
		tok[0] = tok[1] = (int)(rnd() % 256);
		rec_step(&r, tok);
	}
	struct mallinfo2 before = mallinfo2();
	int finite = 1;
	for (int t = 0; t < 4 * c.max_ctx; t++) {	/* well past the context */
		tok[0] = tok[1] = (int)(rnd() % 256);
		rec_step(&r, tok);
		for (int v = 0; v < c.vocab; v++)
			finite &= isfinite(rec_logits(&r, 0)[v]);
	}
	struct mallinfo2 after = mallinfo2();
	is_int(r.state_floats, floats, "state size unchanged after 256 more steps");
	is_int(after.uordblks, before.uordblks, "steps allocate nothing (heap in use unchanged)");
	is_int(rec_pos(&r, 1), 50 + 4 * c.max_ctx, "positions run past max_ctx");
	ok(finite, "logits stay finite past max_ctx (axial A row clamped)");

	rec_free(&r);
	model_free(&m);
}

/* Past max_ctx with learned positions and linear heads only, position does
 * not enter the state: a stream at t >= max_ctx and one moved further on
 * give the same logits for the same token. */
static void test_learned_clamp(void)
{
	struct model_config c = model_config_tiny();
	c.pos = POS_LEARNED, c.n_local = 0;
	struct model m;
	struct rec r;
	init_model(&m, c, 11);
	rec_init(&r, &m, 2);
	int tok[2] = { 5, 5 };
	for (int t = 0; t < c.max_ctx + 3; t++)
		rec_step(&r, tok);
	struct rec_snapshot s;
	rec_snapshot_init(&s, &r);
	rec_save(&r, 0, &s);
	s.pos += 1000;	/* the same state, much later */
	rec_restore(&r, 1, &s);
	int next[2] = { 77, 77 };
	rec_step(&r, next);
	is_mem(rec_logits(&r, 0), rec_logits(&r, 1), c.vocab * sizeof(float),
		"learned: every position past the table uses its last row");
	rec_snapshot_free(&s);
	rec_free(&r);
	model_free(&m);
}

/* ------------------------------------------------------------------ rewind */

static void test_rewind(void)
{
	struct model_config c = model_config_tiny();
	struct model m;
	struct rec r;
	struct rec_snapshot s;
	init_model(&m, c, 5);
	rec_init(&r, &m, 3);
	rec_snapshot_init(&s, &r);
	int V = c.vocab, prefix[21], cont[30], other[30];
	random_tokens(prefix, 21, 256);
	random_tokens(cont, 30, 256);
	random_tokens(other, 30, 256);
	rec_feed(&r, 0, prefix, 21);	/* mid-window, mid-block */
	rec_save(&r, 0, &s);
	float *want = malloc(sizeof(float) * 30 * V), *got = malloc(sizeof(float) * 30 * V);
	for (int t = 0; t < 30; t++) {
		rec_feed(&r, 0, cont + t, 1);
		memcpy(want + (size_t)t * V, rec_logits(&r, 0), V * sizeof(float));
	}
	rec_restore(&r, 0, &s);
	rec_feed(&r, 0, other, 30);	/* wander off over more than a ring's worth */
	rec_restore(&r, 0, &s);
	is_int(rec_pos(&r, 0), 21, "restore puts the position back");
	is_mem(rec_logits(&r, 0), s.state + s.state_floats, V * sizeof(float),
		"restore puts the logits back");
	for (int t = 0; t < 30; t++) {
		rec_feed(&r, 0, cont + t, 1);
		memcpy(got + (size_t)t * V, rec_logits(&r, 0), V * sizeof(float));
	}
	is_mem(got, want, sizeof(float) * 30 * V,
		"rewound stream continues identically (30 steps)");
	rec_restore(&r, 2, &s);	/* into another stream */
	for (int t = 0; t < 30; t++) {
		rec_feed(&r, 2, cont + t, 1);
		memcpy(got + (size_t)t * V, rec_logits(&r, 2), V * sizeof(float));
	}
	is_mem(got, want, sizeof(float) * 30 * V, "a snapshot restored into another stream too");
	rec_reset(&r, 1);
	rec_feed(&r, 1, prefix, 21);
	rec_feed(&r, 1, cont, 30);
	is_mem(rec_logits(&r, 1), want + (size_t)29 * V, V * sizeof(float),
		"reset stream replays the same sequence to the same logits");
	free(want);
	free(got);
	rec_snapshot_free(&s);
	rec_free(&r);
	model_free(&m);
}

/* ------------------------------------------------------------------ threads */

/* The logits of stream 0 after 24 steps with B streams on `threads`
 * threads (every step parallel, however small). */
static float *run_streams(const struct model *m, int B, int threads)
{
	struct rec r;
	int V = m->c.vocab, tok[8];
	model_set_threads(threads);
	rec_init(&r, m, B);
	r.par_min_macs = 0;
	for (int t = 0; t < 24; t++) {
		for (int b = 0; b < B; b++)
			tok[b] = (t * 31 + b * 7) % 256;
		rec_step(&r, tok);
	}
	float *l = malloc(sizeof(float) * V);
	memcpy(l, rec_logits(&r, 0), sizeof(float) * V);
	rec_free(&r);
	model_set_threads(1);
	return l;
}

static void test_threads(void)
{
	struct model_config c = model_config_tiny();
	/* d_ff 72: the threads' column shares are uneven */
	c.d_model = 64, c.n_head = 8, c.n_local = 4, c.d_ff = 72, c.ff_glu = 1;
	struct model m;
	init_model(&m, c, 9);
	float *a = run_streams(&m, 8, 1), *b = run_streams(&m, 8, 2), *d = run_streams(&m, 1, 2);
	is_mem(a, b, sizeof(float) * c.vocab, "1 and 2 threads: the same bits");
	is_mem(a, d, sizeof(float) * c.vocab, "a stream alone or beside 7 others: the same bits");
	free(a), free(b), free(d);
	model_free(&m);
	c = model_config_bench();
	c.n_layer = 1, c.max_ctx = 128;
	init_model(&m, c, 9);
	a = run_streams(&m, 8, 2), b = run_streams(&m, 1, 1);
	is_mem(a, b, sizeof(float) * c.vocab, "bench shape: 8 streams on 2 threads = 1 on 1");
	free(a), free(b);
	model_free(&m);
}

/* ------------------------------------------------------------------ half weights */

/* Half-precision weights: near the parallel forward, and the same bits
 * through AVX2 + F16C as through plain C. */
static void test_half(void)
{
	struct model_config c = model_config_bench();
	c.n_layer = 2, c.max_ctx = 64, c.n_local = 2, c.window = 16, c.ff_glu = 1, c.d_ff = 200;
	c.emb_dim = 72;	/* E != D (w_in, w_out); 72 and d_ff 200 leave tails of 8 */
	struct model m;
	struct rec r, rc;
	enum { T = 40, NS = 5 };
	int V = c.vocab, tok[NS * T];
	init_model(&m, c, 13);
	random_tokens(tok, NS * T, 256);
	model_forward(&m, tok, NULL, NS, T);
	rec_init(&r, &m, NS);
	rec_init(&rc, &m, NS);
	rec_use_half(&r);
	rec_use_half(&rc);
	rc.half_simd = 0;
	r.par_min_macs = 0;	/* split the columns over the threads */
	float *got = malloc(sizeof(float) * NS * T * V);
	int same = 1;
	model_set_threads(2);
	for (int t = 0; t < T; t++) {
		int step[NS];
		for (int b = 0; b < NS; b++)
			step[b] = tok[b * T + t];
		rec_step(&r, step);
		rec_step(&rc, step);
		for (int b = 0; b < NS; b++)
			memcpy(got + ((size_t)b * T + t) * V, rec_logits(&r, b), V * sizeof(float));
		same &= memcmp(r.logits, rc.logits, sizeof(float) * NS * V) == 0;
	}
	model_set_threads(1);
	double scale, d = max_diff(got, model_logits(&m), (size_t)NS * T * V, &scale);
	char what[160];
	snprintf(what, sizeof what, "half weights: logits within 1e-2 of their scale of the "
		"parallel forward's (max diff %.2g, scale %.3g)", d, scale);
	ok(d < 1e-2 * scale && d > 0, what);
	ok(same, rec_half_simd() ? "half weights: AVX2 + F16C and plain C give the same bits"
		: "half weights: plain C (no AVX2 + F16C here) agrees with itself");
	free(got);
	rec_free(&r);
	rec_free(&rc);
	model_free(&m);
}

int main(void)
{
	model_set_threads(1);
	struct rec r;
	struct model m;
	struct model_config c = model_config_tiny();
	init_model(&m, c, 1);
	ok(rec_init(&r, &m, 0) == -1, "rec_init refuses 0 streams");
	model_free(&m);
	test_equal_parallel();
	test_fixed_state();
	test_learned_clamp();
	test_rewind();
	test_threads();
	test_half();
	return tap_done();
}
