/* vecmath.h: exp and the exact GELU (through erfc) as branch-free inline
 * float code, so that loops calling them vectorize (libm's expf/erff calls
 * do not) and give the same bits on every machine and thread count. */
#ifndef TGPT_VECMATH_H
#define TGPT_VECMATH_H

#include <stdint.h>
#include <string.h>

/* Functions whose loops call these get AVX2 and AVX-512 versions picked at
 * run time (GCC target_clones, x86-64). The per-element operations are the
 * same IEEE operations in every version (no FMA: -ffp-contract=off), so
 * all versions give the same bits; only the vector width differs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(TGPT_NO_CLONES)
#define VM_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define VM_CLONES
#endif

/* Sums in a fixed order of 8 interleaved partial sums (then combined
 * pairwise): GCC vectorizes it, which a plain sequential float sum forbids,
 * and the order, hence the bits, is the same on every machine. */
static inline float vm_sum(const float *a, int n)
{
	float acc[8] = { 0 };
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j];
	for (int j = 0; i < n; i++, j++)
		acc[j] += a[i];
	return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

static inline float vm_dot(const float *a, const float *b, int n)
{
	float acc[8] = { 0 };
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	for (int j = 0; i < n; i++, j++)
		acc[j] += a[i] * b[i];
	return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* exp(x), relative error about 2e-7 (Cephes expf polynomial after a
 * two-constant reduction by ln 2). The argument is clamped to [-87, 88]:
 * results saturate at exp(88) = 1.65e38 instead of overflowing to inf, and
 * anything below exp(-87) = 1.6e-38 counts as that. */
static inline float vm_exp(float x)
{
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	/* round(x / ln 2) by the 1.5 * 2^23 trick (round to nearest even) */
	float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = x - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * (r * r) + r + 1.0f;
	int32_t bits = ((int32_t)n + 127) * 8388608;	/* 2^n as a float's bits */
	float scale;
	memcpy(&scale, &bits, sizeof scale);
	return p * scale;
}

/* Phi(x) = P(N(0,1) <= x) through erfc (Numerical Recipes' Chebyshev fit,
 * relative error < 1.2e-7 everywhere, so the tails stay accurate too). */
static inline float vm_phi(float x)
{
	float z = (x < 0.0f ? -x : x) * 0.70710678118654752f;
	float t = 1.0f / (1.0f + 0.5f * z);
	float p = 0.17087277f;
	p = p * t - 0.82215223f;
	p = p * t + 1.48851587f;
	p = p * t - 1.13520398f;
	p = p * t + 0.27886807f;
	p = p * t - 0.18628806f;
	p = p * t + 0.09678418f;
	p = p * t + 0.37409196f;
	p = p * t + 1.00002368f;
	p = p * t - 1.26551223f;
	float half_erfc = 0.5f * t * vm_exp(p - z * z);	/* P(N > |x|) */
	return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

/* GELU(x) = x Phi(x) (the exact form, as torch.nn.GELU) and its derivative
 * Phi(x) + x phi(x). */
static inline float vm_gelu(float x)
{
	return x * vm_phi(x);
}

static inline float vm_gelu_grad(float x)
{
	return vm_phi(x) + x * 0.39894228040143268f * vm_exp(-0.5f * x * x);
}

#endif
