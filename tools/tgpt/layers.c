/* layers.c: the pointwise and dense layers of the tgpt model (sgemm wrapper,
 * linear, LayerNorm, GELU/GLU, dropout, token shift, embeddings, cross-entropy), each
 * a forward/backward pair; the attention layers are in attention.c. */
#include <blis.h>
#include <math.h>
#include <string.h>

#include "hash.h"
#include "layers.h"
#include "parallel.h"
#include "vecmath.h"

/* ------------------------------------------------------------------ sgemm */

double mm_flops;

/* The product on BLIS's threads (rntm NULL) or on the calling thread only. */
static void gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
	const float *b, int ldb, float beta, float *c, int ldc, int serial)
{
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0) {	/* BLIS would do the same; spelled out for clarity */
		for (int i = 0; i < m; i++)
			for (int j = 0; j < n; j++)
				c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
		return;
	}
	rntm_t one = BLIS_RNTM_INITIALIZER;
	if (serial)
		bli_rntm_set_num_threads(1, &one);
	PAR_ATOMIC	/* serial products run on several threads at once */
	mm_flops += 2.0 * m * n * k;
	/* The typed API takes non-const pointers; it does not write A or B. */
	bli_sgemm_ex(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
		m, n, k, &alpha, (float *)a, lda, 1, (float *)b, ldb, 1, &beta, c, ldc, 1, NULL,
		serial ? &one : NULL);
}

void mm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
	const float *b, int ldb, float beta, float *c, int ldc)
{
	gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 0);
}

void mm_serial(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
	const float *b, int ldb, float beta, float *c, int ldc)
{
	gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 1);
}

/* dst (C) += column sums of src (N,C), column blocks in parallel, each
 * column summed in row order (the serial order, whatever the threads). */
static void add_column_sums(float *dst, const float *src, int N, int C)
{
	PAR_FOR((size_t)N * C)
	for (int j0 = 0; j0 < C; j0 += 16) {
		int j1 = j0 + 16 < C ? j0 + 16 : C;
		for (int n = 0; n < N; n++) {
			const float *row = src + (size_t)n * C;
			for (int j = j0; j < j1; j++)
				dst[j] += row[j];
		}
	}
}

/* ------------------------------------------------------------------ linear */

void linear_forward(float *out, const float *inp, const float *w, const float *bias,
	int N, int C, int OC, float alpha, float beta)
{
	// out (N,OC), inp (N,C), w (OC,C), bias (OC)
	if (bias) {
		PAR_FOR((size_t)N * OC)
		for (int n = 0; n < N; n++) {
			float *o = out + (size_t)n * OC;
			if (beta == 0.0f)
				for (int j = 0; j < OC; j++)
					o[j] = alpha * bias[j];
			else
				for (int j = 0; j < OC; j++)
					o[j] += alpha * bias[j];
		}
		beta = 1.0f;
	}
	mm(0, 1, N, OC, C, alpha, inp, C, w, C, beta, out, OC);
}

void linear_backward(float *dinp, float dinp_beta, float *dw, float *db,
	const float *dout, const float *inp, const float *w, int N, int C, int OC)
{
	// dw (OC,C) += dout^T (OC,N) . inp (N,C)
	mm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
	if (db)
		add_column_sums(db, dout, N, OC);
	// dinp (N,C) = beta dinp + dout (N,OC) . w (OC,C)
	if (dinp)
		mm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, dinp_beta, dinp, C);
}

/* ------------------------------------------------------------------ layernorm */

/* sum of (x - mu)^2 and of g * d * (x - mu) * rs over a row, in 8
 * interleaved partial sums like vm_sum (vectorized, same bits everywhere) */
static float sum_sqdev(const float *x, float mu, int C)
{
	float acc[8] = { 0 };
	int i = 0;
	for (; i + 8 <= C; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += (x[i + j] - mu) * (x[i + j] - mu);
	for (int j = 0; i < C; i++, j++)
		acc[j] += (x[i] - mu) * (x[i] - mu);
	return vm_sum(acc, 8);
}

static float sum_dnorm_norm(const float *g, const float *d, const float *x, float mu, float rs,
	int C)
{
	float acc[8] = { 0 };
	int i = 0;
	for (; i + 8 <= C; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += g[i + j] * d[i + j] * ((x[i + j] - mu) * rs);
	for (int j = 0; i < C; i++, j++)
		acc[j] += g[i] * d[i] * ((x[i] - mu) * rs);
	return vm_sum(acc, 8);
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
	const float *g, const float *b, int N, int C, float eps)
{
	PAR_FOR((size_t)N * C)
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float mu = vm_sum(x, C) / C;	/* two passes: no cancellation */
		mean[n] = mu;
		rstd[n] = 1.0f / sqrtf(sum_sqdev(x, mu, C) / C + eps);
	}
	layernorm_apply(out, mean, rstd, inp, g, b, N, C);
}

void layernorm_apply(float *out, const float *mean, const float *rstd, const float *inp,
	const float *g, const float *b, int N, int C)
{
	PAR_FOR((size_t)N * C)
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *o = out + (size_t)n * C, mu = mean[n], rs = rstd[n];
		for (int i = 0; i < C; i++)
			o[i] = (x[i] - mu) * rs * g[i] + b[i];
	}
}

void layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
	const float *inp, const float *g, const float *mean, const float *rstd, int N, int C)
{
	PAR_FOR((size_t)N * C)
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
		float *dx = dinp + (size_t)n * C, mu = mean[n], rs = rstd[n];
		float dnorm_mean = vm_dot(g, d, C) / C;
		float dnorm_norm_mean = sum_dnorm_norm(g, d, x, mu, rs, C) / C;
		for (int i = 0; i < C; i++) {
			float norm = (x[i] - mu) * rs, dnorm = g[i] * d[i];
			dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * rs;
		}
	}
	/* gamma and beta: column blocks, each summed in row order */
	PAR_FOR((size_t)N * C)
	for (int i0 = 0; i0 < C; i0 += 16) {
		int i1 = i0 + 16 < C ? i0 + 16 : C;
		for (int n = 0; n < N; n++) {
			const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
			float mu = mean[n], rs = rstd[n];
			for (int i = i0; i < i1; i++) {
				db[i] += d[i];
				dg[i] += (x[i] - mu) * rs * d[i];
			}
		}
	}
}

/* ------------------------------------------------------------------ GELU, GLU */

VM_CLONES
void gelu_forward(float *out, const float *inp, size_t n)
{
	PAR_FOR(n)
	for (size_t i = 0; i < n; i++)
		out[i] = vm_gelu(inp[i]);
}

VM_CLONES
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
	PAR_FOR(n)
	for (size_t i = 0; i < n; i++)
		dinp[i] = dout[i] * vm_gelu_grad(inp[i]);
}

VM_CLONES
void gelu_forward_grad(float *out, float *grad, const float *inp, size_t n)
{
	PAR_FOR(n)
	for (size_t i = 0; i < n; i++) {
		float phi, x = inp[i];
		out[i] = x * (phi = vm_phi(x));
		grad[i] = phi + x * 0.39894228040143268f * vm_exp(-0.5f * x * x);
	}
}

VM_CLONES
void glu_forward(float *out, const float *inp, int N, int F)
{
	PAR_FOR((size_t)N * F)
	for (int n = 0; n < N; n++) {
		const float *a = inp + (size_t)n * 2 * F, *b = a + F;
		float *o = out + (size_t)n * F;
		for (int i = 0; i < F; i++)
			o[i] = vm_gelu(a[i]) * b[i];
	}
}

VM_CLONES
void glu_backward(float *dinp, const float *inp, const float *dout, int N, int F)
{
	PAR_FOR((size_t)N * F)
	for (int n = 0; n < N; n++) {
		const float *a = inp + (size_t)n * 2 * F, *b = a + F, *d = dout + (size_t)n * F;
		float *da = dinp + (size_t)n * 2 * F, *dbv = da + F;
		for (int i = 0; i < F; i++) {
			float ga = vm_gelu(a[i]), dga = vm_gelu_grad(a[i]);
			dbv[i] = d[i] * ga;
			da[i] = d[i] * b[i] * dga;
		}
	}
}

/* ------------------------------------------------------------------ dropout */

/* Masks hash with splitmix64's finaliser (hash.h), bit for bit the same on
 * every machine. */
uint64_t dropout_key(uint64_t seed, uint64_t pass, int layer, int site)
{
	uint64_t where = ((uint64_t)(uint32_t)layer << 8 | ((uint32_t)site & 0xff)) + 1;
	return splitmix64_mix(seed ^ splitmix64_mix(pass + SPLITMIX64_GAMMA * splitmix64_mix(where)));
}

/* An element is dropped when its 16 bits of the hash fall below this: one
 * 64-bit hash decides four neighbouring elements (a quarter of the hashing,
 * which is most of dropout's cost). */
static uint32_t drop_threshold(float p)
{
	double t = (double)p * 65536.0;
	return t <= 0 ? 0 : t >= 65536.0 ? 65536u : (uint32_t)t;
}

double dropout_rate(float p)
{
	return drop_threshold(p) / 65536.0;
}

void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t key, uint64_t idx0)
{
	uint32_t t = drop_threshold(p);
	float keep = 1.0f / (1.0f - (float)dropout_rate(p));
	uint64_t g0 = idx0 / 4, g1 = (idx0 + n + 3) / 4, end = idx0 + n;
	PAR_FOR(n)
	for (uint64_t g = g0; g < g1; g++) {	/* elements 4g .. 4g+3 of the whole tensor */
		uint64_t h = splitmix64_mix(key + SPLITMIX64_GAMMA * g);
		for (uint64_t e = g * 4 < idx0 ? idx0 : g * 4; e < g * 4 + 4 && e < end; e++) {
			size_t i = (size_t)(e - idx0);
			uint32_t r = (uint32_t)(h >> (16 * (e & 3))) & 0xffffu;
			out[i] = r < t ? 0.0f : inp[i] * keep;
		}
	}
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t key,
	uint64_t idx0)
{
	dropout_forward(dinp, dout, n, p, key, idx0);	/* d(m x / (1-p)) = m / (1-p) */
}

/* ------------------------------------------------------------------ token shift */

void shift_forward(float *out, const float *inp, int B, int T, int C)
{
	int half = C / 2;
	PAR_FOR((size_t)B * T * C)
	for (int r = 0; r < B * T; r++) {
		int t = r % T;
		float *o = out + (size_t)r * C;
		const float *x = inp + (size_t)r * C;
		if (t == 0)
			memset(o, 0, half * sizeof *o);
		else
			memcpy(o, x - C, half * sizeof *o);
		memcpy(o + half, x + half, (C - half) * sizeof *o);
	}
}

void shift_backward(float *dinp, const float *dout, int B, int T, int C)
{
	int half = C / 2;
	PAR_FOR((size_t)B * T * C)
	for (int r = 0; r < B * T; r++) {
		int t = r % T;
		float *dx = dinp + (size_t)r * C;
		const float *d = dout + (size_t)r * C;
		if (t == T - 1)
			memset(dx, 0, half * sizeof *dx);
		else
			memcpy(dx, d + C, half * sizeof *dx);
		memcpy(dx + half, d + half, (C - half) * sizeof *dx);
	}
}

/* ------------------------------------------------------------------ embedding */

static const float *pos_row(const float *pa, const float *pb, int axial_w, int t, int E,
	const float **second)
{
	if (axial_w > 0) {
		*second = pb + (size_t)(t % axial_w) * E;
		return pa + (size_t)(t / axial_w) * E;
	}
	*second = NULL;
	return pa + (size_t)t * E;
}

void embed_forward(float *out, const int *tok, const float *wte, const float *pa,
	const float *pb, int axial_w, int B, int T, int E)
{
	PAR_FOR((size_t)B * T * E)
	for (int r = 0; r < B * T; r++) {
		int t = r % T;
		float *o = out + (size_t)r * E;
		const float *w = wte + (size_t)tok[r] * E, *p2;
		const float *p1 = pos_row(pa, pb, axial_w, t, E, &p2);
		for (int i = 0; i < E; i++)
			o[i] = w[i] + p1[i] + (p2 ? p2[i] : 0.0f);
	}
}

void embed_backward(float *dwte, float *dpa, float *dpb, const float *dout, const int *tok,
	int axial_w, int B, int T, int E)
{
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			const float *d = dout + ((size_t)b * T + t) * E, *p2;
			float *dw = dwte + (size_t)tok[(size_t)b * T + t] * E;
			float *dp1 = (float *)pos_row(dpa, dpb, axial_w, t, E, &p2), *dp2 = (float *)p2;
			for (int i = 0; i < E; i++) {
				dw[i] += d[i];
				dp1[i] += d[i];
			}
			if (dp2)
				for (int i = 0; i < E; i++)
					dp2[i] += d[i];
		}
}

/* ------------------------------------------------------------------ cross-entropy */

static float logsumexp(const float *z, int V)
{
	float mx = z[0], s = 0.0f;
	for (int v = 1; v < V; v++)
		mx = z[v] > mx ? z[v] : mx;
	for (int v = 0; v < V; v++)
		s += vm_exp(z[v] - mx);
	return mx + logf(s);
}

double crossentropy_forward(float *lse, const float *logits, const int *targets,
	int ignore_id, int N, int V, int *n_valid)
{
	PAR_FOR((size_t)N * V)
	for (int n = 0; n < N; n++) {
		const float *z = logits + (size_t)n * V;
		lse[n] = logsumexp(z, V);
	}
	double sum = 0.0;	/* in row order */
	int valid = 0;
	for (int n = 0; n < N && targets; n++)
		if (targets[n] != ignore_id) {
			sum += (double)lse[n] - logits[(size_t)n * V + targets[n]];
			valid++;
		}
	*n_valid = valid;
	return sum;
}

VM_CLONES
void crossentropy_backward(float *dlogits, const float *logits, const float *lse,
	const int *targets, int ignore_id, float scale, int N, int V)
{
	PAR_FOR((size_t)N * V)
	for (int n = 0; n < N; n++) {
		const float *z = logits + (size_t)n * V;
		float *d = dlogits + (size_t)n * V, l = lse[n];
		if (targets[n] == ignore_id) {
			memset(d, 0, V * sizeof *d);
			continue;
		}
		for (int v = 0; v < V; v++)
			d[v] = scale * vm_exp(z[v] - l);
		d[targets[n]] -= scale;
	}
}
