/* recurrent.c: the tgpt model one token at a time (recurrent.h): per-stream
 * state of linear-attention sums, local-attention key/value rings and
 * token-shift rows; a step runs the active streams' rows through the same
 * layers as model_forward (layers.h), with the attention done per token,
 * and the products' weights as trained (or as binary16 or int8 copies,
 * through quant.c). */
#include <err.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alloc.h"
#include "layers.h"
#include "parallel.h"
#include "quant.h"
#include "recurrent.h"
#include "vecmath.h"

/* ------------------------------------------------------------------ state layout */

/* Per layer: two shift rows (D/2 each, with token shift), the local heads'
 * rings (2W keys then 2W values of dh each), the linear heads' S (dh x dh)
 * and z (dh). */
static size_t shift_floats(const struct model_config *c)
{
	return c->token_shift ? (size_t)(c->d_model / 2) : 0;
}

static size_t ring_floats(const struct model_config *c)
{
	return 2 * 2 * (size_t)c->window * c->d_head;
}

static size_t lin_floats(const struct model_config *c)
{
	return (size_t)c->d_head * c->d_head + c->d_head;
}

static size_t layer_floats(const struct model_config *c)
{
	return 2 * shift_floats(c) + (size_t)c->n_local * ring_floats(c) +
		(size_t)(c->n_head - c->n_local) * lin_floats(c);
}

size_t rec_state_floats(const struct model_config *c)
{
	return (size_t)c->n_layer * layer_floats(c);
}

struct layer_state {
	float *shift1, *shift2;	/* attention's and feed-forward's previous row */
	float *rings;		/* n_local rings */
	float *lins;		/* n_head - n_local (S, z) pairs */
};

static struct layer_state layer_state(const struct rec *r, int b, int l)
{
	const struct model_config *c = &r->m->c;
	float *base = r->state + (size_t)b * r->state_floats + (size_t)l * layer_floats(c);
	size_t sh = shift_floats(c);
	return (struct layer_state){ base, base + sh, base + 2 * sh,
		base + 2 * sh + (size_t)c->n_local * ring_floats(c) };
}

/* ------------------------------------------------------------------ setup */

/* Scratch of one attention head: the local head's scores (2W), the linear
 * head's feature maps (2 dh). */
static size_t attn_slot_floats(const struct model_config *c)
{
	return 2 * (size_t)c->window + 2 * (size_t)c->d_head;
}

/* What one thread of a step keeps to itself: the LayerNorm of the rows
 * (every thread computes it whole, which costs less than a barrier), their
 * token-shifted copy, the rows of a product's input as 16-bit integers
 * (int8 weights) and the attention's scratch. */
struct rec_thread {
	float *h, *hs;		/* (B, max(D, E)) */
	float *mean, *rstd;	/* (B) */
	int16_t *q;		/* (B, widest input rounded up to even) */
	float *qs;		/* (B) the scale of each row of q */
	float *attn;		/* attn_slot_floats */
};

/* The widest input of a product: E, D, H*dh or F. */
static size_t widest_input(const struct model_config *c)
{
	size_t w = (size_t)c->emb_dim;
	size_t k[] = { (size_t)c->d_model, (size_t)c->n_head * c->d_head, (size_t)c->d_ff };
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
		w = k[i] > w ? k[i] : w;
	return w;
}

int rec_init(struct rec *r, const struct model *m, int B)
{
	memset(r, 0, sizeof *r);
	if (B < 1)
		return -1;
	const struct model_config *c = &m->c;
	size_t E = c->emb_dim, D = c->d_model, HD = (size_t)c->n_head * c->d_head;
	size_t F = c->d_ff, F1 = c->ff_glu ? 2 * F : F, V = c->vocab;
	size_t ED = E > D ? E : D;
	r->m = m;
	r->B = B;
	r->state_floats = rec_state_floats(c);
	r->state = xcalloc((size_t)B * r->state_floats, sizeof(float));
	r->pos = xcalloc(B, sizeof *r->pos);
	r->logits = xcalloc((size_t)B * V, sizeof(float));
	struct {
		float **p;
		size_t n;
	} t[] = {
		{ &r->emb, E }, { &r->x, D }, { &r->y2, D }, { &r->qkv, 3 * HD }, { &r->att, HD },
		{ &r->u, F1 }, { &r->g, F }, { &r->e, E }, { &r->out, V },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		*t[i].p = xcalloc((size_t)B * t[i].n, sizeof(float));
	r->slots = par_max_threads();
	r->par_min_macs = REC_PAR_MIN_MACS;
	r->th = xcalloc(r->slots, sizeof *r->th);
	for (int s = 0; s < r->slots; s++) {
		struct rec_thread *th = &r->th[s];
		th->h = xcalloc((size_t)B * ED, sizeof(float));
		th->hs = xcalloc((size_t)B * ED, sizeof(float));
		th->mean = xcalloc(B, sizeof(float));
		th->rstd = xcalloc(B, sizeof(float));
		th->q = xcalloc((size_t)B * (widest_input(c) + 1), sizeof *th->q);
		th->qs = xcalloc(B, sizeof(float));
		th->attn = xcalloc(attn_slot_floats(c), sizeof(float));
	}
	r->active = xcalloc(B, sizeof *r->active);
	r->tok = xcalloc(B, sizeof *r->tok);
	r->feed = xcalloc(B, sizeof *r->feed);
	return 0;
}

void rec_free(struct rec *r)
{
	float *bufs[] = { r->state, r->logits, r->emb, r->x, r->y2, r->qkv, r->att, r->u, r->g,
		r->e, r->out };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		free(bufs[i]);
	for (int s = 0; s < r->slots; s++) {
		struct rec_thread *th = &r->th[s];
		free(th->h), free(th->hs), free(th->mean), free(th->rstd);
		free(th->q), free(th->qs), free(th->attn);
	}
	free(r->th);
	free(r->pos);
	free(r->active);
	free(r->tok);
	free(r->feed);
	quant_free(r);
	memset(r, 0, sizeof *r);
}

void rec_reset(struct rec *r, int b)
{
	memset(r->state + (size_t)b * r->state_floats, 0, r->state_floats * sizeof(float));
	memset(r->logits + (size_t)b * r->m->c.vocab, 0, r->m->c.vocab * sizeof(float));
	r->pos[b] = 0;
}

const float *rec_logits(const struct rec *r, int b)
{
	return r->logits + (size_t)b * r->m->c.vocab;
}

int64_t rec_pos(const struct rec *r, int b)
{
	return r->pos[b];
}

/* ------------------------------------------------------------------ snapshots */

void rec_snapshot_init(struct rec_snapshot *s, const struct rec *r)
{
	s->state_floats = r->state_floats;
	s->vocab = r->m->c.vocab;
	s->pos = 0;
	s->state = xcalloc(s->state_floats + s->vocab, sizeof(float));
}

void rec_snapshot_free(struct rec_snapshot *s)
{
	free(s->state);
	memset(s, 0, sizeof *s);
}

void rec_save(const struct rec *r, int b, struct rec_snapshot *s)
{
	memcpy(s->state, r->state + (size_t)b * r->state_floats, s->state_floats * sizeof(float));
	memcpy(s->state + s->state_floats, rec_logits(r, b), s->vocab * sizeof(float));
	s->pos = r->pos[b];
}

void rec_restore(struct rec *r, int b, const struct rec_snapshot *s)
{
	memcpy(r->state + (size_t)b * r->state_floats, s->state, s->state_floats * sizeof(float));
	memcpy(r->logits + (size_t)b * s->vocab, s->state + s->state_floats,
		s->vocab * sizeof(float));
	r->pos[b] = s->pos;
}

/* ------------------------------------------------------------------ attention heads */

/* One local head at position t: k, v join the ring (slot t mod 2W), then the
 * query attends to positions k0 = (t/W - 1)*W (0 in the first block) .. t,
 * as local_attn_forward's blocks do. scores: 2W floats. */
VM_CLONES
static void local_head_step(float *o, const float *q, const float *k, const float *v,
	float *ring, int64_t t, int W, int dh, float *scores)
{
	int R = 2 * W;
	float *keys = ring, *vals = ring + (size_t)R * dh;
	memcpy(keys + (size_t)(t % R) * dh, k, dh * sizeof *k);
	memcpy(vals + (size_t)(t % R) * dh, v, dh * sizeof *v);
	int64_t k0 = t >= W ? (t / W - 1) * W : 0;
	int nk = (int)(t - k0 + 1), s0 = (int)(k0 % R);
	float scale = 1.0f / sqrtf((float)dh), mx;
	for (int j = 0, s = s0; j < nk; j++, s = s + 1 == R ? 0 : s + 1)
		scores[j] = scale * vm_dot(q, keys + (size_t)s * dh, dh);
	mx = scores[0];
	for (int j = 1; j < nk; j++)
		mx = scores[j] > mx ? scores[j] : mx;
	for (int j = 0; j < nk; j++)
		scores[j] = vm_exp(scores[j] - mx);
	float inv = 1.0f / vm_sum(scores, nk);
	memset(o, 0, dh * sizeof *o);
	for (int j = 0, s = s0; j < nk; j++, s = s + 1 == R ? 0 : s + 1) {
		const float *vr = vals + (size_t)s * dh;
		float p = scores[j] * inv;
		for (int e = 0; e < dh; e++)
			o[e] += p * vr[e];
	}
}

/* One linear head: qf = softmax(q) dh^-0.5, kf = exp(k); S += kf v^T,
 * z += kf (the token sees itself); o = qf S / max(qf . z, eps). S is read
 * right after each row's update, one pass. feat: 2 dh floats. */
VM_CLONES
static void linear_head_step(float *o, const float *q, const float *k, const float *v,
	float *S, int dh, float eps, float *feat)
{
	float *qf = feat, *kf = feat + dh, *z = S + (size_t)dh * dh;
	float mx = q[0];
	for (int i = 1; i < dh; i++)
		mx = q[i] > mx ? q[i] : mx;
	for (int i = 0; i < dh; i++)
		qf[i] = vm_exp(q[i] - mx);
	float s = (1.0f / sqrtf((float)dh)) / vm_sum(qf, dh);
	for (int i = 0; i < dh; i++)
		qf[i] *= s;
	for (int i = 0; i < dh; i++)
		kf[i] = vm_exp(k[i]);
	for (int i = 0; i < dh; i++)
		z[i] += kf[i];
	memset(o, 0, dh * sizeof *o);
	for (int e = 0; e < dh; e++) {
		float *row = S + (size_t)e * dh, ke = kf[e], qe = qf[e];
		for (int f = 0; f < dh; f++)
			row[f] += ke * v[f];
		for (int f = 0; f < dh; f++)
			o[f] += qe * row[f];
	}
	float den = vm_dot(qf, z, dh), inv = 1.0f / (den >= eps ? den : eps);
	for (int f = 0; f < dh; f++)
		o[f] *= inv;
}

/* ------------------------------------------------------------------ the team */

/* A step runs as one parallel region: every function below is called by
 * each thread of the team, which splits the work by rows (streams), heads
 * or output columns and meets at barriers. Each output element is computed
 * by one thread the same way whatever the split (BLIS does not split k), so
 * results do not depend on the thread count. Without OpenMP the team is
 * the calling thread. */
#ifdef _OPENMP
#define TEAM_BARRIER PAR_PRAGMA_(omp barrier)
static int team_size(void) { return omp_get_num_threads(); }
#else
#define TEAM_BARRIER
static int team_size(void) { return 1; }
#endif

/* This thread's share [*i0, *i1) of n items, in blocks of `block`. */
static void team_share(int n, int block, int *i0, int *i1)
{
	int t = par_thread(), nt = team_size(), blocks = (n + block - 1) / block;
	*i0 = blocks * t / nt * block;
	*i1 = blocks * (t + 1) / nt * block;
	*i1 = *i1 < n ? *i1 : n;
	*i0 = *i0 < *i1 ? *i0 : *i1;
}

/* Output columns per block of a thread's share (keeps BLIS's kernels on
 * whole panels). */
#define COL_BLOCK 16

static struct rec_thread *my_scratch(const struct rec *r)
{
	return &r->th[par_thread()];
}

/* The n rows (C) of x as a product's input; with int8 weights this thread
 * quantizes them (all of them, into its own scratch: no barrier). */
static struct act act_of(const struct rec *r, const float *x, int n, int C)
{
	struct act a = { x, NULL, NULL, n, C, C + C % 2 };
	if (r->precision == REC_INT8) {
		struct rec_thread *th = my_scratch(r);
		quant_rows(th->q, a.ldq, th->qs, x, n, C);
		a.q = th->q;
		a.qs = th->qs;
	}
	return a;
}

/* out (n,OC) = beta * out + inp (n,C) . w^T + bias over columns [j0, j1),
 * as linear_forward does it (bias first, then the product with beta 1), or
 * from the f16 or int8 copy of w (quant.c). No barrier. */
static void linear_cols(const struct rec *r, float *out, int ldo, const struct act *a,
	const float *w, const float *bias, int j0, int j1, float beta)
{
	int n = a->n, C = a->C;
	if (j1 <= j0)
		return;
	if (r->precision != REC_F32) {
		quant_cols(r, out, ldo, a, w, bias, j0, j1, beta);
		return;
	}
	if (bias) {
		for (int i = 0; i < n; i++) {
			float *o = out + (size_t)i * ldo;
			for (int j = j0; j < j1; j++)
				o[j] = beta == 0.0f ? bias[j] : o[j] + bias[j];
		}
		beta = 1.0f;
	}
	mm_serial(0, 1, n, j1 - j0, C, 1.0f, a->x, C, w + (size_t)j0 * C, C, beta, out + j0, ldo);
}

/* The whole layer: out (n,OC) = beta * out + inp . w^T + bias, shared by
 * the team, then a barrier. */
static void team_linear(const struct rec *r, float *out, const float *inp, const float *w,
	const float *bias, int n, int C, int OC, float beta)
{
	int j0, j1;
	struct act a = act_of(r, inp, n, C);
	team_share(OC, COL_BLOCK, &j0, &j1);
	linear_cols(r, out, OC, &a, w, bias, j0, j1, beta);
	TEAM_BARRIER
}

/* ------------------------------------------------------------------ blocks */

/* LayerNorm of the n rows of x into this thread's scratch, then the token
 * shift against each stream's previous row (which becomes this row's first
 * half: shift_commit, after the next barrier). Every thread computes all
 * rows: no barrier. Returns the input of the sublayer's first linear layer.
 * shift2 picks the feed-forward's row. */
static const float *sub_input(const struct rec *r, int l, int n, const float *x, const float *g,
	const float *b, int shift2)
{
	const struct model_config *c = &r->m->c;
	struct rec_thread *th = my_scratch(r);
	int D = c->d_model, half = D / 2;
	layernorm_forward(th->h, th->mean, th->rstd, x, g, b, n, D, c->ln_eps);
	if (!c->token_shift)
		return th->h;
	for (int i = 0; i < n; i++) {
		struct layer_state ls = layer_state(r, r->active[i], l);
		const float *prev = shift2 ? ls.shift2 : ls.shift1;
		float *hs = th->hs + (size_t)i * D, *h = th->h + (size_t)i * D;
		memcpy(hs, prev, half * sizeof *hs);
		memcpy(hs + half, h + half, (D - half) * sizeof *hs);
	}
	return th->hs;
}

/* The rows of sub_input become the streams' previous rows; rows shared by
 * the team. Called after a barrier that every thread passed after reading
 * the previous rows, and before this thread's next sub_input. */
static void shift_commit(const struct rec *r, int l, int n, int shift2)
{
	const struct model_config *c = &r->m->c;
	const struct rec_thread *th = my_scratch(r);
	int D = c->d_model, i0, i1;
	if (!c->token_shift)
		return;
	team_share(n, 1, &i0, &i1);
	for (int i = i0; i < i1; i++) {
		struct layer_state ls = layer_state(r, r->active[i], l);
		memcpy(shift2 ? ls.shift2 : ls.shift1, th->h + (size_t)i * D,
			(D / 2) * sizeof(float));
	}
}

/* Heads [h0, h1) of layer l for the n rows: their q, k, v columns of the
 * qkv product, then their attention into r->att. */
static void heads_step(struct rec *r, int l, int n, const struct act *a, int h0, int h1)
{
	const struct model_config *c = &r->m->c;
	const struct model_params *p = &r->m->params;
	int D = c->d_model, dh = c->d_head, HD = c->n_head * dh;
	const float *w = p->w_qkv + (size_t)l * 3 * HD * D;
	const float *bias = c->qkv_bias ? p->b_qkv + (size_t)l * 3 * HD : NULL;
	float *scratch = my_scratch(r)->attn;
	for (int part = 0; part < 3; part++)	/* q, k, v */
		linear_cols(r, r->qkv, 3 * HD, a, w, bias, part * HD + h0 * dh, part * HD + h1 * dh,
			0.0f);
	for (int i = 0; i < n; i++) {
		int b = r->active[i];
		struct layer_state ls = layer_state(r, b, l);
		for (int h = h0; h < h1; h++) {
			const float *q = r->qkv + (size_t)i * 3 * HD + (size_t)h * dh;
			float *o = r->att + (size_t)i * HD + (size_t)h * dh;
			if (h < c->n_local)
				local_head_step(o, q, q + HD, q + 2 * HD,
					ls.rings + h * ring_floats(c), r->pos[b], c->window, dh,
					scratch);
			else
				linear_head_step(o, q, q + HD, q + 2 * HD,
					ls.lins + (h - c->n_local) * lin_floats(c), dh,
					c->lin_eps, scratch);
		}
	}
}

/* out (n,D) += Attn(LN(shift(x))); x may be out. Each thread runs its own
 * heads from its own LayerNorm: one barrier before the out projection. */
static void attn_sub(struct rec *r, int l, int n, const float *x, float *out)
{
	const struct model_config *c = &r->m->c;
	const struct model_params *p = &r->m->params;
	int D = c->d_model, HD = c->n_head * c->d_head, h0, h1;
	const float *hs = sub_input(r, l, n, x, p->ln1_g + (size_t)l * D,
		p->ln1_b + (size_t)l * D, 0);
	struct act a = act_of(r, hs, n, D);
	team_share(c->n_head, 1, &h0, &h1);
	heads_step(r, l, n, &a, h0, h1);
	TEAM_BARRIER
	shift_commit(r, l, n, 0);
	team_linear(r, out, r->att, p->w_o + (size_t)l * D * HD, p->b_o + (size_t)l * D, n, HD, D,
		1.0f);
}

/* g (n,F) columns [j0, j1) = GELU(u) (u rows of ldu), or with GLU
 * GELU(u) * u[F + j]: as gelu_forward and glu_forward compute them. */
VM_CLONES
static void activate_cols(float *g, const float *u, int n, int F, int ldu, int glu, int j0,
	int j1)
{
	for (int i = 0; i < n; i++) {
		const float *a = u + (size_t)i * ldu;
		float *o = g + (size_t)i * F;
		if (glu)
			for (int j = j0; j < j1; j++)
				o[j] = vm_gelu(a[j]) * a[F + j];
		else
			for (int j = j0; j < j1; j++)
				o[j] = vm_gelu(a[j]);
	}
}

/* out (n,D) += FFN(LN(shift(x))); x may be out. Each thread computes its
 * columns of the first layer (and, with GLU, the matching gate columns)
 * and activates them itself: one barrier before the second layer. */
static void ffn_sub(struct rec *r, int l, int n, const float *x, float *out)
{
	const struct model_config *c = &r->m->c;
	const struct model_params *p = &r->m->params;
	int D = c->d_model, F = c->d_ff, F1 = c->ff_glu ? 2 * F : F, j0, j1;
	const float *hs = sub_input(r, l, n, x, p->ln2_g + (size_t)l * D,
		p->ln2_b + (size_t)l * D, 1);
	const float *w1 = p->w_1 + (size_t)l * F1 * D, *b1 = p->b_1 + (size_t)l * F1;
	struct act a = act_of(r, hs, n, D);
	team_share(F, COL_BLOCK, &j0, &j1);
	linear_cols(r, r->u, F1, &a, w1, b1, j0, j1, 0.0f);
	if (c->ff_glu)
		linear_cols(r, r->u, F1, &a, w1, b1, F + j0, F + j1, 0.0f);
	activate_cols(r->g, r->u, n, F, F1, c->ff_glu, j0, j1);
	TEAM_BARRIER
	shift_commit(r, l, n, 1);
	team_linear(r, out, r->g, p->w_2 + (size_t)l * D * F, p->b_2 + (size_t)l * D, n, F, D,
		1.0f);
}

/* r->x (n,D): the stack's input, replaced by its output. */
static void stack_step(struct rec *r, int n)
{
	const struct model_config *c = &r->m->c;
	int D = c->d_model, i0, i1;
	float *x = r->x, *y2 = r->y2;
	if (!c->reversible) {
		for (int l = 0; l < c->n_layer; l++) {
			attn_sub(r, l, n, x, x);
			ffn_sub(r, l, n, x, x);
		}
		return;
	}
	team_share(n, 1, &i0, &i1);	/* x is y1 */
	memcpy(y2 + (size_t)i0 * D, x + (size_t)i0 * D, (size_t)(i1 - i0) * D * sizeof *x);
	TEAM_BARRIER
	for (int l = 0; l < c->n_layer; l++) {
		attn_sub(r, l, n, y2, x);
		ffn_sub(r, l, n, x, y2);
	}
	for (size_t k = (size_t)i0 * D; k < (size_t)i1 * D; k++)
		x[k] = 0.5f * (x[k] + y2[k]);
	TEAM_BARRIER
}

/* ------------------------------------------------------------------ step */

/* The embedding rows of this thread's share: token plus the position
 * row(s) for absolute position t (clamped past the table: recurrent.h);
 * then the E->D projection. Ends at a barrier. */
static void embed_step(struct rec *r, int n)
{
	const struct model_config *c = &r->m->c;
	const struct model_params *p = &r->m->params;
	int E = c->emb_dim, D = c->d_model, i0, i1;
	float *emb = E != D ? r->emb : r->x;
	team_share(n, 1, &i0, &i1);
	for (int i = i0; i < i1; i++) {
		int64_t t = r->pos[r->active[i]];
		const float *w = p->wte + (size_t)r->tok[i] * E, *p1, *p2 = NULL;
		if (c->pos == POS_AXIAL) {
			int64_t rows = (c->max_ctx + c->axial_w - 1) / c->axial_w;
			int64_t a = t / c->axial_w;
			p1 = p->pos_a + (size_t)(a < rows ? a : rows - 1) * E;
			p2 = p->pos_b + (size_t)(t % c->axial_w) * E;
		} else {
			p1 = p->pos_a + (size_t)(t < c->max_ctx ? t : c->max_ctx - 1) * E;
		}
		float *o = emb + (size_t)i * E;
		for (int k = 0; k < E; k++)	/* as embed_forward */
			o[k] = w[k] + p1[k] + (p2 ? p2[k] : 0.0f);
	}
	TEAM_BARRIER
	if (E != D)
		team_linear(r, r->x, r->emb, p->w_in, p->b_in, n, E, D, 0.0f);
}

/* The stack's output r->x (n,D) to logits r->out (n,V); the final
 * LayerNorm computed whole by every thread. Ends without a barrier (the
 * parallel region's end is one). */
static void head_step(struct rec *r, int n)
{
	const struct model_config *c = &r->m->c;
	const struct model_params *p = &r->m->params;
	struct rec_thread *th = my_scratch(r);
	int E = c->emb_dim, D = c->d_model, V = c->vocab, j0, j1;
	const float *e = r->x;
	if (E != D) {
		team_linear(r, r->e, r->x, p->w_out, p->b_out, n, D, E, 0.0f);
		e = r->e;
	}
	layernorm_forward(th->h, th->mean, th->rstd, e, p->lnf_g, p->lnf_b, n, E, c->ln_eps);
	struct act a = act_of(r, th->h, n, E);
	team_share(V, COL_BLOCK, &j0, &j1);
	linear_cols(r, r->out, V, &a, p->w_head, c->head_bias ? p->b_head : NULL, j0, j1, 0.0f);
}

/* Multiply-adds of one token through the weights. */
static double token_macs(const struct model_config *c)
{
	double D = c->d_model, E = c->emb_dim, HD = (double)c->n_head * c->d_head;
	double F = c->d_ff, F1 = c->ff_glu ? 2 * F : F;
	return c->n_layer * (4 * HD * D + F1 * D + F * D) + (E != D ? 2 * E * D : 0) +
		(double)c->vocab * E;
}

void rec_step(struct rec *r, const int *tok)
{
	const struct model_config *c = &r->m->c;
	int n = 0, V = c->vocab;
	for (int b = 0; b < r->B; b++) {
		if (tok[b] < 0)
			continue;
		if (tok[b] >= V)
			errx(EX_DATAERR, "rec_step: token %d of stream %d outside [0, %d)", tok[b], b,
				V);
		r->active[n] = b;
		r->tok[n++] = tok[b];
	}
	if (n == 0)
		return;
	int threads = par_max_threads();
	threads = threads < r->slots ? threads : r->slots;
	if (n * token_macs(c) < r->par_min_macs)
		threads = 1;
	(void)threads;	/* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
	{
		embed_step(r, n);
		stack_step(r, n);
		head_step(r, n);
	}
	for (int i = 0; i < n; i++) {
		int b = r->active[i];
		memcpy(r->logits + (size_t)b * V, r->out + (size_t)i * V, V * sizeof(float));
		r->pos[b]++;
	}
}

void rec_feed(struct rec *r, int b, const int *tok, size_t n)
{
	for (int s = 0; s < r->B; s++)
		r->feed[s] = -1;
	for (size_t i = 0; i < n; i++) {
		r->feed[b] = tok[i];
		rec_step(r, r->feed);
	}
}
