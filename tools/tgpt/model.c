/* model.c: the whole tgpt model: configs and presets, the llm.c-style
 * parameter and activation buffers, the attention and feed-forward blocks
 * (plain or reversible residual, with optional dropout), forward, backward,
 * AdamW and clipping. */
#include <blis.h>
#include <err.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alloc.h"
#include "hash.h"
#include "layers.h"
#include "model.h"
#include "parallel.h"

/* ------------------------------------------------------------------ configs */

struct model_config model_config_paper(void)
{
	return (struct model_config){
		.vocab = 260, .pad_id = 259, .max_ctx = 12032, .emb_dim = 256, .d_model = 512,
		.n_layer = 24, .n_head = 12, .n_local = 8, .d_head = 256, .window = 256,
		.chunk = 64, .d_ff = 2048, .ff_glu = 0, .pos = POS_AXIAL, .axial_w = 256,
		.token_shift = 1, .reversible = 1, .qkv_bias = 0, .head_bias = 1,
		/* lucidrains initialises nn.Embedding and the axial tables N(0,1) */
		.init_std = 0.02f, .emb_std = 1.0f, .pos_std = 1.0f,
		.ln_eps = 1e-5f, .lin_eps = 1e-3f,
	};
}

struct model_config model_config_small(void)
{
	return (struct model_config){
		.vocab = 260, .pad_id = 259, .max_ctx = 3072, .emb_dim = 128, .d_model = 256,
		.n_layer = 4, .n_head = 4, .n_local = 2, .d_head = 64, .window = 256,
		.chunk = 64, .d_ff = 1024, .ff_glu = 0, .pos = POS_AXIAL, .axial_w = 256,
		.token_shift = 1, .reversible = 1, .qkv_bias = 0, .head_bias = 1,
		.init_std = 0.02f, .emb_std = 0.02f, .pos_std = 0.02f,
		.ln_eps = 1e-5f, .lin_eps = 1e-3f,
	};
}

struct model_config model_config_tiny(void)
{
	return (struct model_config){
		.vocab = 260, .pad_id = 259, .max_ctx = 64, .emb_dim = 16, .d_model = 32,
		.n_layer = 2, .n_head = 2, .n_local = 1, .d_head = 16, .window = 8,
		.chunk = 8, .d_ff = 64, .ff_glu = 0, .pos = POS_AXIAL, .axial_w = 16,
		.token_shift = 1, .reversible = 1, .qkv_bias = 0, .head_bias = 1,
		.init_std = 0.02f, .emb_std = 0.02f, .pos_std = 0.02f,
		.ln_eps = 1e-5f, .lin_eps = 1e-3f,
	};
}

struct model_config model_config_bench(void)
{
	return (struct model_config){
		.vocab = 300, .pad_id = 259, .max_ctx = 12032, .emb_dim = 256, .d_model = 256,
		.n_layer = 4, .n_head = 4, .n_local = 0, .d_head = 64, .window = 256,
		.chunk = 64, .d_ff = 1024, .ff_glu = 0, .pos = POS_LEARNED, .axial_w = 256,
		.token_shift = 0, .reversible = 0, .qkv_bias = 1, .head_bias = 0,
		.init_std = 0.02f, .emb_std = 0.02f, .pos_std = 0.02f,
		.ln_eps = 1e-5f, .lin_eps = 1e-3f,
	};
}

int model_config_preset(const char *name, struct model_config *c)
{
	static const struct {
		const char *name;
		struct model_config (*fn)(void);
	} presets[] = {
		{ "paper", model_config_paper }, { "small", model_config_small },
		{ "tiny", model_config_tiny }, { "bench", model_config_bench },
	};
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (strcmp(name, presets[i].name) == 0) {
			*c = presets[i].fn();
			return 0;
		}
	return -1;
}

const char *model_config_check(const struct model_config *c)
{
	const int big = 1 << 20;	/* keeps every product of two sizes in range */
	if (c->vocab < 2 || c->vocab > 65536)
		return "vocab must be in [2, 65536]";
	if (c->pad_id < -1 || c->pad_id >= c->vocab)
		return "pad_id must be -1 (none) or a token id";
	if (c->max_ctx < 1 || c->max_ctx > big)
		return "max_ctx must be in [1, 2^20]";
	if (c->emb_dim < 1 || c->d_model < 1 || c->emb_dim > 65536 || c->d_model > 65536)
		return "emb_dim and d_model must be in [1, 65536]";
	if (c->n_layer < 0 || c->n_layer > 4096)
		return "n_layer must be in [0, 4096]";
	if (c->n_head < 1 || c->d_head < 1 || (long)c->n_head * c->d_head > 65536)
		return "n_head and d_head must be >= 1 with n_head * d_head <= 65536";
	if (c->n_local < 0 || c->n_local > c->n_head)
		return "n_local must be in [0, n_head]";
	if (c->n_local > 0 && (c->window < 1 || c->window > c->max_ctx))
		return "window must be in [1, max_ctx] when there are local heads";
	if (c->n_local > 0 && c->max_ctx % c->window != 0)
		return "max_ctx must be a multiple of window when there are local heads";
	if (c->n_local < c->n_head && (c->chunk < 1 || c->chunk > 4096))
		return "chunk must be in [1, 4096] when there are linear attention heads";
	if (c->d_ff < 1 || c->d_ff > 262144)
		return "d_ff must be in [1, 262144]";
	if (c->pos != POS_AXIAL && c->pos != POS_LEARNED)
		return "pos must be axial or learned";
	if (c->pos == POS_AXIAL && (c->axial_w < 1 || c->axial_w > c->max_ctx))
		return "axial_w must be in [1, max_ctx]";
	if (!(c->init_std >= 0) || !(c->emb_std >= 0) || !(c->pos_std >= 0))
		return "initialisation standard deviations must be >= 0";
	if (!(c->ln_eps > 0) || !(c->lin_eps > 0))
		return "ln_eps and lin_eps must be > 0";
	return NULL;
}

/* ------------------------------------------------------------------ parameters */

static void param_ptrs(struct model_params *p, float **out[P_COUNT])
{
	float **all[P_COUNT] = {
		&p->wte, &p->pos_a, &p->pos_b, &p->w_in, &p->b_in,
		&p->ln1_g, &p->ln1_b, &p->w_qkv, &p->b_qkv, &p->w_o, &p->b_o,
		&p->ln2_g, &p->ln2_b, &p->w_1, &p->b_1, &p->w_2, &p->b_2,
		&p->w_out, &p->b_out, &p->lnf_g, &p->lnf_b, &p->w_head, &p->b_head,
	};
	memcpy(out, all, sizeof all);
}

static void fill_tensors(struct model *m)
{
	const struct model_config *c = &m->c;
	size_t V = c->vocab, E = c->emb_dim, D = c->d_model, L = c->n_layer;
	size_t HD = (size_t)c->n_head * c->d_head, F = c->d_ff, F1 = c->ff_glu ? 2 * F : F;
	size_t proj = E != D, aw = c->axial_w, T = c->max_ctx;
	static const char *names[P_COUNT] = {
		"wte", "pos_a", "pos_b", "w_in", "b_in",
		"ln1_g", "ln1_b", "w_qkv", "b_qkv", "w_o", "b_o",
		"ln2_g", "ln2_b", "w_1", "b_1", "w_2", "b_2",
		"w_out", "b_out", "lnf_g", "lnf_b", "w_head", "b_head",
	};
	size_t counts[P_COUNT] = {
		V * E,
		c->pos == POS_AXIAL ? (T + aw - 1) / aw * E : T * E,
		c->pos == POS_AXIAL ? aw * E : 0,
		proj * D * E, proj * D,
		L * D, L * D, L * 3 * HD * D, c->qkv_bias ? L * 3 * HD : 0, L * D * HD, L * D,
		L * D, L * D, L * F1 * D, L * F1, L * D * F, L * D,
		proj * E * D, proj * E, E, E, V * E, c->head_bias ? V : 0,
	};
	size_t off = 0;
	for (int i = 0; i < P_COUNT; i++) {
		m->tensors[i] = (struct model_tensor){ names[i], off, counts[i], 0 };
		off += counts[i];
	}
	int decayed[] = { P_W_IN, P_W_QKV, P_W_O, P_W_1, P_W_2, P_W_OUT, P_W_HEAD };
	for (size_t i = 0; i < sizeof decayed / sizeof decayed[0]; i++)
		m->tensors[decayed[i]].decay = 1;
	m->n_params = off;
}

static void point_params(struct model *m, struct model_params *p, float *mem)
{
	float **ptrs[P_COUNT];
	param_ptrs(p, ptrs);
	for (int i = 0; i < P_COUNT; i++)
		*ptrs[i] = mem + m->tensors[i].offset;
}

static double rng_normal(uint64_t *s)
{
	double u1 = ((splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;	/* (0, 1] */
	double u2 = (splitmix64(s) >> 11) * 0x1.0p-53;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void init_tensor(struct model *m, int t, float std, float constant, uint64_t *rng)
{
	float *p = m->params_mem + m->tensors[t].offset;
	for (size_t i = 0; i < m->tensors[t].count; i++)
		p[i] = std > 0 ? (float)(std * rng_normal(rng)) : constant;
}

static void init_params(struct model *m, uint64_t seed)
{
	const struct model_config *c = &m->c;
	uint64_t rng = seed;
	for (int t = 0; t < P_COUNT; t++) {
		float std = 0.0f, constant = 0.0f;
		if (t == P_WTE)
			std = c->emb_std;
		else if (t == P_POS_A || t == P_POS_B)
			std = c->pos_std;
		else if (m->tensors[t].decay)
			std = c->init_std;
		else if (t == P_LN1_G || t == P_LN2_G || t == P_LNF_G)
			constant = 1.0f;
		init_tensor(m, t, std, constant, &rng);
	}
}

int model_init(struct model *m, const struct model_config *c, uint64_t seed)
{
	memset(m, 0, sizeof *m);
	if (model_config_check(c))
		return -1;
	m->c = *c;
	fill_tensors(m);
	m->params_mem = xcalloc(m->n_params, sizeof(float));
	m->grads_mem = xcalloc(m->n_params, sizeof(float));
	point_params(m, &m->params, m->params_mem);
	point_params(m, &m->grads, m->grads_mem);
	init_params(m, seed);
	return 0;
}

void model_free(struct model *m)
{
	free(m->params_mem);
	free(m->grads_mem);
	free(m->adam_m);
	free(m->adam_v);
	free(m->acts_mem);
	free(m->tokens);
	free(m->targets);
	memset(m, 0, sizeof *m);
}

size_t model_num_params(const struct model *m)
{
	return m->n_params;
}

size_t model_config_num_params(const struct model_config *c)
{
	struct model m = { .c = *c };
	if (model_config_check(c))
		return 0;
	fill_tensors(&m);
	return m.n_params;
}

void model_set_threads(int n)
{
	bli_thread_set_num_threads(n);
#ifdef _OPENMP
	omp_set_num_threads(n);
#endif
}

/* ------------------------------------------------------------------ activations */

/* Sizes (and, with base, pointers) of the activations for N tokens of
 * sequences of T; returns the float count. */
static size_t acts_layout(const struct model *m, size_t N, int T, int slots,
	struct model_acts *a, float *base)
{
	const struct model_config *c = &m->c;
	size_t E = c->emb_dim, D = c->d_model, L = c->n_layer, V = c->vocab, H = c->n_head;
	size_t HD = H * c->d_head, F = c->d_ff, F1 = c->ff_glu ? 2 * F : F;
	size_t Ls = c->reversible ? 1 : L, rev = c->reversible != 0, proj = E != D;
	size_t scratch = 0;	/* one slot per thread */
	if (c->n_local > 0)
		scratch = local_attn_scratch(c->window);
	if (c->n_local < c->n_head) {
		size_t lin = linear_attn_scratch(T, c->d_head, c->chunk);
		scratch = lin > scratch ? lin : scratch;
	}
	scratch *= slots;
	struct {
		float **p;
		size_t n;
	} t[] = {
		{ &a->emb, N * E },
		{ &a->x, (rev ? 2 : 2 * L + 1) * N * D },
		{ &a->xs, rev && m->keep_streams ? L * 2 * N * D : 0 },
		{ &a->ln1_mean, Ls * N }, { &a->ln1_rstd, Ls * N },
		{ &a->qkv, Ls * N * 3 * HD }, { &a->att, Ls * N * HD }, { &a->att_stat, Ls * N * H },
		{ &a->ln2_mean, Ls * N }, { &a->ln2_rstd, Ls * N }, { &a->ff_u, Ls * N * F1 },
		{ &a->ff_g, Ls * N * F },
		{ &a->xf, rev * N * D }, { &a->e, proj * N * E },
		{ &a->lnf_mean, N }, { &a->lnf_rstd, N }, { &a->hf, N * E },
		{ &a->logits, N * V }, { &a->lse, N },
		{ &a->h, N * D }, { &a->hs, N * D }, { &a->dhs, N * D },
		{ &a->big_g, N * (F > HD ? F : HD) }, { &a->big_u, N * (F1 > 3 * HD ? F1 : 3 * HD) },
		{ &a->dx1, N * D }, { &a->dx2, rev * N * D },
		{ &a->dlogits, N * V }, { &a->dhf, N * E }, { &a->de, N * E }, { &a->demb, proj * N * E },
		{ &a->attn_scratch, scratch },
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (base)
			*t[i].p = base + total;
		total += t[i].n;
	}
	return total;
}

size_t model_acts_bytes(const struct model *m, int B, int T)
{
	struct model_acts dummy;
	size_t N = (size_t)B * T;
	int slots = m->attn_slots ? m->attn_slots : par_max_threads();
	return acts_layout(m, N, T, slots, &dummy, NULL) * sizeof(float) + 2 * N * sizeof(int);
}

static void ensure_acts(struct model *m, int B, int T)
{
	size_t N = (size_t)B * T;
	if (m->acts_mem && N <= m->cap_N && T <= m->cap_T && par_max_threads() <= m->attn_slots)
		return;
	free(m->acts_mem);
	free(m->tokens);
	free(m->targets);
	m->attn_slots = par_max_threads();
	m->cap_N = N > m->cap_N ? N : m->cap_N;
	m->cap_T = T > m->cap_T ? T : m->cap_T;
	m->n_acts = acts_layout(m, m->cap_N, m->cap_T, m->attn_slots, &m->acts, NULL);
	m->acts_mem = xcalloc(m->n_acts, sizeof(float));
	acts_layout(m, m->cap_N, m->cap_T, m->attn_slots, &m->acts, m->acts_mem);
	m->tokens = xcalloc(m->cap_N, sizeof(int));
	m->targets = xcalloc(m->cap_N, sizeof(int));
}

/* The stored activations of layer l (all layers share slot 0 when reversible). */
struct layer_acts {
	float *ln1_mean, *ln1_rstd, *qkv, *att, *stat, *ln2_mean, *ln2_rstd, *u, *g;
};

static struct layer_acts layer_acts(const struct model *m, int l)
{
	const struct model_config *c = &m->c;
	const struct model_acts *a = &m->acts;
	size_t N = (size_t)m->B * m->T, li = c->reversible ? 0 : l;
	size_t HD = (size_t)c->n_head * c->d_head, F1 = c->ff_glu ? 2 * c->d_ff : c->d_ff;
	return (struct layer_acts){
		a->ln1_mean + li * N, a->ln1_rstd + li * N, a->qkv + li * N * 3 * HD,
		a->att + li * N * HD, a->att_stat + li * N * c->n_head,
		a->ln2_mean + li * N, a->ln2_rstd + li * N, a->ff_u + li * N * F1,
		a->ff_g + li * N * c->d_ff,
	};
}

/* ------------------------------------------------------------------ blocks */

/* LayerNorm then token shift of a block input x (N,D): returns the (N,D)
 * input of the block's first linear layer (acts.hs or acts.h). recompute
 * reuses the stored mean and rstd. */
static const float *block_input(struct model *m, const float *x, float *mean, float *rstd,
	const float *g, const float *b, int recompute)
{
	struct model_acts *s = &m->acts;
	int N = m->B * m->T, D = m->c.d_model;
	if (recompute)
		layernorm_apply(s->h, mean, rstd, x, g, b, N, D);
	else
		layernorm_forward(s->h, mean, rstd, x, g, b, N, D, m->c.ln_eps);
	if (!m->c.token_shift)
		return s->h;
	shift_forward(s->hs, s->h, m->B, m->T, D);
	return s->hs;
}

/* The gradient of the block input's LayerNorm + shift: dinp (N,D) +=, from
 * dhs (N,D) = acts.dhs. */
static void block_input_backward(struct model *m, float *dinp, const float *x,
	const float *mean, const float *rstd, const float *g, float *dg, float *db)
{
	struct model_acts *s = &m->acts;
	int N = m->B * m->T, D = m->c.d_model;
	const float *dh = s->dhs;
	if (m->c.token_shift) {
		shift_backward(s->h, s->dhs, m->B, m->T, D);
		dh = s->h;
	}
	layernorm_backward(dinp, dg, db, dh, x, g, mean, rstd, N, D);
}

/* Dropout sites of a layer (dropout_key). */
enum { DROP_ATTN, DROP_ATTN_OUT, DROP_FFN_OUT };

static uint64_t drop_key(const struct model *m, int l, int site)
{
	return dropout_key(m->drop.seed, m->drop.pass, l, site);
}

/* The first element of this pass's rows in the whole batch, for a tensor of
 * C channels. */
static uint64_t drop_idx0(const struct model *m, int C)
{
	return m->drop.row0 * (uint64_t)m->T * (uint64_t)C;
}

/* A block's output layer: out (N,D) += sign * (inp (N,C) . w^T + b), with
 * residual dropout on the term (the sum staged in acts.h, free by then:
 * the block's input is consumed). sign -1 rebuilds a reversible block's
 * input with the same mask. */
static void block_output(struct model *m, int l, int site, float *out, const float *inp,
	const float *w, const float *b, int C, float sign)
{
	int N = m->B * m->T, D = m->c.d_model;
	float p = m->drop.resid;
	if (!(p > 0)) {
		linear_forward(out, inp, w, b, N, C, D, sign, 1.0f);
		return;
	}
	float *y = m->acts.h;
	size_t nd = (size_t)N * D;
	linear_forward(y, inp, w, b, N, C, D, 1.0f, 0.0f);
	dropout_forward(y, y, nd, p, drop_key(m, l, site), drop_idx0(m, D));
	PAR_FOR(nd)
	for (size_t i = 0; i < nd; i++)
		out[i] += sign * y[i];
}

/* The gradient of a block's output term under residual dropout: dout
 * itself without it, else dout masked into acts.dhs (free until the block's
 * first layer's backward writes it). */
static const float *block_output_backward(struct model *m, int l, int site, const float *dout)
{
	float p = m->drop.resid;
	if (!(p > 0))
		return dout;
	int D = m->c.d_model;
	dropout_backward(m->acts.dhs, dout, (size_t)m->B * m->T * D, p, drop_key(m, l, site),
		drop_idx0(m, D));
	return m->acts.dhs;
}

/* The out projection's input: the attention output att (N,HD), or under
 * attention dropout its dropped copy in buf. */
static const float *attn_dropped(struct model *m, int l, const float *att, float *buf)
{
	float p = m->drop.attn;
	if (!(p > 0))
		return att;
	int HD = m->c.n_head * m->c.d_head;
	dropout_forward(buf, att, (size_t)m->B * m->T * HD, p, drop_key(m, l, DROP_ATTN),
		drop_idx0(m, HD));
	return buf;
}

static struct heads heads_of(const struct model *m, int local)
{
	const struct model_config *c = &m->c;
	return (struct heads){ m->B, m->T, c->n_head, c->d_head,
		local ? 0 : c->n_local, local ? c->n_local : c->n_head };
}

/* out (N,D) += sign * Attn(LN(shift(x))); the layer's activations stored. */
static void attn_block_forward(struct model *m, int l, const float *x, float *out, float sign)
{
	const struct model_config *c = &m->c;
	const struct model_params *p = &m->params;
	struct layer_acts a = layer_acts(m, l);
	int N = m->B * m->T, D = c->d_model, HD = c->n_head * c->d_head;
	const float *hs = block_input(m, x, a.ln1_mean, a.ln1_rstd, p->ln1_g + (size_t)l * D,
		p->ln1_b + (size_t)l * D, 0);
	linear_forward(a.qkv, hs, p->w_qkv + (size_t)l * 3 * HD * D,
		c->qkv_bias ? p->b_qkv + (size_t)l * 3 * HD : NULL, N, D, 3 * HD, 1.0f, 0.0f);
	struct heads local = heads_of(m, 1), global = heads_of(m, 0);
	if (local.h1 > local.h0)
		local_attn_forward(a.att, a.stat, a.qkv, &local, c->window, m->acts.attn_scratch,
			m->attn_slots);
	if (global.h1 > global.h0)
		linear_attn_forward(a.att, a.stat, a.qkv, &global, c->chunk, c->lin_eps,
			m->acts.attn_scratch, m->attn_slots);
	block_output(m, l, DROP_ATTN_OUT, out, attn_dropped(m, l, a.att, m->acts.big_g),
		p->w_o + (size_t)l * D * HD, p->b_o + (size_t)l * D, HD, sign);
}

/* dout (N,D): gradient of the block output; dinp (N,D) += gradient of x.
 * dinp may be dout itself (plain residual): dout is read before dinp grows. */
static void attn_block_backward(struct model *m, int l, const float *x, const float *dout,
	float *dinp)
{
	const struct model_config *c = &m->c;
	const struct model_params *p = &m->params;
	struct model_params *g = &m->grads;
	struct model_acts *s = &m->acts;
	struct layer_acts a = layer_acts(m, l);
	int N = m->B * m->T, D = c->d_model, HD = c->n_head * c->d_head;
	size_t lD = (size_t)l * D, lq = (size_t)l * 3 * HD;
	const float *hs = block_input(m, x, a.ln1_mean, a.ln1_rstd, p->ln1_g + lD, p->ln1_b + lD, 1);
	float *datt = s->big_g, *dqkv = s->big_u;
	const float *dy = block_output_backward(m, l, DROP_ATTN_OUT, dout);
	/* the dropped attention output rebuilt in datt, which its gradient then
	 * overwrites (linear_backward reads its input first) */
	linear_backward(datt, 0.0f, g->w_o + lD * HD, g->b_o + lD, dy,
		attn_dropped(m, l, a.att, datt), p->w_o + lD * HD, N, HD, D);
	if (m->drop.attn > 0)
		dropout_backward(datt, datt, (size_t)N * HD, m->drop.attn, drop_key(m, l, DROP_ATTN),
			drop_idx0(m, HD));
	struct heads local = heads_of(m, 1), global = heads_of(m, 0);
	if (local.h1 > local.h0)
		local_attn_backward(dqkv, datt, a.qkv, a.att, a.stat, &local, c->window,
			s->attn_scratch, m->attn_slots);
	if (global.h1 > global.h0)
		linear_attn_backward(dqkv, datt, a.qkv, a.att, a.stat, &global, c->chunk, c->lin_eps,
			s->attn_scratch, m->attn_slots);
	linear_backward(s->dhs, 0.0f, g->w_qkv + lq * D, c->qkv_bias ? g->b_qkv + lq : NULL, dqkv,
		hs, p->w_qkv + lq * D, N, D, 3 * HD);
	block_input_backward(m, dinp, x, a.ln1_mean, a.ln1_rstd, p->ln1_g + lD, g->ln1_g + lD,
		g->ln1_b + lD);
}

/* out (N,D) += sign * FFN(LN(shift(x))). The activation and (GELU) its
 * derivative are kept, so the backward evaluates no GELU. */
static void ffn_block_forward(struct model *m, int l, const float *x, float *out, float sign)
{
	const struct model_config *c = &m->c;
	const struct model_params *p = &m->params;
	struct layer_acts a = layer_acts(m, l);
	int N = m->B * m->T, D = c->d_model, F = c->d_ff, F1 = c->ff_glu ? 2 * F : F;
	const float *hs = block_input(m, x, a.ln2_mean, a.ln2_rstd, p->ln2_g + (size_t)l * D,
		p->ln2_b + (size_t)l * D, 0);
	const float *w1 = p->w_1 + (size_t)l * F1 * D, *b1 = p->b_1 + (size_t)l * F1;
	if (c->ff_glu) {
		linear_forward(a.u, hs, w1, b1, N, D, F1, 1.0f, 0.0f);
		glu_forward(a.g, a.u, N, F);
	} else {	/* the pre-activation in scratch (not in place: that would not vectorize) */
		float *pre = m->acts.big_g;
		linear_forward(pre, hs, w1, b1, N, D, F, 1.0f, 0.0f);
		gelu_forward_grad(a.g, a.u, pre, (size_t)N * F);
	}
	block_output(m, l, DROP_FFN_OUT, out, a.g, p->w_2 + (size_t)l * D * F,
		p->b_2 + (size_t)l * D, F, sign);
}

static void ffn_block_backward(struct model *m, int l, const float *x, const float *dout,
	float *dinp)
{
	const struct model_config *c = &m->c;
	const struct model_params *p = &m->params;
	struct model_params *g = &m->grads;
	struct model_acts *s = &m->acts;
	struct layer_acts a = layer_acts(m, l);
	int N = m->B * m->T, D = c->d_model, F = c->d_ff, F1 = c->ff_glu ? 2 * F : F;
	size_t lD = (size_t)l * D, NF = (size_t)N * F;
	const float *hs = block_input(m, x, a.ln2_mean, a.ln2_rstd, p->ln2_g + lD, p->ln2_b + lD, 1);
	float *dg = s->big_g, *du = s->big_u;
	const float *dy = block_output_backward(m, l, DROP_FFN_OUT, dout);
	linear_backward(dg, 0.0f, g->w_2 + lD * F, g->b_2 + lD, dy, a.g, p->w_2 + lD * F, N, F, D);
	if (c->ff_glu) {
		glu_backward(du, a.u, dg, N, F);
	} else {
		const float *gelu_grad = a.u;
		PAR_FOR(NF)
		for (size_t i = 0; i < NF; i++)
			du[i] = dg[i] * gelu_grad[i];
	}
	linear_backward(s->dhs, 0.0f, g->w_1 + (size_t)l * F1 * D, g->b_1 + (size_t)l * F1, du, hs,
		p->w_1 + (size_t)l * F1 * D, N, D, F1);
	block_input_backward(m, dinp, x, a.ln2_mean, a.ln2_rstd, p->ln2_g + lD, g->ln2_g + lD,
		g->ln2_b + lD);
}

/* ------------------------------------------------------------------ the stack */

static size_t ND(const struct model *m)
{
	return (size_t)m->B * m->T * m->c.d_model;
}

/* The stack's output (N,D): the last residual state, or the streams' mean. */
static float *stack_out(struct model *m)
{
	if (m->c.reversible)
		return m->acts.xf;
	return m->acts.x + 2 * (size_t)m->c.n_layer * ND(m);
}

/* Input x0 in acts.x (first (N,D)). Plain: x <- x + F(x); x <- x + G(x),
 * each state kept. Reversible: x1 = x2 = x0; y1 = x1 + F(x2); y2 = x2 + G(y1);
 * only the last pair kept; output (y1 + y2) / 2. */
static void stack_forward(struct model *m)
{
	size_t nd = ND(m);
	float *x = m->acts.x;
	if (!m->c.reversible) {
		for (int l = 0; l < m->c.n_layer; l++) {
			float *in = x + 2 * l * nd, *mid = in + nd, *out = mid + nd;
			memcpy(mid, in, nd * sizeof *x);
			attn_block_forward(m, l, in, mid, 1.0f);
			memcpy(out, mid, nd * sizeof *x);
			ffn_block_forward(m, l, mid, out, 1.0f);
		}
		return;
	}
	float *y1 = x, *y2 = x + nd, *xf = m->acts.xf;
	memcpy(y2, y1, nd * sizeof *x);
	for (int l = 0; l < m->c.n_layer; l++) {
		if (m->keep_streams)
			memcpy(m->acts.xs + 2 * l * nd, x, 2 * nd * sizeof *x);
		attn_block_forward(m, l, y2, y1, 1.0f);
		ffn_block_forward(m, l, y1, y2, 1.0f);
	}
	for (size_t i = 0; i < nd; i++)
		xf[i] = 0.5f * (y1[i] + y2[i]);
}

/* dx1 (N,D) holds the gradient of the stack output; on return it holds the
 * gradient of x0. The reversible backward rebuilds each layer's inputs from
 * its outputs (x2 = y2 - G(y1), x1 = y1 - F(x2)), recomputing the layer's
 * activations on the way, so memory does not grow with depth. */
static void stack_backward(struct model *m)
{
	size_t nd = ND(m);
	float *x = m->acts.x, *dx1 = m->acts.dx1, *dx2 = m->acts.dx2;
	if (!m->c.reversible) {
		for (int l = m->c.n_layer - 1; l >= 0; l--) {
			ffn_block_backward(m, l, x + (2 * l + 1) * nd, dx1, dx1);
			attn_block_backward(m, l, x + 2 * l * nd, dx1, dx1);
		}
		return;
	}
	float *y1 = x, *y2 = x + nd;
	for (size_t i = 0; i < nd; i++)
		dx2[i] = dx1[i] = 0.5f * dx1[i];
	for (int l = m->c.n_layer - 1; l >= 0; l--) {
		const float *kept = m->acts.xs + 2 * l * nd;
		ffn_block_forward(m, l, y1, y2, -1.0f);	/* y2 becomes x2 */
		if (m->keep_streams)
			memcpy(y2, kept + nd, nd * sizeof *x);
		ffn_block_backward(m, l, y1, dx2, dx1);
		attn_block_forward(m, l, y2, y1, -1.0f);	/* y1 becomes x1 */
		if (m->keep_streams)
			memcpy(y1, kept, nd * sizeof *x);
		attn_block_backward(m, l, y2, dx1, dx2);
	}
	for (size_t i = 0; i < nd; i++)
		dx1[i] += dx2[i];
}

/* ------------------------------------------------------------------ forward, backward */

static int axial_w(const struct model *m)
{
	return m->c.pos == POS_AXIAL ? m->c.axial_w : 0;
}

float model_forward(struct model *m, const int *tokens, const int *targets, int B, int T)
{
	const struct model_config *c = &m->c;
	const struct model_params *p = &m->params;
	if (B < 1 || T < 1 || T > c->max_ctx)
		errx(EX_SOFTWARE, "model_forward: batch %d x %d outside 1 x [1, %d]", B, T, c->max_ctx);
	size_t N = (size_t)B * T;
	for (size_t i = 0; i < N; i++) {
		int tgt = targets ? targets[i] : 0;
		if (tokens[i] < 0 || tokens[i] >= c->vocab || (tgt != c->pad_id && (tgt < 0 ||
			tgt >= c->vocab)))
			errx(EX_DATAERR, "model_forward: token %d or target %d at %zu outside [0, %d)",
				tokens[i], tgt, i, c->vocab);
	}
	ensure_acts(m, B, T);
	m->B = B, m->T = T;
	struct model_acts *a = &m->acts;
	int E = c->emb_dim, D = c->d_model, V = c->vocab;
	memcpy(m->tokens, tokens, N * sizeof *tokens);
	m->has_targets = targets != NULL;
	if (targets)
		memcpy(m->targets, targets, N * sizeof *targets);

	embed_forward(a->emb, tokens, p->wte, p->pos_a, p->pos_b, axial_w(m), B, T, E);
	if (E != D)
		linear_forward(a->x, a->emb, p->w_in, p->b_in, N, E, D, 1.0f, 0.0f);
	else
		memcpy(a->x, a->emb, N * D * sizeof(float));
	stack_forward(m);
	const float *xf = stack_out(m), *e = xf;
	if (E != D) {
		linear_forward(a->e, xf, p->w_out, p->b_out, N, D, E, 1.0f, 0.0f);
		e = a->e;
	}
	layernorm_forward(a->hf, a->lnf_mean, a->lnf_rstd, e, p->lnf_g, p->lnf_b, N, E, c->ln_eps);
	linear_forward(a->logits, a->hf, p->w_head, c->head_bias ? p->b_head : NULL, N, E, V,
		1.0f, 0.0f);
	if (!targets) {
		m->loss = -1.0f;
		return m->loss;
	}
	double sum = crossentropy_forward(a->lse, a->logits, targets, c->pad_id, N, V, &m->n_valid);
	m->loss = m->n_valid ? (float)(sum / m->n_valid) : 0.0f;
	return m->loss;
}

void model_backward(struct model *m)
{
	const struct model_config *c = &m->c;
	const struct model_params *p = &m->params;
	struct model_params *g = &m->grads;
	struct model_acts *a = &m->acts;
	if (!m->has_targets)
		errx(EX_SOFTWARE, "model_backward: no forward with targets to backpropagate");
	m->has_targets = 0;	/* the reversible backward consumes the streams */
	int N = m->B * m->T, E = c->emb_dim, D = c->d_model, V = c->vocab;

	float scale = m->n_valid ? 1.0f / m->n_valid : 0.0f;
	crossentropy_backward(a->dlogits, a->logits, a->lse, m->targets, c->pad_id, scale, N, V);
	linear_backward(a->dhf, 0.0f, g->w_head, c->head_bias ? g->b_head : NULL, a->dlogits,
		a->hf, p->w_head, N, E, V);
	const float *xf = stack_out(m), *e = E != D ? a->e : xf;
	memset(a->de, 0, (size_t)N * E * sizeof(float));
	layernorm_backward(a->de, g->lnf_g, g->lnf_b, a->dhf, e, p->lnf_g, a->lnf_mean, a->lnf_rstd,
		N, E);
	if (E != D)
		linear_backward(a->dx1, 0.0f, g->w_out, g->b_out, a->de, xf, p->w_out, N, D, E);
	else
		memcpy(a->dx1, a->de, (size_t)N * D * sizeof(float));
	stack_backward(m);
	const float *demb = a->dx1;
	if (E != D) {
		linear_backward(a->demb, 0.0f, g->w_in, g->b_in, a->dx1, a->emb, p->w_in, N, E, D);
		demb = a->demb;
	}
	embed_backward(g->wte, g->pos_a, g->pos_b, demb, m->tokens, axial_w(m), m->B, m->T, E);
}

void model_zero_grad(struct model *m)
{
	memset(m->grads_mem, 0, m->n_params * sizeof(float));
}

const float *model_logits(const struct model *m)
{
	return m->acts.logits;
}

/* ------------------------------------------------------------------ optimiser */

float model_clip_grad(struct model *m, float max_norm)
{
	double ss = 0.0;
	for (size_t i = 0; i < m->n_params; i++)
		ss += (double)m->grads_mem[i] * m->grads_mem[i];
	double norm = sqrt(ss);
	if (max_norm > 0 && norm > max_norm) {
		float s = (float)(max_norm / norm);
		for (size_t i = 0; i < m->n_params; i++)
			m->grads_mem[i] *= s;
	}
	return (float)norm;
}

void model_adamw_update(struct model *m, float lr, float beta1, float beta2, float eps,
	float weight_decay, int step)
{
	if (!m->adam_m) {
		m->adam_m = xcalloc(m->n_params, sizeof(float));
		m->adam_v = xcalloc(m->n_params, sizeof(float));
	}
	float c1 = 1.0f - powf(beta1, (float)step), c2 = 1.0f - powf(beta2, (float)step);
	for (int t = 0; t < P_COUNT; t++) {
		size_t off = m->tensors[t].offset;
		float wd = m->tensors[t].decay ? weight_decay : 0.0f;
		float *p = m->params_mem + off, *g = m->grads_mem + off;
		float *mm1 = m->adam_m + off, *vv = m->adam_v + off;
		for (size_t i = 0; i < m->tensors[t].count; i++) {
			mm1[i] = beta1 * mm1[i] + (1.0f - beta1) * g[i];
			vv[i] = beta2 * vv[i] + (1.0f - beta2) * g[i] * g[i];
			float mhat = mm1[i] / c1, vhat = vv[i] / c2;
			p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
		}
	}
}
