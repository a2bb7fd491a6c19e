/* attention.c: the two kinds of attention heads of the tgpt model, local
 * causal softmax over blocks and chunked causal linear attention, forward and
 * backward. Heads run in parallel (one thread per head and sequence, each on
 * its own scratch slot, BLIS serial inside); every product is an sgemm on a
 * block- or chunk-sized tile. */
#include <math.h>
#include <string.h>

#include "layers.h"
#include "parallel.h"
#include "vecmath.h"

/* One head of one sequence: the row-major views of its q, k, v (rows of ld
 * floats) and of its output and output gradient (rows of HD floats). */
struct head_view {
	const float *q, *k, *v;
	float *o;
	int ld, HD;
	float *st;	/* stat of the head's tokens, stride H */
	int H;
};

static struct head_view head_view(const float *qkv, float *out, float *stat,
	const struct heads *hd, int pair)
{
	int b = pair / (hd->h1 - hd->h0), h = hd->h0 + pair % (hd->h1 - hd->h0);
	size_t HD = (size_t)hd->H * hd->dh, row0 = (size_t)b * hd->T;
	const float *base = qkv + row0 * 3 * HD + (size_t)h * hd->dh;
	return (struct head_view){
		base, base + HD, base + 2 * HD,
		out + row0 * HD + (size_t)h * hd->dh, (int)(3 * HD), (int)HD,
		stat + row0 * hd->H + h, hd->H,
	};
}

static int head_pairs(const struct heads *hd)
{
	return hd->B * (hd->h1 - hd->h0);
}

static int slots_for(const struct heads *hd, int nslots)
{
	int pairs = head_pairs(hd);
	return nslots < pairs ? nslots : pairs;
}

/* ------------------------------------------------------------------ local attention */

size_t local_attn_scratch(int W)
{
	return 2 * (size_t)W * 2 * W;	/* scores and their gradient, W x 2W each */
}

/* Softmax in place over row (nk) of scaled scores, of which the first
 * visible count; the rest becomes 0. Returns the log-sum-exp. */
VM_CLONES
static float softmax_row(float *row, int visible, int nk)
{
	float mx = row[0], s = 0.0f;
	for (int j = 1; j < visible; j++)
		mx = row[j] > mx ? row[j] : mx;
	for (int j = 0; j < visible; j++)
		row[j] = vm_exp(row[j] - mx);
	s = vm_sum(row, visible);
	float inv = 1.0f / s;
	for (int j = 0; j < visible; j++)
		row[j] *= inv;
	for (int j = visible; j < nk; j++)
		row[j] = 0.0f;
	return mx + logf(s);
}

/* The block starting at t0: nq queries [t0, t0+nq), keys [k0, t0+nq). */
struct block {
	int t0, nq, k0, nk;
};

static struct block local_block(int t0, int T, int W)
{
	struct block bl;
	bl.t0 = t0;
	bl.nq = T - t0 < W ? T - t0 : W;
	bl.k0 = t0 >= W ? t0 - W : 0;
	bl.nk = t0 + bl.nq - bl.k0;
	return bl;
}

static void local_head_forward(struct head_view hv, int T, int dh, int W, float *S)
{
	float scale = 1.0f / sqrtf((float)dh);
	int ld = hv.ld;
	for (int t0 = 0; t0 < T; t0 += W) {
		struct block bl = local_block(t0, T, W);
		// S (nq,nk) = scale * q_blk (nq,dh) . k_win^T (dh,nk)
		mm_serial(0, 1, bl.nq, bl.nk, dh, scale, hv.q + (size_t)t0 * ld, ld,
			hv.k + (size_t)bl.k0 * ld, ld, 0.0f, S, bl.nk);
		for (int i = 0; i < bl.nq; i++)
			hv.st[(size_t)(t0 + i) * hv.H] = softmax_row(S + (size_t)i * bl.nk,
				t0 + i - bl.k0 + 1, bl.nk);
		// o_blk (nq,dh) = P (nq,nk) . v_win (nk,dh)
		mm_serial(0, 0, bl.nq, dh, bl.nk, 1.0f, S, bl.nk, hv.v + (size_t)bl.k0 * ld, ld,
			0.0f, hv.o + (size_t)t0 * hv.HD, hv.HD);
	}
}

void local_attn_forward(float *out, float *stat, const float *qkv, const struct heads *hd,
	int W, float *scratch, int nslots)
{
	size_t slot = local_attn_scratch(W);
	int threads = slots_for(hd, nslots);
	(void)threads;	/* unused without OpenMP */
	PAR_ITEMS(threads)
	for (int p = 0; p < head_pairs(hd); p++)
		local_head_forward(head_view(qkv, out, stat, hd, p), hd->T, hd->dh, W,
			scratch + par_thread() * slot);
}

/* dq, dk, dv: the head's columns of dqkv (rows of ld); dO (rows of HD). */
static void local_head_backward(struct head_view hv, float *dq, const float *dO, int T, int dh,
	int W, float *P, float *dP)
{
	float scale = 1.0f / sqrtf((float)dh), *dk = dq + hv.HD, *dv = dq + 2 * hv.HD;
	int ld = hv.ld, HD = hv.HD;
	for (int t = 0; t < T; t++) {	/* windows overlap: dk, dv accumulate */
		memset(dk + (size_t)t * ld, 0, dh * sizeof *dk);
		memset(dv + (size_t)t * ld, 0, dh * sizeof *dv);
	}
	for (int t0 = 0; t0 < T; t0 += W) {
		struct block bl = local_block(t0, T, W);
		const float *dOb = dO + (size_t)t0 * HD, *kw = hv.k + (size_t)bl.k0 * ld;
		// recompute P from the stored log-sum-exp
		mm_serial(0, 1, bl.nq, bl.nk, dh, scale, hv.q + (size_t)t0 * ld, ld, kw, ld, 0.0f, P,
			bl.nk);
		for (int i = 0; i < bl.nq; i++) {
			float *row = P + (size_t)i * bl.nk, lse = hv.st[(size_t)(t0 + i) * hv.H];
			int visible = t0 + i - bl.k0 + 1;
			for (int j = 0; j < visible; j++)
				row[j] = vm_exp(row[j] - lse);
			for (int j = visible; j < bl.nk; j++)
				row[j] = 0.0f;
		}
		// dP (nq,nk) = dO_blk (nq,dh) . v_win^T (dh,nk)
		mm_serial(0, 1, bl.nq, bl.nk, dh, 1.0f, dOb, HD, hv.v + (size_t)bl.k0 * ld, ld, 0.0f,
			dP, bl.nk);
		// dv_win (nk,dh) += P^T (nk,nq) . dO_blk (nq,dh)
		mm_serial(1, 0, bl.nk, dh, bl.nq, 1.0f, P, bl.nk, dOb, HD, 1.0f,
			dv + (size_t)bl.k0 * ld, ld);
		// dS = P * (dP - rowsum(dO * O)) * scale: the softmax backward
		for (int i = 0; i < bl.nq; i++) {
			const float *oi = hv.o + (size_t)(t0 + i) * HD, *di = dOb + (size_t)i * HD;
			float *p = P + (size_t)i * bl.nk, *dp = dP + (size_t)i * bl.nk;
			float D = vm_dot(oi, di, dh);
			for (int j = 0; j < bl.nk; j++)
				dp[j] = p[j] * (dp[j] - D) * scale;
		}
		// dq_blk (nq,dh) = dS . k_win; dk_win (nk,dh) += dS^T . q_blk
		mm_serial(0, 0, bl.nq, dh, bl.nk, 1.0f, dP, bl.nk, kw, ld, 0.0f,
			dq + (size_t)t0 * ld, ld);
		mm_serial(1, 0, bl.nk, dh, bl.nq, 1.0f, dP, bl.nk, hv.q + (size_t)t0 * ld, ld, 1.0f,
			dk + (size_t)bl.k0 * ld, ld);
	}
}

void local_attn_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
	const float *stat, const struct heads *hd, int W, float *scratch, int nslots)
{
	size_t slot = local_attn_scratch(W);
	int threads = slots_for(hd, nslots);
	(void)threads;	/* unused without OpenMP */
	PAR_ITEMS(threads)
	for (int p = 0; p < head_pairs(hd); p++) {
		struct head_view hv = head_view(qkv, (float *)out, (float *)stat, hd, p);
		struct head_view dv = head_view(dqkv, (float *)dout, (float *)stat, hd, p);
		float *P = scratch + par_thread() * slot;
		local_head_backward(hv, (float *)dv.q, dv.o, hd->T, hd->dh, W, P,
			P + (size_t)W * 2 * W);
	}
}

/* ------------------------------------------------------------------ linear attention */

/* Scratch slot of one head: dqf, dkf, dnum (T,dh), dden (T), two dh x dh
 * states, two dh vectors, A and dA (C,C). */
size_t linear_attn_scratch(int T, int dh, int C)
{
	return 3 * (size_t)T * dh + T + 2 * (size_t)dh * dh + 2 * (size_t)dh + 2 * (size_t)C * C;
}

struct lin_scratch {
	float *dqf, *dkf, *dnum, *dden, *S, *M, *z, *dz, *A, *dA;
};

static struct lin_scratch lin_scratch_split(float *s, int T, int dh, int C)
{
	struct lin_scratch l;
	size_t Td = (size_t)T * dh;
	l.dqf = s, l.dkf = s + Td, l.dnum = s + 2 * Td, l.dden = s + 3 * Td;
	l.S = l.dden + T, l.M = l.S + (size_t)dh * dh;
	l.z = l.M + (size_t)dh * dh, l.dz = l.z + dh;
	l.A = l.dz + dh, l.dA = l.A + (size_t)C * C;
	return l;
}

/* The feature maps of one head, in place: q <- softmax(q) * dh^-0.5,
 * k <- exp(k); rows of ld. */
VM_CLONES
static void lin_features(float *q, float *k, int T, int dh, int ld)
{
	float scale = 1.0f / sqrtf((float)dh);
	for (int t = 0; t < T; t++) {
		float *a = q + (size_t)t * ld, *e = k + (size_t)t * ld, mx = a[0], s = 0.0f;
		for (int i = 1; i < dh; i++)
			mx = a[i] > mx ? a[i] : mx;
		for (int i = 0; i < dh; i++)
			a[i] = vm_exp(a[i] - mx);
		s = scale / vm_sum(a, dh);
		for (int i = 0; i < dh; i++)
			a[i] *= s;
		for (int i = 0; i < dh; i++)
			e[i] = vm_exp(e[i]);
	}
}

/* A (n,n) = qf_c . kf_c^T with the strict upper triangle zeroed (j > i). */
static void lin_chunk_scores(float *A, const float *qf, const float *kf, int ld, int n, int dh)
{
	mm_serial(0, 1, n, n, dh, 1.0f, qf, ld, kf, ld, 0.0f, A, n);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			A[(size_t)i * n + j] = 0.0f;
}

/* S (dh,dh) += kf_c^T . v_c; z (dh) += column sums of kf_c. */
static void lin_state_add(float *S, float *z, const float *kf, const float *v, int ld, int n,
	int dh)
{
	mm_serial(1, 0, dh, dh, n, 1.0f, kf, ld, v, ld, 1.0f, S, dh);
	for (int i = 0; i < n; i++)
		for (int e = 0; e < dh; e++)
			z[e] += kf[(size_t)i * ld + e];
}

static void lin_head_forward(struct head_view hv, int T, int dh, int C, float eps,
	struct lin_scratch *l)
{
	int ld = hv.ld, HD = hv.HD;
	lin_features((float *)hv.q, (float *)hv.k, T, dh, ld);
	memset(l->S, 0, (size_t)dh * dh * sizeof *l->S);
	memset(l->z, 0, dh * sizeof *l->z);
	for (int c0 = 0; c0 < T; c0 += C) {
		int n = T - c0 < C ? T - c0 : C;
		const float *qc = hv.q + (size_t)c0 * ld, *kc = hv.k + (size_t)c0 * ld;
		const float *vc = hv.v + (size_t)c0 * ld;
		float *oc = hv.o + (size_t)c0 * HD;
		lin_chunk_scores(l->A, qc, kc, ld, n, dh);
		// num (n,dh) = A (n,n) . v_c + qf_c . S (the chunks before)
		mm_serial(0, 0, n, dh, n, 1.0f, l->A, n, vc, ld, 0.0f, oc, HD);
		mm_serial(0, 0, n, dh, dh, 1.0f, qc, ld, l->S, dh, 1.0f, oc, HD);
		for (int i = 0; i < n; i++) {
			/* the row's upper part is zero: its sum is the causal one */
			float den = vm_sum(l->A + (size_t)i * n, n) + vm_dot(qc + (size_t)i * ld, l->z, dh);
			hv.st[(size_t)(c0 + i) * hv.H] = den;
			float inv = 1.0f / (den >= eps ? den : eps);
			for (int e = 0; e < dh; e++)
				oc[(size_t)i * HD + e] *= inv;
		}
		lin_state_add(l->S, l->z, kc, vc, ld, n, dh);
	}
}

void linear_attn_forward(float *out, float *stat, float *qkv, const struct heads *hd, int C,
	float eps, float *scratch, int nslots)
{
	size_t slot = linear_attn_scratch(hd->T, hd->dh, C);
	int threads = slots_for(hd, nslots);
	(void)threads;	/* unused without OpenMP */
	PAR_ITEMS(threads)
	for (int p = 0; p < head_pairs(hd); p++) {
		struct lin_scratch l = lin_scratch_split(scratch + par_thread() * slot, hd->T, hd->dh,
			C);
		lin_head_forward(head_view(qkv, out, stat, hd, p), hd->T, hd->dh, C, eps, &l);
	}
}

/* Backward of one head given dnum and dden, the gradients of the numerator
 * rows and the denominators: dqf, dkf (dense) and dv (rows of ld). Two
 * sweeps: forward over the chunks carrying the state S (for dqf and the
 * in-chunk terms), then backward carrying M = sum over later chunks of
 * qf^T dnum (for dkf and dv). */
static void lin_head_sweeps(struct lin_scratch *l, struct head_view hv, float *dv, int T,
	int dh, int C)
{
	int ld = hv.ld;
	memset(l->S, 0, (size_t)dh * dh * sizeof *l->S);
	memset(l->z, 0, dh * sizeof *l->z);
	for (int c0 = 0; c0 < T; c0 += C) {
		int n = T - c0 < C ? T - c0 : C;
		size_t off = (size_t)c0 * dh, roff = (size_t)c0 * ld;
		const float *qc = hv.q + roff, *kc = hv.k + roff, *vc = hv.v + roff;
		const float *dn = l->dnum + off, *dd = l->dden + c0;
		float *dqc = l->dqf + off, *dkc = l->dkf + off;
		lin_chunk_scores(l->A, qc, kc, ld, n, dh);
		// dA (n,n) = dnum_c . v_c^T + dden_i, lower triangle only
		mm_serial(0, 1, n, n, dh, 1.0f, dn, dh, vc, ld, 0.0f, l->dA, n);
		for (int i = 0; i < n; i++)
			for (int j = 0; j < n; j++)
				l->dA[(size_t)i * n + j] = j <= i ? l->dA[(size_t)i * n + j] + dd[i] : 0.0f;
		// dqf_c = dA . kf_c + dnum_c . S^T + dden (x) z
		mm_serial(0, 0, n, dh, n, 1.0f, l->dA, n, kc, ld, 0.0f, dqc, dh);
		mm_serial(0, 1, n, dh, dh, 1.0f, dn, dh, l->S, dh, 1.0f, dqc, dh);
		for (int i = 0; i < n; i++)
			for (int e = 0; e < dh; e++)
				dqc[(size_t)i * dh + e] += dd[i] * l->z[e];
		// dkf_c = dA^T . qf_c; dv_c = A^T . dnum_c
		mm_serial(1, 0, n, dh, n, 1.0f, l->dA, n, qc, ld, 0.0f, dkc, dh);
		mm_serial(1, 0, n, dh, n, 1.0f, l->A, n, dn, dh, 0.0f, dv + roff, ld);
		lin_state_add(l->S, l->z, kc, vc, ld, n, dh);
	}
	memset(l->M, 0, (size_t)dh * dh * sizeof *l->M);
	memset(l->dz, 0, dh * sizeof *l->dz);
	for (int c0 = (T - 1) / C * C; c0 >= 0; c0 -= C) {
		int n = T - c0 < C ? T - c0 : C;
		size_t off = (size_t)c0 * dh, roff = (size_t)c0 * ld;
		const float *qc = hv.q + roff, *kc = hv.k + roff, *vc = hv.v + roff;
		const float *dn = l->dnum + off, *dd = l->dden + c0;
		float *dkc = l->dkf + off;
		// dkf_c += v_c . M^T + dz; dv_c += kf_c . M
		mm_serial(0, 1, n, dh, dh, 1.0f, vc, ld, l->M, dh, 1.0f, dkc, dh);
		for (int i = 0; i < n; i++)
			for (int e = 0; e < dh; e++)
				dkc[(size_t)i * dh + e] += l->dz[e];
		mm_serial(0, 0, n, dh, dh, 1.0f, kc, ld, l->M, dh, 1.0f, dv + roff, ld);
		// M += qf_c^T . dnum_c; dz += sum_i dden_i qf_i
		mm_serial(1, 0, dh, dh, n, 1.0f, qc, ld, dn, dh, 1.0f, l->M, dh);
		for (int i = 0; i < n; i++)
			for (int e = 0; e < dh; e++)
				l->dz[e] += dd[i] * qc[(size_t)i * ld + e];
	}
}

/* hv: the head with qf, kf in place of q, k; dq: its q columns in dqkv. */
static void lin_head_backward(struct head_view hv, float *dq, const float *dO, int T, int dh,
	int C, float eps, struct lin_scratch *l)
{
	int ld = hv.ld, HD = hv.HD;
	float scale = 1.0f / sqrtf((float)dh), *dk = dq + HD, *dv = dq + 2 * HD;
	// out = num / max(den, eps): dnum = dO / den', dden = -(dO . out) / den'
	for (int t = 0; t < T; t++) {
		const float *ot = hv.o + (size_t)t * HD, *dt = dO + (size_t)t * HD;
		float den = hv.st[(size_t)t * hv.H], dc = den >= eps ? den : eps;
		float *dn = l->dnum + (size_t)t * dh, inv = 1.0f / dc;
		for (int e = 0; e < dh; e++)
			dn[e] = dt[e] * inv;
		l->dden[t] = den >= eps ? -vm_dot(dt, ot, dh) * inv : 0.0f;
	}
	lin_head_sweeps(l, hv, dv, T, dh, C);
	// through the feature maps: dq = p * (dp - p . dp) with p = qf / scale and
	// dp = scale * dqf; dk = dkf * kf
	for (int t = 0; t < T; t++) {
		const float *a = hv.q + (size_t)t * ld, *da = l->dqf + (size_t)t * dh;
		const float *e = hv.k + (size_t)t * ld, *de = l->dkf + (size_t)t * dh;
		float *dqt = dq + (size_t)t * ld, *dkt = dk + (size_t)t * ld;
		float pdp = vm_dot(a, da, dh) / scale;
		for (int i = 0; i < dh; i++)
			dqt[i] = a[i] * (da[i] - pdp);
		for (int i = 0; i < dh; i++)
			dkt[i] = de[i] * e[i];
	}
}

void linear_attn_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
	const float *stat, const struct heads *hd, int C, float eps, float *scratch, int nslots)
{
	size_t slot = linear_attn_scratch(hd->T, hd->dh, C);
	int threads = slots_for(hd, nslots);
	(void)threads;	/* unused without OpenMP */
	PAR_ITEMS(threads)
	for (int p = 0; p < head_pairs(hd); p++) {
		struct lin_scratch l = lin_scratch_split(scratch + par_thread() * slot, hd->T, hd->dh,
			C);
		struct head_view hv = head_view(qkv, (float *)out, (float *)stat, hd, p);
		struct head_view dv = head_view(dqkv, (float *)dout, (float *)stat, hd, p);
		lin_head_backward(hv, (float *)dv.q, dv.o, hd->T, hd->dh, C, eps, &l);
	}
}
