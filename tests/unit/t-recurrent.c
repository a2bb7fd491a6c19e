/* t-recurrent.c: unit tests of the recurrent form of the tgpt model
 * (tools/tgpt/recurrent.h): its logits equal the parallel forward's at every
 * position on the tiny preset and its variants (reversible or plain, GELU or
 * GLU, axial or learned positions, local and linear heads, token shift on
 * or off) and on the bench preset; streams stepped together or apart agree;
 * the state has a fixed size and a step allocates nothing; positions past
 * the context run; snapshots rewind exactly; thread counts agree;
 * binary16 and int8 weights stay near the float logits, and their SIMD
 * kernels agree with plain C to the bit. */
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

/* ------------------------------------------------------------------ reduced precision */

/* The largest total variation distance between the next-token
 * distributions softmax(a) and softmax(b) over n rows of V logits: how far
 * sampling from a strays from sampling from b. */
static double max_tv(const float *a, const float *b, size_t n, int V)
{
	double worst = 0.0;
	for (size_t i = 0; i < n; i++) {
		const float *x = a + i * V, *y = b + i * V;
		double mx = x[0], my = y[0], sx = 0.0, sy = 0.0, tv = 0.0;
		for (int v = 1; v < V; v++)
			mx = x[v] > mx ? x[v] : mx, my = y[v] > my ? y[v] : my;
		for (int v = 0; v < V; v++)
			sx += exp(x[v] - mx), sy += exp(y[v] - my);
		for (int v = 0; v < V; v++)
			tv += fabs(exp(x[v] - mx) / sx - exp(y[v] - my) / sy);
		worst = tv / 2 > worst ? tv / 2 : worst;
	}
	return worst;
}

/* A model as the presets initialise it (weights N(0, 0.02), about where
 * short training leaves them too), but with the head's weights 6 times
 * larger, so that its logits spread over about +-10 as a trained model's
 * do (the initial ones stay within +-1.5). */
static void init_model_plain(struct model *m, struct model_config c, uint64_t seed)
{
	if (model_init(m, &c, seed))
		abort();
	const struct model_tensor *t = &m->tensors[P_W_HEAD];
	for (size_t i = t->offset; i < t->offset + t->count; i++)
		m->params_mem[i] *= 6.0f;
}

/* Reduced-precision weights on NS streams of T tokens, against the
 * parallel forward's float logits: their largest difference within `bound`
 * of the logits' scale, the next-token distributions within `tv_bound` in
 * total variation; and the best kernels on 2 threads give the same bits as
 * plain C on 1 (and, for int8 where AVX-512 runs, as AVX2). large:
 * init_model's large weights (they amplify every rounding: loose bounds),
 * else init_model_plain's. */
static void check_precision(const char *name, struct model_config c, int large,
	enum rec_precision p, double bound, double tv_bound)
{
	struct model m;
	struct rec r[3];	/* the best kernels, plain C, AVX2 */
	enum { T = 40, NS = 5 };
	int V = c.vocab, tok[NS * T], nr = p == REC_INT8 && rec_simd(p) >= 2 ? 3 : 2;
	if (large)
		init_model(&m, c, 13);
	else
		init_model_plain(&m, c, 13);
	random_tokens(tok, NS * T, 256);
	model_forward(&m, tok, NULL, NS, T);
	for (int k = 0; k < nr; k++) {
		model_set_threads(k ? 1 : 2);
		rec_init(&r[k], &m, NS);
		rec_set_precision(&r[k], p);
	}
	r[0].par_min_macs = 0;	/* split the columns over the threads */
	r[1].simd = 0;
	if (nr > 2)
		r[2].simd = 1;
	float *got = malloc(sizeof(float) * NS * T * V);
	int same = 1;
	for (int t = 0; t < T; t++) {
		int step[NS];
		for (int b = 0; b < NS; b++)
			step[b] = tok[b * T + t];
		for (int k = 0; k < nr; k++) {
			model_set_threads(k ? 1 : 2);
			rec_step(&r[k], step);
			if (k)
				same &= memcmp(r[0].logits, r[k].logits, sizeof(float) * NS * V) == 0;
		}
		for (int b = 0; b < NS; b++)
			memcpy(got + ((size_t)b * T + t) * V, rec_logits(&r[0], b), V * sizeof(float));
	}
	model_set_threads(1);
	double scale, d = max_diff(got, model_logits(&m), (size_t)NS * T * V, &scale);
	double tv = max_tv(got, model_logits(&m), (size_t)NS * T, V);
	char what[200];
	snprintf(what, sizeof what, "%s, %s: logits within %g of their scale of the parallel "
		"forward's (max diff %.2g, scale %.3g)", name, rec_precision_name(p), bound, d, scale);
	ok(d < bound * scale && d > 0 && scale > 2, what);
	snprintf(what, sizeof what, "%s, %s: next-token distributions within %g in total "
		"variation (max %.2g)", name, rec_precision_name(p), tv_bound, tv);
	ok(tv < tv_bound, what);
	snprintf(what, sizeof what, "%s, %s: %s on 2 threads = plain C on 1%s, the same bits",
		name, rec_precision_name(p), rec_simd(p) ? "SIMD kernels" : "plain C (no SIMD here)",
		nr > 2 ? " = AVX2" : "");
	ok(same, what);
	free(got);
	for (int k = 0; k < nr; k++)
		rec_free(&r[k]);
	model_free(&m);
}

static void test_precision(void)
{
	struct model_config c = model_config_bench();
	c.max_ctx = 64;
	check_precision("bench", c, 0, REC_F16, 2e-3, 2e-3);
	check_precision("bench", c, 0, REC_INT8, 3e-2, 4e-2);
	check_precision("bench, large weights", c, 1, REC_F16, 1e-2, 1e-2);
	check_precision("bench, large weights", c, 1, REC_INT8, 5e-2, 0.15);
	c.n_layer = 2, c.n_local = 2, c.window = 16, c.ff_glu = 1, c.d_ff = 200;
	c.emb_dim = 72;	/* E != D (w_in, w_out); 72 and d_ff 200 leave SIMD tails */
	check_precision("mixed heads, GLU, E != D", c, 0, REC_F16, 2e-3, 2e-3);
	check_precision("mixed heads, GLU, E != D", c, 0, REC_INT8, 3e-2, 4e-2);
	check_precision("mixed heads, GLU, E != D, large weights", c, 1, REC_F16, 1e-2, 1e-2);
	check_precision("mixed heads, GLU, E != D, large weights", c, 1, REC_INT8, 0.25, 0.3);
	c = model_config_tiny();	/* odd widths, heads of 6: blocks and pairs padded, */
	c.d_model = 33, c.emb_dim = 17, c.n_head = 3, c.d_head = 6, c.d_ff = 45;	/* ragged splits */
	check_precision("tiny, odd widths, large weights", c, 1, REC_INT8, 5e-2, 5e-2);

	struct model m;
	struct rec r;
	init_model(&m, c, 3);
	rec_init(&r, &m, 1);
	rec_set_precision(&r, REC_INT8);
	is_int(r.precision, REC_INT8, "rec_set_precision int8");
	rec_set_precision(&r, REC_F32);
	ok(r.precision == REC_F32 && !r.q8 && !r.half, "back to f32 frees the copies");
	is_int(rec_precision_parse("int8"), REC_INT8, "parse int8");
	is_int(rec_precision_parse("f16"), REC_F16, "parse f16");
	is_int(rec_precision_parse("f64"), -1, "parse refuses f64");
	rec_free(&r);
	model_free(&m);
}

/* int8: a stream alone or beside others, on 1 or 2 threads, the same bits
 * (integer dot products; batches take other kernel tiles). */
static void test_int8_batch(void)
{
	struct model_config c = model_config_bench();
	c.n_layer = 1, c.max_ctx = 128;
	struct model m;
	init_model(&m, c, 9);
	float *l[2];
	int Bs[2] = { 7, 1 }, threads[2] = { 2, 1 };
	for (int k = 0; k < 2; k++) {
		struct rec r;
		int tok[8];
		model_set_threads(threads[k]);
		rec_init(&r, &m, Bs[k]);
		rec_set_precision(&r, REC_INT8);
		r.par_min_macs = 0;
		for (int t = 0; t < 24; t++) {
			for (int b = 0; b < Bs[k]; b++)
				tok[b] = (t * 31 + b * 7) % 256;
			rec_step(&r, tok);
		}
		l[k] = malloc(sizeof(float) * c.vocab);
		memcpy(l[k], rec_logits(&r, 0), sizeof(float) * c.vocab);
		rec_free(&r);
	}
	model_set_threads(1);
	is_mem(l[0], l[1], sizeof(float) * c.vocab, "int8: 7 streams on 2 threads = 1 on 1");
	free(l[0]), free(l[1]);
	model_free(&m);
}

/* A NaN weight makes the int8 logits NaN (as float products would), not
 * quietly finite. */
static void test_int8_nan(void)
{
	struct model_config c = model_config_tiny();
	struct model m;
	struct rec r;
	init_model(&m, c, 2);
	m.params.w_head[3 * c.emb_dim] = NAN;	/* row 3 */
	rec_init(&r, &m, 1);
	rec_set_precision(&r, REC_INT8);
	int tok = 5;
	rec_step(&r, &tok);
	int nans = 0;
	for (int v = 0; v < c.vocab; v++)
		nans += isnan(rec_logits(&r, 0)[v]);
	ok(nans == 1 && isnan(rec_logits(&r, 0)[3]), "int8: a NaN weight makes its row's logit NaN");
	rec_free(&r);
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
	test_precision();
	test_int8_batch();
	test_int8_nan();
	return tap_done();
}
