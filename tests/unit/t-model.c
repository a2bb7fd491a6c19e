/* t-model.c: unit tests of the whole tgpt model (tools/tgpt/model.h):
 * presets and config checks, parameter counts, whole-model gradients against
 * finite differences of the loss (reversible and plain variants), the
 * reversible backward's rebuilt activations against stored ones, causality,
 * batching, determinism, PAD masking, dropout (gradients with the masks
 * fixed, reproducible masks, rates 0 = no dropout bit for bit), a short
 * training run, clipping and the activation memory's growth in T. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/tgpt/model.h"
#include "../tap.h"

static uint64_t rng_state = 777;

static uint64_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return rng_state >> 33;
}

static void random_tokens(int *tok, int *tgt, int n, int vocab)
{
	for (int i = 0; i < n; i++) {
		tok[i] = (int)(rnd() % vocab);
		if (tgt)
			tgt[i] = (int)(rnd() % vocab);
	}
}

/* ------------------------------------------------------------------ configs */

static void test_configs(void)
{
	const char *names[] = { "paper", "small", "tiny", "bench" };
	struct model_config c;
	for (int i = 0; i < 4; i++) {
		char what[64];
		snprintf(what, sizeof what, "preset %s exists and passes the checks", names[i]);
		ok(model_config_preset(names[i], &c) == 0 && model_config_check(&c) == NULL, what);
	}
	ok(model_config_preset("huge", &c) == -1, "unknown preset refused");

	c = model_config_tiny();
	c.max_ctx = 60;	/* window 8 */
	const char *why = model_config_check(&c);
	ok(why && strstr(why, "multiple of window"), "context not a multiple of the window refused");
	c.n_local = 0;
	ok(model_config_check(&c) == NULL, "... but fine without local heads");
	c = model_config_tiny();
	c.n_local = 3;
	ok(model_config_check(&c) != NULL, "more local heads than heads refused");
	c = model_config_tiny();
	c.chunk = 0;
	ok(model_config_check(&c) != NULL, "chunk 0 with linear heads refused");
	c = model_config_tiny();
	c.pad_id = 260;
	ok(model_config_check(&c) != NULL, "pad id outside the vocabulary refused");
	struct model m;
	ok(model_init(&m, &c, 1) == -1, "model_init refuses an invalid config");

	/* paper section 2 arithmetic: about 201.9M (8.39M per layer x 24) */
	c = model_config_paper();
	is_u64(model_config_num_params(&c), 201923844, "paper preset: 201,923,844 parameters");
	/* the peer's GPT without its unused 256x16 classifier: 6,397,456 - 4,112 */
	c = model_config_bench();
	is_u64(model_config_num_params(&c), 6393344, "bench preset: the peer's parameter count");
}

/* ------------------------------------------------------------------ gradients */

/* Variants of tiny that between them take every path. */
static struct model_config variant(int which)
{
	struct model_config c = model_config_tiny();
	c.init_std = 0.1f, c.emb_std = 0.5f, c.pos_std = 0.5f;	/* gradients of a useful size */
	switch (which) {
	case 1:	/* plain, GLU, learned positions, biases, E == D, no shift, all linear */
		c.reversible = 0, c.ff_glu = 1, c.pos = POS_LEARNED, c.qkv_bias = 1, c.head_bias = 0;
		c.emb_dim = 32, c.token_shift = 0, c.n_local = 0, c.chunk = 5;
		break;
	case 2:	/* plain with shift, three heads: two local, one linear */
		c.reversible = 0, c.n_head = 3, c.n_local = 2, c.d_head = 8, c.window = 4;
		break;
	}
	return c;
}

/* The loss with a tensor's elements moved to save + s * dir (dir NULL:
 * only element i by s); the tensor is restored after. */
struct probe {
	struct model *m;
	const int *tok, *tgt;
	int B, T;
	float *p;
	const float *save;
	const signed char *dir;
	size_t count, i;
};

static double loss_moved(const struct probe *pr, double s)
{
	if (pr->dir)
		for (size_t i = 0; i < pr->count; i++)
			pr->p[i] = pr->save[i] + (float)(s * pr->dir[i]);
	else
		pr->p[pr->i] = pr->save[pr->i] + (float)s;
	double l = model_forward(pr->m, pr->tok, pr->tgt, pr->B, pr->T);
	memcpy(pr->p, pr->save, pr->count * sizeof *pr->p);
	return l;
}

/* Central differences with one Richardson step, (4 D(h/2) - D(h)) / 3,
 * which cancels the h^2 term, so h can be large (1e-2) against the float
 * noise of the loss (a few 1e-7, i.e. a few 1e-5 in the difference). The
 * 1e-2 tolerance covers that noise; the exact per-layer checks in
 * t-layers.c (double finite differences, 1e-4) catch the subtle errors,
 * this test the wiring of the whole model. */
static double fd_richardson(const struct probe *pr, double h)
{
	double d1 = (loss_moved(pr, h) - loss_moved(pr, -h)) / (2 * h);
	double d2 = (loss_moved(pr, h / 2) - loss_moved(pr, -h / 2)) / h;
	return (4 * d2 - d1) / 3;
}

/* For every parameter tensor: the directional derivative along a random
 * +-1 direction (all elements) and 3 single elements (the largest gradient
 * and two random ones) against finite differences of the float loss. The
 * error is relative to the larger of the two values, and for elements at
 * least to the tensor's largest gradient entry. */
static void grad_check(const char *name, struct model_config c, int B, int T,
	struct model_dropout drop)
{
	struct model m;
	model_init(&m, &c, 42);
	m.drop = drop;	/* the masks stay fixed: the same pass for every forward */
	int n = B * T, *tok = malloc(n * sizeof *tok), *tgt = malloc(n * sizeof *tgt);
	random_tokens(tok, tgt, n, c.vocab);
	tgt[3] = c.pad_id;	/* one ignored target */
	model_zero_grad(&m);
	model_forward(&m, tok, tgt, B, T);
	model_backward(&m);
	float *grad = malloc(m.n_params * sizeof *grad);
	memcpy(grad, m.grads_mem, m.n_params * sizeof *grad);

	double worst_dir = 0, worst_el = 0;
	const char *worst_dir_name = "", *worst_el_name = "";
	for (int t = 0; t < P_COUNT; t++) {
		const struct model_tensor *ts = &m.tensors[t];
		if (!ts->count)
			continue;
		float *p = m.params_mem + ts->offset, *g = grad + ts->offset;
		float *save = malloc(ts->count * sizeof *save);
		signed char *dir = malloc(ts->count);
		memcpy(save, p, ts->count * sizeof *save);
		struct probe pr = { &m, tok, tgt, B, T, p, save, dir, ts->count, 0 };
		double gmax = 0, an = 0, gnorm = 0;
		for (size_t i = 0; i < ts->count; i++) {
			gmax = fmax(gmax, fabs(g[i]));
			gnorm += (double)g[i] * g[i];
			dir[i] = rnd() & 1 ? 1 : -1;
			an += dir[i] * (double)g[i];
		}
		/* A random-sign direction's derivative is about the gradient's norm;
		 * when the signs nearly cancel, the error is measured against a
		 * tenth of that norm, not against the float noise of the loss. */
		double fd = fd_richardson(&pr, 1e-2);
		double e = fabs(an - fd) / fmax(fmax(fmax(fabs(an), fabs(fd)), 0.1 * sqrt(gnorm)), 1e-3);
		if (e > worst_dir)
			worst_dir = e, worst_dir_name = ts->name;
		size_t pick[3] = { 0, rnd() % ts->count, rnd() % ts->count };
		for (size_t i = 0; i < ts->count; i++)
			if (fabs(g[i]) > fabs(g[pick[0]]))
				pick[0] = i;
		pr.dir = NULL;
		for (int k = 0; k < 3; k++) {
			pr.i = pick[k];
			fd = fd_richardson(&pr, 2e-2);
			e = fabs(g[pr.i] - fd) / fmax(fmax(fabs(g[pr.i]), fabs(fd)), fmax(gmax, 1e-4));
			if (e > worst_el)
				worst_el = e, worst_el_name = ts->name;
		}
		free(save), free(dir);
	}
	char what[160];
	snprintf(what, sizeof what, "%s: directional derivative of every tensor vs FD (rel < 1e-2)",
		name);
	ok(worst_dir < 1e-2, what);
	printf("#   worst %.3g (%s)\n", worst_dir, worst_dir_name);
	snprintf(what, sizeof what, "%s: 3 elements of every tensor vs FD (rel < 1e-2)", name);
	ok(worst_el < 1e-2, what);
	printf("#   worst %.3g (%s)\n", worst_el, worst_el_name);
	free(grad), free(tok), free(tgt);
	model_free(&m);
}

/* ------------------------------------------------------------------ reversible */

static void test_reversible_recompute(struct model_dropout drop, const char *name)
{
	struct model_config c = variant(0);
	c.n_layer = 4;
	struct model a, b;
	model_init(&a, &c, 9);
	model_init(&b, &c, 9);
	b.keep_streams = 1;
	a.drop = b.drop = drop;
	int B = 2, T = 48, tok[96], tgt[96];
	random_tokens(tok, tgt, B * T, c.vocab);
	float la = model_forward(&a, tok, tgt, B, T), lb = model_forward(&b, tok, tgt, B, T);
	char what[160];
	snprintf(what, sizeof what, "reversible%s: same loss with and without kept streams", name);
	ok(la == lb, what);
	model_zero_grad(&a);
	model_zero_grad(&b);
	model_backward(&a);
	model_backward(&b);
	double diff = 0, mag = 0;
	for (size_t i = 0; i < a.n_params; i++) {
		diff = fmax(diff, fabs(a.grads_mem[i] - b.grads_mem[i]));
		mag = fmax(mag, fabs(b.grads_mem[i]));
	}
	snprintf(what, sizeof what, "reversible%s: backward with rebuilt inputs = with stored "
		"inputs (rel < 1e-4)", name);
	ok(diff / mag < 1e-4, what);
	printf("#   max diff %.3g of max %.3g\n", diff, mag);
	model_free(&a);
	model_free(&b);
}

/* ------------------------------------------------------------------ behaviour */

static void test_causal_and_batch(struct model_config c, const char *name)
{
	struct model m;
	model_init(&m, &c, 5);
	int T = 37, V = c.vocab, tok[2 * 37];	/* T not a multiple of window or chunk */
	random_tokens(tok, NULL, 2 * T, V);
	model_forward(&m, tok, NULL, 2, T);
	size_t n = (size_t)2 * T * V;
	float *both = malloc(n * sizeof *both), *one = malloc(n * sizeof *one);
	memcpy(both, model_logits(&m), n * sizeof *both);
	model_forward(&m, tok + T, NULL, 1, T);
	double d = 0;
	for (size_t i = 0; i < (size_t)T * V; i++)
		d = fmax(d, fabs(model_logits(&m)[i] - both[T * V + i]));
	char what[160];
	snprintf(what, sizeof what, "%s: a sequence's logits do not depend on the batch "
		"(max diff %.2g)", name, d);
	ok(d < 1e-5, what);

	int t = 20;	/* change the token at t: logits before t must not move */
	memcpy(one, both, (size_t)T * V * sizeof *one);
	tok[t] = (tok[t] + 1) % V;
	model_forward(&m, tok, NULL, 1, T);
	const float *lg = model_logits(&m);
	int before_same = memcmp(lg, one, (size_t)t * V * sizeof *lg) == 0;
	int after_moved = memcmp(lg + (size_t)t * V, one + (size_t)t * V, (size_t)V * sizeof *lg) != 0;
	snprintf(what, sizeof what, "%s: causal: positions before a changed token unchanged, "
		"its own changed", name);
	ok(before_same && after_moved, what);
	free(both), free(one);
	model_free(&m);
}

static void test_determinism_and_pad(void)
{
	struct model_config c = variant(0);
	struct model a, b;
	model_init(&a, &c, 3);
	model_init(&b, &c, 3);
	int B = 2, T = 40, tok[80], tgt[80], pad[80];
	random_tokens(tok, tgt, B * T, c.vocab);
	model_zero_grad(&a), model_zero_grad(&b);
	float la = model_forward(&a, tok, tgt, B, T);
	model_backward(&a);
	float lb = model_forward(&b, tok, tgt, B, T);
	model_backward(&b);
	ok(la == lb && memcmp(a.grads_mem, b.grads_mem, a.n_params * sizeof(float)) == 0,
		"same seed and batch: bit-identical loss and gradients");

	float lg = model_forward(&a, tok, NULL, B, T);
	ok(lg == -1.0f, "forward without targets returns -1 (logits only)");
	for (int i = 0; i < B * T; i++)
		pad[i] = i % 2 ? c.pad_id : tgt[i] % c.pad_id;
	float lp = model_forward(&a, tok, pad, B, T);
	is_int(a.n_valid, B * T / 2, "PAD targets do not count");
	double want = 0;	/* the mean over the kept positions, from the logits */
	const float *z = model_logits(&a);
	for (int i = 0; i < B * T; i += 2) {
		double mx = -INFINITY, s = 0;
		for (int v = 0; v < c.vocab; v++)
			mx = fmax(mx, z[i * c.vocab + v]);
		for (int v = 0; v < c.vocab; v++)
			s += exp(z[i * c.vocab + v] - mx);
		want += mx + log(s) - z[i * c.vocab + pad[i]];
	}
	is_near(lp, want / (B * T / 2), 1e-5, "loss = mean cross-entropy over non-PAD targets");
	for (int i = 0; i < B * T; i++)
		pad[i] = c.pad_id;
	model_zero_grad(&a);
	float l0 = model_forward(&a, tok, pad, B, T);
	model_backward(&a);
	int zero = 1;
	for (size_t i = 0; i < a.n_params; i++)
		zero &= a.grads_mem[i] == 0.0f;
	ok(l0 == 0.0f && zero, "all targets PAD: loss 0 and zero gradients");
	model_free(&a);
	model_free(&b);
}

/* Big enough that the loops split across threads (work >= 32768) and
 * BLIS partitions its products: 1 and 2 threads give the same bits. */
static void test_threads(struct model_dropout drop, const char *name)
{
	struct model_config c = variant(2);
	c.d_model = 64, c.emb_dim = 48, c.d_ff = 256, c.max_ctx = 256, c.n_layer = 2;
	c.d_head = 16, c.window = 32, c.chunk = 16;
	c.reversible = 1;
	int B = 2, T = 256, *tok = malloc(B * T * sizeof *tok), *tgt = malloc(B * T * sizeof *tgt);
	random_tokens(tok, tgt, B * T, c.vocab);
	float *grads[2], loss[2];
	for (int k = 0; k < 2; k++) {
		struct model m;
		model_set_threads(k + 1);
		model_init(&m, &c, 8);
		m.drop = drop;
		model_zero_grad(&m);
		loss[k] = model_forward(&m, tok, tgt, B, T);
		model_backward(&m);
		grads[k] = malloc(m.n_params * sizeof(float));
		memcpy(grads[k], m.grads_mem, m.n_params * sizeof(float));
		char what[120];
		snprintf(what, sizeof what, "1 and 2 threads%s: bit-identical loss and gradients", name);
		if (k == 1)
			ok(loss[0] == loss[1] && memcmp(grads[0], grads[1], m.n_params * sizeof(float)) == 0,
				what);
		model_free(&m);
	}
	model_set_threads(1);
	free(grads[0]), free(grads[1]), free(tok), free(tgt);
}

/* One forward and backward of variant v with drop: the loss, and the
 * gradients into grads (n_params floats, allocated). */
static float pass_with(int v, struct model_dropout drop, const int *tok, const int *tgt, int B,
	int T, float **grads)
{
	struct model_config c = variant(v);
	struct model m;
	model_init(&m, &c, 4);
	m.drop = drop;
	model_zero_grad(&m);
	float loss = model_forward(&m, tok, tgt, B, T);
	model_backward(&m);
	*grads = malloc(m.n_params * sizeof **grads);
	memcpy(*grads, m.grads_mem, m.n_params * sizeof **grads);
	model_free(&m);
	return loss;
}

static void test_dropout(void)
{
	int B = 2, T = 40, tok[80], tgt[80];
	random_tokens(tok, tgt, B * T, 260);
	float *g0, *g1, *g2, *g3;
	for (int v = 0; v < 2; v++) {	/* reversible and plain */
		struct model_config c = variant(v);
		size_t n = model_config_num_params(&c);
		float l0 = pass_with(v, (struct model_dropout){ 0 }, tok, tgt, B, T, &g0);
		float l1 = pass_with(v, (struct model_dropout){ 0, 0, 1234, 77, 0 }, tok, tgt, B, T, &g1);
		char what[160];
		snprintf(what, sizeof what, "%s: rates 0 with any seed and pass: the same bits as "
			"without dropout", v ? "plain" : "reversible");
		ok(l0 == l1 && memcmp(g0, g1, n * sizeof *g0) == 0, what);
		struct model_dropout d = { 0.1f, 0.1f, 1234, 77, 0 };
		float l2 = pass_with(v, d, tok, tgt, B, T, &g2);
		float l3 = pass_with(v, d, tok, tgt, B, T, &g3);
		int same = l2 == l3 && memcmp(g2, g3, n * sizeof *g2) == 0;
		free(g3);
		d.pass++;
		l3 = pass_with(v, d, tok, tgt, B, T, &g3);
		snprintf(what, sizeof what, "%s: dropout 0.1 changes the loss (%.5f, not %.5f), the "
			"same pass repeats it bit for bit, another pass gives another (%.5f)",
			v ? "plain" : "reversible", l2, l0, l3);
		ok(l2 != l0 && same && l3 != l2, what);
		free(g0), free(g1), free(g2), free(g3);
	}

	/* A data-parallel rank's rows: row 1 alone with row0 1 draws the masks
	 * it has in the whole batch, so its loss is its share of the batch's. */
	struct model_config c = variant(0);
	struct model m;
	model_init(&m, &c, 4);
	m.drop = (struct model_dropout){ 0.2f, 0.2f, 5, 6, 0 };
	model_forward(&m, tok, tgt, B, T);
	size_t V = c.vocab, nl = (size_t)T * V;
	float *both = malloc((size_t)B * nl * sizeof *both);
	memcpy(both, model_logits(&m), (size_t)B * nl * sizeof *both);
	m.drop.row0 = 1;
	model_forward(&m, tok + T, tgt + T, 1, T);
	double d = 0;
	for (size_t i = 0; i < nl; i++)
		d = fmax(d, fabs(model_logits(&m)[i] - both[nl + i]));
	char what[120];
	snprintf(what, sizeof what, "dropout: a rank's rows (row0) get the whole batch's masks "
		"(max diff %.2g)", d);
	ok(d < 1e-5, what);
	free(both);
	model_free(&m);
}

static void test_training(void)
{
	struct model_config c = model_config_tiny();
	struct model m;
	model_init(&m, &c, 11);
	int B = 2, T = 64, tok[128], tgt[128];
	for (int i = 0; i < B * T; i++)	/* a periodic stream: easy to learn */
		tok[i] = (i * 7) % 13;
	for (int i = 0; i < B * T; i++)
		tgt[i] = (i + 1) % T ? tok[i + 1] : c.pad_id;
	float first = 0, last = 0;
	for (int step = 1; step <= 60; step++) {
		model_zero_grad(&m);
		float l = model_forward(&m, tok, tgt, B, T);
		model_backward(&m);
		model_clip_grad(&m, 1.0f);
		model_adamw_update(&m, 1e-2f, 0.9f, 0.99f, 1e-8f, 0.01f, step);
		if (step == 1)
			first = l;
		last = l;
	}
	char what[120];
	snprintf(what, sizeof what, "60 AdamW steps on a periodic stream: loss %.3f -> %.3f "
		"(below a quarter)", first, last);
	ok(first > 5.0f && last < first / 4, what);

	float norm = model_clip_grad(&m, 0.0f);
	double ss = 0;
	for (size_t i = 0; i < m.n_params; i++)
		ss += (double)m.grads_mem[i] * m.grads_mem[i];
	is_near(norm, sqrt(ss), 1e-6 * sqrt(ss), "clip: returns the global norm");
	model_clip_grad(&m, norm / 2);
	is_near(model_clip_grad(&m, 0.0f), norm / 2, 1e-4 * norm, "clip: scales to max_norm");
	model_free(&m);
}

static void test_memory(void)
{
	struct model_config c = model_config_bench();
	struct model m;
	model_init(&m, &c, 1);
	size_t b1 = model_acts_bytes(&m, 1, 3008), b2 = model_acts_bytes(&m, 1, 6016);
	size_t b4 = model_acts_bytes(&m, 1, 12032);
	ok(b4 - b2 == 2 * (b2 - b1), "activation memory is linear in T (no T^2 term)");
	size_t total = b4 + 4 * m.n_params * sizeof(float);	/* params, grads, AdamW m, v */
	char what[120];
	snprintf(what, sizeof what, "bench at T 12,032: activations + 4 x parameters = %.0f MB "
		"<= 1,700 MB", total / 1e6);
	ok(total <= 1700000000u, what);
	model_free(&m);
}

int main(void)
{
	model_set_threads(1);
	test_configs();
	struct model_dropout none = { 0 }, drop = { 0.3f, 0.2f, 99, 5, 0 };
	grad_check("tiny (reversible, shift, axial, 1 local + 1 linear head, E != D)", variant(0),
		2, 37, none);
	grad_check("plain, GLU, learned positions, biases, E == D, linear heads", variant(1), 2, 23,
		none);
	grad_check("plain, shift, 2 local + 1 linear head", variant(2), 1, 30, none);
	grad_check("tiny reversible, dropout 0.3 attention, 0.2 residual", variant(0), 2, 37, drop);
	grad_check("plain GLU, dropout 0.3 attention, 0.2 residual", variant(1), 2, 23, drop);
	test_dropout();
	test_reversible_recompute(none, "");
	test_reversible_recompute(drop, " with dropout");
	test_causal_and_batch(variant(0), "tiny");
	test_causal_and_batch(variant(2), "plain 2 local + 1 linear");
	test_determinism_and_pad();
	test_threads(none, "");
	test_threads(drop, " with dropout");
	test_training();
	test_memory();
	return tap_done();
}
