/* layers.h: the layers of the tgpt model as llm.c-style NAME_forward / NAME_backward
 * pairs of plain functions over row-major float arrays, shapes in comments.
 * N = number of tokens (B*T), C = channels. Backward functions ACCUMULATE
 * into parameter gradients (dw, db, dg, ...) and say for each input gradient
 * whether it is overwritten or accumulated. Every matrix product goes through
 * mm() (BLIS bli_sgemm). Results are the same bits for any thread count. */
#ifndef TGPT_LAYERS_H
#define TGPT_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* C (m,n) = alpha * op(A) (m,k) * op(B) (k,n) + beta * C, all row-major with
 * row strides lda, ldb, ldc. op(A) is A (m rows of lda) when ta is 0, A^T (A
 * stored as k rows of lda) when ta is 1; likewise for B. beta 0 never reads C. */
void mm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
	const float *b, int ldb, float beta, float *c, int ldc);
/* The same on the calling thread only (for products inside a parallel loop
 * over heads). */
void mm_serial(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
	const float *b, int ldb, float beta, float *c, int ldc);
/* 2*m*n*k summed over all products (for GFLOP/s figures). */
extern double mm_flops;

/* out (N,OC) = beta * out + alpha * (inp (N,C) . w^T + bias), w (OC,C), bias
 * (OC) or NULL; beta is 0 or 1. alpha -1 with beta 1 subtracts the layer,
 * which is how the reversible backward rebuilds its inputs. */
void linear_forward(float *out, const float *inp, const float *w, const float *bias,
	int N, int C, int OC, float alpha, float beta);
/* dw (OC,C) += dout^T . inp; db (OC) += column sums of dout (db may be NULL);
 * dinp (N,C) = dinp_beta * dinp + dout . w (dinp may be NULL). dw is done
 * first, so dinp may share memory with inp. */
void linear_backward(float *dinp, float dinp_beta, float *dw, float *db,
	const float *dout, const float *inp, const float *w, int N, int C, int OC);

/* LayerNorm over the last axis: out (N,C), mean (N), rstd (N), inp (N,C),
 * g, b (C). layernorm_apply recomputes out from stored mean and rstd. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
	const float *g, const float *b, int N, int C, float eps);
void layernorm_apply(float *out, const float *mean, const float *rstd, const float *inp,
	const float *g, const float *b, int N, int C);
/* dinp (N,C) += ..., dg, db (C) += ...; dout (N,C). */
void layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
	const float *inp, const float *g, const float *mean, const float *rstd, int N, int C);

/* Exact GELU, x * Phi(x): out (n) from inp (n); dinp = dout * gelu'(inp)
 * (overwritten; may be the same array as dout). */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* Both at once (the backward needs the activation and the derivative). */
void gelu_forward_grad(float *out, float *grad, const float *inp, size_t n);
/* GLU with GELU gate: inp (N,2F) = [a | b], out (N,F) = gelu(a) * b;
 * dinp (N,2F) overwritten. */
void glu_forward(float *out, const float *inp, int N, int F);
void glu_backward(float *dinp, const float *inp, const float *dout, int N, int F);

/* Inverted dropout with a mask nothing stores: element i is kept (and
 * scaled by 1/(1-p)) when a counter-based hash of (key, idx0 + i) clears p,
 * else zeroed. The same key and index give the same mask on every call and
 * for any thread count, so a backward, or a reversible block recomputing
 * its forward, rebuilds the mask instead of keeping it; idx0 places the
 * elements in a larger tensor (the rows of a data-parallel rank). p in
 * [0, 1); the mask is the same map for the gradient, which dropout_backward
 * applies. out may be inp; dinp may be dout. */
uint64_t dropout_key(uint64_t seed, uint64_t pass, int layer, int site);
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key, uint64_t idx0);
void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
	uint64_t idx0);
/* The share of elements dropout_forward zeroes for p (p to 2^-16). */
double dropout_rate(float p);

/* Token shift: out (B,T,C) = inp with the first C/2 channels of each position
 * taken from the previous position (zero at t = 0), the rest kept.
 * dinp (B,T,C) overwritten. out and inp must not overlap. */
void shift_forward(float *out, const float *inp, int B, int T, int C);
void shift_backward(float *dinp, const float *dout, int B, int T, int C);

/* Token embedding plus position: out (B,T,E) = wte[tok] + pos(t) where
 * pos(t) = pa[t / axial_w] + pb[t % axial_w] (axial_w > 0) or pa[t]
 * (axial_w == 0, learned table). wte (V,E). Backward accumulates. */
void embed_forward(float *out, const int *tok, const float *wte, const float *pa,
	const float *pb, int axial_w, int B, int T, int E);
void embed_backward(float *dwte, float *dpa, float *dpb, const float *dout, const int *tok,
	int axial_w, int B, int T, int E);

/* Softmax cross-entropy: lse (N) = log sum exp of each logits row (N,V).
 * Returns the sum over rows whose target is not ignore_id of
 * lse - logit[target] (in double) and the count of those rows in *n_valid. */
double crossentropy_forward(float *lse, const float *logits, const int *targets,
	int ignore_id, int N, int V, int *n_valid);
/* dlogits (N,V) = scale * (softmax - onehot(target)), rows with the ignored
 * target zero. Overwritten. */
void crossentropy_backward(float *dlogits, const float *logits, const float *lse,
	const int *targets, int ignore_id, float scale, int N, int V);

/* Attention heads inside a fused qkv buffer: each of the B*T token rows holds
 * q (H*dh), then k (H*dh), then v (H*dh); head h is columns [h*dh, (h+1)*dh)
 * of each part. The attention output (B,T,H*dh) has the same head columns.
 * stat (B,T,H) keeps one float per token and head for the backward. A call
 * handles heads [h0, h1) of every sequence, one (sequence, head) pair per
 * thread at a time: scratch holds nslots slots of *_attn_scratch() floats
 * and at most nslots threads run. */
struct heads {
	int B, T, H, dh;
	int h0, h1;
};

/* Local causal softmax attention: tokens in blocks of W; a query sees the
 * keys of its own block up to itself and all of the previous block; scores
 * scaled by dh^-0.5. stat = log-sum-exp of the scaled scores of the row.
 * Work: two sgemm of W x 2W x dh per block; no T x T storage. */
size_t local_attn_scratch(int W);
void local_attn_forward(float *out, float *stat, const float *qkv, const struct heads *hd,
	int W, float *scratch, int nslots);
/* dqkv: the q, k, v columns of heads [h0,h1) overwritten. */
void local_attn_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
	const float *stat, const struct heads *hd, int W, float *scratch, int nslots);

/* Causal linear attention (softmax kernel): qf = softmax(q) * dh^-0.5 over
 * the head's channels, kf = exp(k), out_i = qf_i . S_i / max(qf_i . z_i, eps)
 * with S_i = sum_{j<=i} kf_j^T v_j and z_i = sum_{j<=i} kf_j. Chunked form:
 * inside a chunk of C tokens a masked C x C product, across chunks a carried
 * dh x dh state, so work and memory are linear in T. The forward REPLACES q
 * and k of its heads in qkv by qf and kf, which the backward takes (and
 * needs no exp then). stat = the denominator before the clamp. */
size_t linear_attn_scratch(int T, int dh, int C);
void linear_attn_forward(float *out, float *stat, float *qkv, const struct heads *hd, int C,
	float eps, float *scratch, int nslots);
/* qkv as the forward left it; dqkv: the q, k, v columns of heads [h0,h1)
 * overwritten with the gradients of the original q, k, v. */
void linear_attn_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
	const float *stat, const struct heads *hd, int C, float eps, float *scratch, int nslots);

#endif
