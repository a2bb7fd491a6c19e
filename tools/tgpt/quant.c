/* quant.c: the recurrent step's products from reduced-precision copies of
 * the weights (recurrent.h, rec_set_precision; quant.h): binary16 copies,
 * and int8 copies against inputs scaled to 16-bit integers, each through
 * plain C or SIMD kernels (AVX2 + F16C; AVX2 or AVX-512 VNNI) that give the
 * same bits. The stepping itself is recurrent.c's, which meets this file in
 * linear_cols only, as llama2.c keeps runq.c beside run.c. */
#include <err.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alloc.h"
#include "quant.h"
#include "vecmath.h"

/* x86-64: the half-precision products through AVX2 + F16C when the CPU
 * has them (rec_simd), and the int8 ones through AVX2 or AVX-512 VNNI. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HALF_SIMD 1
#else
#define HALF_SIMD 0
#endif

/* ------------------------------------------------------------------ half-precision weights */

/* The products of a step read every weight once, so with a stream or two
 * they run at the memory's speed: binary16 copies of the matrices halve
 * the bytes. Activations, sums and everything else stay float. */

/* binary16 bits to float, exactly (normals and subnormals; the copies hold
 * no infinity or NaN). */
static inline float half_to_float(uint16_t h)
{
	uint32_t u = (uint32_t)(h & 0x8000) << 16 | (uint32_t)(h & 0x7fff) << 13;
	float f;
	memcpy(&f, &u, sizeof f);
	return f * 0x1p112f;	/* rebias the exponent: 2^(127 - 15) */
}

/* float to binary16 bits, to nearest even, saturating at +-65504 (NaN
 * becomes 0). */
static uint16_t float_to_half(float x)
{
	x = x != x ? 0.0f : x > 65504.0f ? 65504.0f : x < -65504.0f ? -65504.0f : x;
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
	float a = fabsf(x);
	if (a < 0x1p-14f)	/* subnormal: a multiple of 2^-24 (1024 is the least normal) */
		return sign | (uint16_t)nearbyintf(a * 0x1p24f);
	uint32_t mant = u & 0x7fffff, h = ((u >> 23 & 0xff) - 112) << 10 | mant >> 13;
	uint32_t rest = mant & 0x1fff;
	h += rest > 0x1000 || (rest == 0x1000 && (h & 1));	/* a carry rounds up the exponent */
	return sign | (uint16_t)h;
}

/* The end of one dot product of row x with weight row wr: the tail
 * columns [Cv, C) added in order to dot (the first Cv done in lanes), then
 * out[j] = (beta 0 ? 0 : out[j]) + bias[j] + dot. */
static inline void half_store(float *out, const float *x, const uint16_t *wr, const float *bias,
	int j, int C, int Cv, float beta, float dot)
{
	for (int c = Cv; c < C; c++)
		dot += half_to_float(wr[c]) * x[c];
	float o = beta == 0.0f ? 0.0f : out[j];
	if (bias)
		o += bias[j];
	out[j] = o + dot;
}

/* Both kernels below compute out (rows of ldo) columns [j0, j1) for the n
 * rows of inp (C) the same way: columns in blocks of 16, the first 8 of
 * each block summed in lanes lo, the other 8 in lanes hi (no fused
 * multiply-add); lanes l = lo + hi, dot = ((l0 + l4) + (l2 + l6)) +
 * ((l1 + l5) + (l3 + l7)); so they give the same bits. */
static void half_rows_c(float *out, int ldo, const float *inp, const uint16_t *w,
	const float *bias, int n, int C, int j0, int j1, float beta)
{
	int Cv = C / 16 * 16;
	for (int j = j0; j < j1; j++) {
		const uint16_t *wr = w + (size_t)j * C;
		for (int i = 0; i < n; i++) {
			const float *x = inp + (size_t)i * C;
			float lo[8] = { 0 }, hi[8] = { 0 }, l[8];
			for (int c = 0; c < Cv; c += 16)
				for (int k = 0; k < 8; k++) {
					lo[k] += half_to_float(wr[c + k]) * x[c + k];
					hi[k] += half_to_float(wr[c + 8 + k]) * x[c + 8 + k];
				}
			for (int k = 0; k < 8; k++)
				l[k] = lo[k] + hi[k];
			float dot = ((l[0] + l[4]) + (l[2] + l[6])) +
				((l[1] + l[5]) + (l[3] + l[7]));
			half_store(out + (size_t)i * ldo, x, wr, bias, j, C, Cv, beta, dot);
		}
	}
}

#if HALF_SIMD
#define HALF_TARGET __attribute__((target("avx2,f16c")))

/* The dot of lanes lo + hi in half_rows_c's tree. */
HALF_TARGET static inline float half_hsum(__m256 lo, __m256 hi)
{
	__m256 l = _mm256_add_ps(lo, hi);
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(l), _mm256_extractf128_ps(l, 1));
	__m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
	return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

HALF_TARGET static inline __m256 half_load(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

#define HALF_MAC(acc, w, x) acc = _mm256_add_ps(acc, _mm256_mul_ps(w, x))

/* Rows i..i+3 against weight row wr (one column j): each weight block
 * converted once for four rows. */
HALF_TARGET static void half_rows4(float *out, int ldo, const float *inp, const uint16_t *wr,
	const float *bias, int i, int j, int C, int Cv, float beta)
{
	const float *x0 = inp + (size_t)i * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
	__m256 lo0 = _mm256_setzero_ps(), lo1 = lo0, lo2 = lo0, lo3 = lo0;
	__m256 hi0 = lo0, hi1 = lo0, hi2 = lo0, hi3 = lo0;
	for (int c = 0; c < Cv; c += 16) {
		__m256 w0 = half_load(wr + c), w1 = half_load(wr + c + 8);
		HALF_MAC(lo0, w0, _mm256_loadu_ps(x0 + c));
		HALF_MAC(hi0, w1, _mm256_loadu_ps(x0 + c + 8));
		HALF_MAC(lo1, w0, _mm256_loadu_ps(x1 + c));
		HALF_MAC(hi1, w1, _mm256_loadu_ps(x1 + c + 8));
		HALF_MAC(lo2, w0, _mm256_loadu_ps(x2 + c));
		HALF_MAC(hi2, w1, _mm256_loadu_ps(x2 + c + 8));
		HALF_MAC(lo3, w0, _mm256_loadu_ps(x3 + c));
		HALF_MAC(hi3, w1, _mm256_loadu_ps(x3 + c + 8));
	}
	half_store(out + (size_t)i * ldo, x0, wr, bias, j, C, Cv, beta, half_hsum(lo0, hi0));
	half_store(out + (size_t)(i + 1) * ldo, x1, wr, bias, j, C, Cv, beta, half_hsum(lo1, hi1));
	half_store(out + (size_t)(i + 2) * ldo, x2, wr, bias, j, C, Cv, beta, half_hsum(lo2, hi2));
	half_store(out + (size_t)(i + 3) * ldo, x3, wr, bias, j, C, Cv, beta, half_hsum(lo3, hi3));
}

/* Row i against weight rows j..j+3: four columns' sums in flight hide the
 * additions' latency when there is one row. */
HALF_TARGET static void half_cols4(float *out, const float *x, const uint16_t *w,
	const float *bias, int j, int C, int Cv, float beta)
{
	const uint16_t *w0 = w + (size_t)j * C, *w1 = w0 + C, *w2 = w1 + C, *w3 = w2 + C;
	__m256 lo0 = _mm256_setzero_ps(), lo1 = lo0, lo2 = lo0, lo3 = lo0;
	__m256 hi0 = lo0, hi1 = lo0, hi2 = lo0, hi3 = lo0;
	for (int c = 0; c < Cv; c += 16) {
		__m256 a = _mm256_loadu_ps(x + c), b = _mm256_loadu_ps(x + c + 8);
		HALF_MAC(lo0, half_load(w0 + c), a);
		HALF_MAC(hi0, half_load(w0 + c + 8), b);
		HALF_MAC(lo1, half_load(w1 + c), a);
		HALF_MAC(hi1, half_load(w1 + c + 8), b);
		HALF_MAC(lo2, half_load(w2 + c), a);
		HALF_MAC(hi2, half_load(w2 + c + 8), b);
		HALF_MAC(lo3, half_load(w3 + c), a);
		HALF_MAC(hi3, half_load(w3 + c + 8), b);
	}
	half_store(out, x, w0, bias, j, C, Cv, beta, half_hsum(lo0, hi0));
	half_store(out, x, w1, bias, j + 1, C, Cv, beta, half_hsum(lo1, hi1));
	half_store(out, x, w2, bias, j + 2, C, Cv, beta, half_hsum(lo2, hi2));
	half_store(out, x, w3, bias, j + 3, C, Cv, beta, half_hsum(lo3, hi3));
}

HALF_TARGET static void half_cols1(float *out, const float *x, const uint16_t *wr,
	const float *bias, int j, int C, int Cv, float beta)
{
	__m256 lo = _mm256_setzero_ps(), hi = lo;
	for (int c = 0; c < Cv; c += 16) {
		HALF_MAC(lo, half_load(wr + c), _mm256_loadu_ps(x + c));
		HALF_MAC(hi, half_load(wr + c + 8), _mm256_loadu_ps(x + c + 8));
	}
	half_store(out, x, wr, bias, j, C, Cv, beta, half_hsum(lo, hi));
}

/* Rows in fours, each weight row read once for all of them (batches);
 * the rows left over, weight rows in fours (one stream). */
HALF_TARGET static void half_rows_avx2(float *out, int ldo, const float *inp, const uint16_t *w,
	const float *bias, int n, int C, int j0, int j1, float beta)
{
	int Cv = C / 16 * 16, n4 = n / 4 * 4;
	for (int j = j0; j < j1 && n4 > 0; j++)
		for (int i = 0; i < n4; i += 4)
			half_rows4(out, ldo, inp, w + (size_t)j * C, bias, i, j, C, Cv, beta);
	for (int i = n4; i < n; i++) {
		float *o = out + (size_t)i * ldo;
		const float *x = inp + (size_t)i * C;
		int j = j0;
		for (; j + 4 <= j1; j += 4)
			half_cols4(o, x, w, bias, j, C, Cv, beta);
		for (; j < j1; j++)
			half_cols1(o, x, w + (size_t)j * C, bias, j, C, Cv, beta);
	}
}
#endif

/* ------------------------------------------------------------------ int8 weights */

/* A matrix row (one output) as integers round(w / s) in [-127, 127], s =
 * max |w| / 127, and each input row of a product as 16-bit integers with
 * its own scale max |x| / 32767: the dot product of the two is an exact
 * integer, so every kernel (and order of summing) gives the same bits, and
 * out = bias + acc * (s_w * s_x). 32-bit partial sums cover at most
 * Q8_BLOCK columns (512 * 127 * 32767 < 2^31), added up in 64 bits.
 *
 * The integers of a matrix (OC, C) lie in blocks of Q8_LANES outputs
 * (rows; the last block padded with zero rows), and inside a block in
 * pairs of columns (a zero column pads an odd C): pair p of the block is
 * w[j][2p], w[j][2p+1] for its Q8_LANES rows j in turn, 32 bytes. So one
 * 32-byte load widened to 16-bit feeds VPDPWSSD with 16 outputs' pairs,
 * against one pair of the input broadcast to every lane: no horizontal
 * sums. */
#define Q8_BLOCK 512
#define Q8_XMAX 32767.0f
#define Q8_LANES 16

/* One matrix's integer copy. */
struct q8_mat {
	int8_t *w;		/* blocks(OC) * Q8_LANES * pairs(C) * 2 */
	float *scale;		/* blocks(OC) * Q8_LANES: each row's s (0 for padding) */
	int OC, C;
};

/* Every copied matrix, by tensor and layer. */
struct rec_q8 {
	struct q8_mat *mats;	/* N_COPIED * n_layer (single matrices: layer 0) */
	int8_t *pool;
	float *scales;
};

static int q8_blocks(int OC)
{
	return (OC + Q8_LANES - 1) / Q8_LANES;
}

static int q8_pairs(int C)
{
	return (C + 1) / 2;
}

/* The integer of weight (j, c) in the block layout. */
static inline int8_t q8_at(const struct q8_mat *m, int j, int c)
{
	size_t block = (size_t)(j / Q8_LANES) * Q8_LANES * q8_pairs(m->C) * 2;
	return m->w[block + ((size_t)(c / 2) * Q8_LANES + j % Q8_LANES) * 2 + c % 2];
}

/* round(v) for |v| < 2^22, to nearest even (as vm_exp: vectorizes). */
static inline float round_even(float v)
{
	return (v + 12582912.0f) - 12582912.0f;
}

/* max |x[c]| over n floats, a NaN if any is NaN: the largest of their
 * magnitudes' bits (NaNs' bits lie above infinity's), which vectorizes. */
static inline float abs_max(const float *x, int n)
{
	uint32_t m = 0;
	for (int c = 0; c < n; c++) {
		uint32_t u;
		memcpy(&u, x + c, sizeof u);
		u &= 0x7fffffff;
		m = u > m ? u : m;
	}
	float f;
	memcpy(&f, &m, sizeof f);
	return f;
}

/* A row whose largest magnitude is mx is quantized when this holds; else
 * it is all zeros (below 1e-30: as good as zero; NaN or infinite: the NaN
 * or infinite scale makes its products NaN, as float ones would be). */
static inline int quantizable(float mx)
{
	return mx >= 1e-30f && mx <= 3.4e38f;
}

/* q[c] = round(x[c] * inv), which the caller keeps within 16 bits. */
static inline void round_to_ints(int16_t *q, const float *x, int n, float inv)
{
	for (int c = 0; c < n; c++)
		q[c] = (int16_t)(int32_t)round_even(x[c] * inv);
}

VM_CLONES
void quant_rows(int16_t *q, int ldq, float *qs, const float *x, int n, int C)
{
	for (int i = 0; i < n; i++) {
		float mx = abs_max(x + (size_t)i * C, C);
		int16_t *qr = q + (size_t)i * ldq;
		qs[i] = mx / Q8_XMAX;
		if (quantizable(mx))
			round_to_ints(qr, x + (size_t)i * C, C, Q8_XMAX / mx);
		else
			memset(qr, 0, (size_t)C * sizeof *q);
		memset(qr + C, 0, (size_t)(ldq - C) * sizeof *q);
	}
}

/* w (OC, C) into m's block layout (m->w and m->scale allocated, zeroed). */
static void quantize_matrix(struct q8_mat *m, const float *w)
{
	int P = q8_pairs(m->C);
	for (int j = 0; j < m->OC; j++) {
		const float *row = w + (size_t)j * m->C;
		float mx = abs_max(row, m->C), inv = 127.0f / mx;
		int8_t *blk = m->w + (size_t)(j / Q8_LANES) * Q8_LANES * P * 2 + (j % Q8_LANES) * 2;
		m->scale[j] = mx / 127.0f;
		for (int c = 0; quantizable(mx) && c < m->C; c++)
			blk[(size_t)(c / 2) * Q8_LANES * 2 + c % 2] =
				(int8_t)(int32_t)round_even(row[c] * inv);
	}
}

/* out[j] = (beta 0 ? 0 : out[j]) + bias[j] + acc * (sw * sx), in this order
 * in every kernel. */
static inline void q8_store(float *out, const float *bias, int j, float beta, float sw, float sx,
	int64_t acc)
{
	float o = beta == 0.0f ? 0.0f : out[j];
	if (bias)
		o += bias[j];
	out[j] = o + (float)acc * (sw * sx);
}

/* out (rows of ldo) columns [j0, j1) for the rows of a, from m. */
static void q8_rows_c(float *out, int ldo, const struct act *a, const struct q8_mat *m,
	const float *bias, int j0, int j1, float beta)
{
	for (int i = 0; i < a->n; i++) {
		const int16_t *x = a->q + (size_t)i * a->ldq;
		for (int j = j0; j < j1; j++) {
			int64_t acc = 0;
			for (int c = 0; c < m->C; c++)
				acc += (int32_t)q8_at(m, j, c) * x[c];
			q8_store(out + (size_t)i * ldo, bias, j, beta, m->scale[j], a->qs[i], acc);
		}
	}
}

#if HALF_SIMD
#define Q8_AVX2 __attribute__((target("avx2")))
#define Q8_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512dq,avx512vnni")))
#define Q8_INLINE inline __attribute__((always_inline))

/* The input pair p of row x broadcast to every 32-bit lane. */
#define Q8_PAIR(x, p) ((int)((uint32_t)(uint16_t)(x)[2 * (p)] | (uint32_t)(uint16_t)(x)[2 * (p) + 1] << 16))

/* One input row against output block jb: its two halves of 8 lanes
 * through VPMADDWD, 32-bit sums of Q8_BLOCK columns added into 64 bits. */
Q8_AVX2 static void q8_block_avx2(float *o, const int16_t *x, float sx, const struct q8_mat *m,
	const float *bias, int jb, int j0, int j1, float beta)
{
	int P = q8_pairs(m->C);
	const int8_t *w = m->w + (size_t)jb * Q8_LANES * P * 2;
	int64_t s[Q8_LANES] = { 0 };
	for (int p0 = 0; p0 < P; p0 += Q8_BLOCK / 2) {
		int p1 = p0 + Q8_BLOCK / 2 < P ? p0 + Q8_BLOCK / 2 : P;
		__m256i lo = _mm256_setzero_si256(), hi = lo;
		for (int p = p0; p < p1; p++) {
			__m256i xv = _mm256_set1_epi32(Q8_PAIR(x, p));
			__m128i wl = _mm_loadu_si128((const __m128i *)(w + (size_t)p * 32));
			__m128i wh = _mm_loadu_si128((const __m128i *)(w + (size_t)p * 32 + 16));
			lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepi8_epi16(wl), xv));
			hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepi8_epi16(wh), xv));
		}
		int32_t l[Q8_LANES];
		_mm256_storeu_si256((__m256i *)l, lo);
		_mm256_storeu_si256((__m256i *)(l + 8), hi);
		for (int k = 0; k < Q8_LANES; k++)
			s[k] += l[k];
	}
	for (int k = 0; k < Q8_LANES; k++) {
		int j = jb * Q8_LANES + k;
		if (j >= j0 && j < j1)
			q8_store(o, bias, j, beta, m->scale[j], sx, s[k]);
	}
}

Q8_AVX2 static void q8_rows_avx2(float *out, int ldo, const struct act *a, const struct q8_mat *m,
	const float *bias, int j0, int j1, float beta)
{
	for (int i = 0; i < a->n; i++)
		for (int jb = j0 / Q8_LANES; jb * Q8_LANES < j1; jb++)
			q8_block_avx2(out + (size_t)i * ldo, a->q + (size_t)i * a->ldq, a->qs[i], m,
				bias, jb, j0, j1, beta);
}

/* The 16 outputs of lanes `mask` of one row: q8_store's operations, lane
 * by lane. s: the 64-bit sums of lanes 0-7 and 8-15. */
Q8_AVX512 static Q8_INLINE void q8_store16(float *o, const float *bias, const float *scale,
	float sx, __m512i s_lo, __m512i s_hi, __mmask16 mask, float beta)
{
	__m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtepi64_ps(s_lo)),
		_mm512_cvtepi64_ps(s_hi), 1);
	__m512 sc = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, scale), _mm512_set1_ps(sx));
	__m512 v = beta == 0.0f ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, o);
	if (bias)
		v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
	_mm512_mask_storeu_ps(o, mask, _mm512_add_ps(v, _mm512_mul_ps(f, sc)));
}

/* Input rows i..i+R-1 (R <= 4) against output blocks jb..jb+J-1 (J <= 4):
 * each 32-byte weight load widened once for the R rows. */
Q8_AVX512 static Q8_INLINE void q8_tile_avx512(float *out, int ldo, const struct act *a, int i,
	int R, const struct q8_mat *m, const float *bias, int jb, int J, int j0, int j1, float beta)
{
	int P = q8_pairs(m->C);
	const int8_t *w = m->w + (size_t)jb * Q8_LANES * P * 2;
	size_t bstride = (size_t)Q8_LANES * P * 2;
	__m512i lo[4][4], hi[4][4];
	for (int r = 0; r < R; r++)
		for (int k = 0; k < J; k++)
			lo[r][k] = hi[r][k] = _mm512_setzero_si512();
	for (int p0 = 0; p0 < P; p0 += Q8_BLOCK / 2) {
		int p1 = p0 + Q8_BLOCK / 2 < P ? p0 + Q8_BLOCK / 2 : P;
		__m512i acc[4][4];
		for (int r = 0; r < R; r++)
			for (int k = 0; k < J; k++)
				acc[r][k] = _mm512_setzero_si512();
		for (int p = p0; p < p1; p++) {
			__m512i wv[4];
			for (int k = 0; k < J; k++)
				wv[k] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(
					(const __m256i *)(w + k * bstride + (size_t)p * 32)));
			for (int r = 0; r < R; r++) {
				const int16_t *x = a->q + (size_t)(i + r) * a->ldq;
				__m512i xv = _mm512_set1_epi32(Q8_PAIR(x, p));
				for (int k = 0; k < J; k++)
					acc[r][k] = _mm512_dpwssd_epi32(acc[r][k], xv, wv[k]);
			}
		}
		for (int r = 0; r < R; r++)
			for (int k = 0; k < J; k++) {
				lo[r][k] = _mm512_add_epi64(lo[r][k],
					_mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc[r][k])));
				hi[r][k] = _mm512_add_epi64(hi[r][k],
					_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc[r][k], 1)));
			}
	}
	for (int k = 0; k < J; k++) {
		int base = (jb + k) * Q8_LANES;
		int from = j0 > base ? j0 - base : 0, to = j1 - base < Q8_LANES ? j1 - base : Q8_LANES;
		__mmask16 mask = (__mmask16)(((1u << to) - 1) & ~((1u << from) - 1));
		for (int r = 0; r < R; r++)
			q8_store16(out + (size_t)(i + r) * ldo + base, bias ? bias + base : NULL,
				m->scale + base, a->qs[i + r], lo[r][k], hi[r][k], mask, beta);
	}
}

/* The tiles of one group of R rows, R a constant in each use below so that
 * the tile's loops unroll into registers. */
#define Q8_ROW_GROUP(R) \
	do { \
		int jb = b0; \
		for (; jb + 4 <= b1; jb += 4) \
			q8_tile_avx512(out, ldo, a, i, R, m, bias, jb, 4, j0, j1, beta); \
		for (; jb < b1; jb++) \
			q8_tile_avx512(out, ldo, a, i, R, m, bias, jb, 1, j0, j1, beta); \
	} while (0)

Q8_AVX512 static void q8_rows_avx512(float *out, int ldo, const struct act *a,
	const struct q8_mat *m, const float *bias, int j0, int j1, float beta)
{
	int b0 = j0 / Q8_LANES, b1 = q8_blocks(j1);
	for (int i = 0; i < a->n; i += 4) {
		switch (a->n - i) {
		case 1: Q8_ROW_GROUP(1); break;
		case 2: Q8_ROW_GROUP(2); break;
		case 3: Q8_ROW_GROUP(3); break;
		default: Q8_ROW_GROUP(4); break;
		}
	}
}
#endif

/* The kernels this CPU has: 2 AVX-512 VNNI, 1 AVX2, 0 none. */
static int q8_simd_level(void)
{
#if HALF_SIMD
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
			__builtin_cpu_supports("avx512vnni"))
		return 2;
	return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
	return 0;
#endif
}

/* ------------------------------------------------------------------ precision */

static int half_simd(void)
{
#if HALF_SIMD
	unsigned a, b, c, d;	/* F16C: CPUID leaf 1, ECX bit 29 (clang's builtin lacks it) */
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
#else
	return 0;
#endif
}

int rec_simd(enum rec_precision p)
{
	return p == REC_F32 ? 1 : p == REC_F16 ? half_simd() : q8_simd_level();
}

static const char *const precision_names[] = { "f32", "f16", "int8" };

const char *rec_precision_name(enum rec_precision p)
{
	return (unsigned)p < 3 ? precision_names[p] : "?";
}

int rec_precision_parse(const char *name)
{
	for (int p = 0; p < 3; p++)
		if (strcmp(name, precision_names[p]) == 0)
			return p;
	return -1;
}

/* The matrices the copies hold, and their shapes (outputs, inputs). */
static const int copied[] = { P_W_IN, P_W_QKV, P_W_O, P_W_1, P_W_2, P_W_OUT, P_W_HEAD };
#define N_COPIED (sizeof copied / sizeof copied[0])

static void matrix_shape(const struct model_config *c, int t, int *OC, int *C)
{
	int D = c->d_model, E = c->emb_dim, HD = c->n_head * c->d_head, F = c->d_ff;
	switch (t) {
	case P_W_IN: *OC = D, *C = E; break;
	case P_W_QKV: *OC = 3 * HD, *C = D; break;
	case P_W_O: *OC = D, *C = HD; break;
	case P_W_1: *OC = c->ff_glu ? 2 * F : F, *C = D; break;
	case P_W_2: *OC = D, *C = F; break;
	case P_W_OUT: *OC = E, *C = D; break;
	default: *OC = c->vocab, *C = E; break;	/* w_head */
	}
}

/* The int8 copies of every copied matrix (one a layer for the per-layer
 * tensors), each in its block layout. */
static struct rec_q8 *q8_copy(const struct model *m)
{
	struct rec_q8 *q = xcalloc(1, sizeof *q);
	size_t bytes = 0, rows = 0;
	int L = m->c.n_layer;
	q->mats = xcalloc(N_COPIED * (size_t)L, sizeof *q->mats);
	for (int pass = 0; pass < 2; pass++) {	/* sizes, then the copies */
		size_t at = 0, row = 0;
		for (size_t t = 0; t < N_COPIED; t++) {
			const struct model_tensor *mt = &m->tensors[copied[t]];
			int OC, C;
			matrix_shape(&m->c, copied[t], &OC, &C);
			size_t n = mt->count / ((size_t)OC * C), padded = (size_t)q8_blocks(OC) * Q8_LANES;
			for (size_t l = 0; l < n; l++) {
				struct q8_mat *qm = &q->mats[t * L + l];
				if (pass == 1) {
					*qm = (struct q8_mat){ q->pool + at, q->scales + row, OC, C };
					quantize_matrix(qm, m->params_mem + mt->offset +
						l * (size_t)OC * C);
				}
				at += padded * q8_pairs(C) * 2;
				row += padded;
			}
		}
		if (pass == 0) {
			bytes = at, rows = row;
			q->pool = xcalloc(bytes, 1);
			q->scales = xcalloc(rows, sizeof *q->scales);
		}
	}
	return q;
}

static void q8_free(struct rec_q8 *q)
{
	if (q) {
		free(q->mats);
		free(q->pool);
		free(q->scales);
		free(q);
	}
}

/* The int8 copy of the matrix that starts at w. */
static const struct q8_mat *q8_find(const struct rec *r, const float *w)
{
	const struct model *m = r->m;
	size_t at = (size_t)(w - m->params_mem);
	for (size_t t = 0; t < N_COPIED; t++) {
		const struct model_tensor *mt = &m->tensors[copied[t]];
		int OC, C;
		matrix_shape(&m->c, copied[t], &OC, &C);
		if (at >= mt->offset && at < mt->offset + mt->count)
			return &r->q8->mats[t * m->c.n_layer + (at - mt->offset) / ((size_t)OC * C)];
	}
	errx(EX_SOFTWARE, "recurrent: a product of a matrix without an int8 copy");
}

void rec_set_precision(struct rec *r, enum rec_precision p)
{
	const struct model *m = r->m;
	quant_free(r);
	r->precision = p;
	r->simd = rec_simd(p);
	if (p == REC_F16) {
		r->half = xcalloc(m->n_params, sizeof *r->half);
		for (size_t t = 0; t < N_COPIED; t++) {
			const struct model_tensor *mt = &m->tensors[copied[t]];
			for (size_t i = mt->offset; i < mt->offset + mt->count; i++)
				r->half[i] = float_to_half(m->params_mem[i]);
		}
	} else if (p == REC_INT8) {
		r->q8 = q8_copy(m);
	}
}

void quant_free(struct rec *r)
{
	free(r->half);
	q8_free(r->q8);
	r->half = NULL;
	r->q8 = NULL;
}

void quant_cols(const struct rec *r, float *out, int ldo, const struct act *a, const float *w,
	const float *bias, int j0, int j1, float beta)
{
	if (r->precision == REC_INT8) {
		const struct q8_mat *qm = q8_find(r, w);
#if HALF_SIMD
		if (r->simd >= 2) {
			q8_rows_avx512(out, ldo, a, qm, bias, j0, j1, beta);
			return;
		}
		if (r->simd == 1) {
			q8_rows_avx2(out, ldo, a, qm, bias, j0, j1, beta);
			return;
		}
#endif
		q8_rows_c(out, ldo, a, qm, bias, j0, j1, beta);
		return;
	}
	const uint16_t *wh = r->half + (w - r->m->params_mem);
#if HALF_SIMD
	if (r->simd) {
		half_rows_avx2(out, ldo, a->x, wh, bias, a->n, a->C, j0, j1, beta);
		return;
	}
#endif
	half_rows_c(out, ldo, a->x, wh, bias, a->n, a->C, j0, j1, beta);
}
