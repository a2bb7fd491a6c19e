/* t-layers.c: unit tests of the tgpt model's layers (tools/tgpt/layers.h):
 * each forward against a naive double-precision reference, each backward
 * against central finite differences of that reference computed in double
 * (so the tolerances can be tight: the only error left is float rounding in
 * the layer under test), the sgemm wrapper against a naive product, and
 * dropout's masks (rate, reproducibility, independence of key and index).
 * Error measure: max |got - want| / max |want| over the tensor. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/tgpt/layers.h"
#include "../../tools/tgpt/vecmath.h"
#include "../tap.h"

#define FWD_TOL 2e-5	/* float forward vs double reference */
#define GRAD_TOL 1e-4	/* float backward vs double finite differences */

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_state = 12345;

static double urand(void)	/* [-1, 1) */
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(rng_state >> 11) * 0x1.0p-52 - 1.0;
}

static float *frand(size_t n, double scale)
{
	float *x = malloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(scale * urand());
	return x;
}

static double *to_double(const float *x, size_t n)
{
	double *d = malloc(n * sizeof *d);
	for (size_t i = 0; i < n; i++)
		d[i] = x[i];
	return d;
}

static double relerr(const float *got, const double *want, size_t n)
{
	double diff = 0.0, mag = 0.0;
	for (size_t i = 0; i < n; i++) {
		diff = fmax(diff, fabs(got[i] - want[i]));
		mag = fmax(mag, fabs(want[i]));
	}
	return mag > 0 ? diff / mag : diff;
}

static void check(const char *what, const float *got, const double *want, size_t n, double tol)
{
	double e = relerr(got, want, n);
	ok(e < tol, what);
	printf("#   relative error %.3g, tolerance %.3g\n", e, tol);
}

/* Central differences in double: grad[i] = d f / d x[i], x inside ctx. */
static void fd_grad(double *x, size_t n, double (*f)(void *), void *ctx, double *grad)
{
	for (size_t i = 0; i < n; i++) {
		double save = x[i], h = 1e-5 * fmax(1.0, fabs(save));
		x[i] = save + h;
		double lp = f(ctx);
		x[i] = save - h;
		double lm = f(ctx);
		x[i] = save;
		grad[i] = (lp - lm) / (2 * h);
	}
}

static double dot(const double *a, const double *b, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* ------------------------------------------------------------------ sgemm */

static void test_mm(void)
{
	int m = 37, n = 23, k = 19, pad = 3;
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++) {
			int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
			int lda = ac + pad, ldb = bc + pad, ldc = n + pad;
			float *a = frand((size_t)ar * lda, 1), *b = frand((size_t)br * ldb, 1);
			float *c = frand((size_t)m * ldc, 1), *c0 = frand((size_t)m * ldc, 1);
			double *want = malloc((size_t)m * n * sizeof *want);
			float *got = malloc((size_t)m * n * sizeof *got);
			for (int beta0 = 0; beta0 < 2; beta0++) {
				float beta = beta0 ? 0.0f : 0.25f;
				memcpy(c, c0, (size_t)m * ldc * sizeof *c);
				if (beta0)	/* beta 0 must not read C */
					for (size_t i = 0; i < (size_t)m * ldc; i++)
						c[i] = NAN;
				for (int i = 0; i < m; i++)
					for (int j = 0; j < n; j++) {
						double s = 0.0;
						for (int p = 0; p < k; p++)
							s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
								(tb ? b[j * ldb + p] : b[p * ldb + j]);
						want[i * n + j] = 0.75 * s + (beta0 ? 0.0 : beta * c0[i * ldc + j]);
					}
				mm(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, beta, c, ldc);
				for (int i = 0; i < m; i++)
					memcpy(got + i * n, c + i * ldc, n * sizeof *got);
				char what[80];
				snprintf(what, sizeof what, "mm %c%c beta %g vs naive product",
					ta ? 'T' : 'N', tb ? 'T' : 'N', beta);
				check(what, got, want, (size_t)m * n, 1e-5);
				int pad_kept = 1;	/* the padding columns of C stay as they were */
				for (int i = 0; i < m; i++)
					for (int j = n; j < ldc; j++)
						pad_kept &= beta0 ? isnan(c[i * ldc + j]) :
							c[i * ldc + j] == c0[i * ldc + j];
				ok(pad_kept, "mm leaves C outside the (m,n) block alone");
			}
			free(a), free(b), free(c), free(c0), free(want), free(got);
		}
}

/* ------------------------------------------------------------------ linear */

struct lin_ctx {
	int N, C, OC;
	double *x, *w, *b, *dy;
};

static void naive_linear(const struct lin_ctx *c, double *out)
{
	for (int n = 0; n < c->N; n++)
		for (int o = 0; o < c->OC; o++) {
			double s = c->b[o];
			for (int i = 0; i < c->C; i++)
				s += c->x[n * c->C + i] * c->w[o * c->C + i];
			out[n * c->OC + o] = s;
		}
}

static double lin_loss(void *p)
{
	struct lin_ctx *c = p;
	double *out = malloc((size_t)c->N * c->OC * sizeof *out), l;
	naive_linear(c, out);
	l = dot(out, c->dy, (size_t)c->N * c->OC);
	free(out);
	return l;
}

static void test_linear(void)
{
	int N = 13, C = 11, OC = 7;
	float *x = frand(N * C, 1), *w = frand(OC * C, 1), *b = frand(OC, 1), *dy = frand(N * OC, 1);
	struct lin_ctx c = { N, C, OC, to_double(x, N * C), to_double(w, OC * C), to_double(b, OC),
		to_double(dy, N * OC) };
	double *want = malloc(N * OC * sizeof *want), *fd = malloc(N * C * sizeof *fd);
	float *out = frand(N * OC, 1), *base = malloc(N * OC * sizeof *base);
	memcpy(base, out, N * OC * sizeof *out);
	naive_linear(&c, want);
	linear_forward(out, x, w, b, N, C, OC, 1.0f, 0.0f);
	check("linear forward", out, want, N * OC, FWD_TOL);
	linear_forward(out, x, w, b, N, C, OC, -1.0f, 1.0f);	/* subtracts itself */
	double zero_err = 0;
	for (int i = 0; i < N * OC; i++)
		zero_err = fmax(zero_err, fabs(out[i]));
	ok(zero_err < 1e-6, "linear forward alpha -1 beta 1 subtracts the layer");

	float *dx = frand(N * C, 1), *dw = calloc(OC * C, sizeof *dw), *db = calloc(OC, sizeof *db);
	float *dx0 = malloc(N * C * sizeof *dx0);
	memcpy(dx0, dx, N * C * sizeof *dx);
	linear_backward(dx, 1.0f, dw, db, dy, x, w, N, C, OC);
	fd_grad(c.x, N * C, lin_loss, &c, fd);
	for (int i = 0; i < N * C; i++)
		fd[i] += dx0[i];	/* beta 1: accumulated onto what was there */
	check("linear backward dinp (accumulated)", dx, fd, N * C, GRAD_TOL);
	fd = realloc(fd, OC * C * sizeof *fd);
	fd_grad(c.w, OC * C, lin_loss, &c, fd);
	check("linear backward dw", dw, fd, OC * C, GRAD_TOL);
	fd_grad(c.b, OC, lin_loss, &c, fd);
	check("linear backward db", db, fd, OC, GRAD_TOL);
	free(x), free(w), free(b), free(dy), free(c.x), free(c.w), free(c.b), free(c.dy);
	free(want), free(fd), free(out), free(base), free(dx), free(dw), free(db), free(dx0);
}

/* ------------------------------------------------------------------ layernorm */

struct ln_ctx {
	int N, C;
	double *x, *g, *b, *dy;
};

static void naive_ln(const struct ln_ctx *c, double *out)
{
	for (int n = 0; n < c->N; n++) {
		const double *x = c->x + n * c->C;
		double mu = 0, var = 0;
		for (int i = 0; i < c->C; i++)
			mu += x[i] / c->C;
		for (int i = 0; i < c->C; i++)
			var += (x[i] - mu) * (x[i] - mu) / c->C;
		for (int i = 0; i < c->C; i++)
			out[n * c->C + i] = (x[i] - mu) / sqrt(var + 1e-5) * c->g[i] + c->b[i];
	}
}

static double ln_loss(void *p)
{
	struct ln_ctx *c = p;
	double *out = malloc((size_t)c->N * c->C * sizeof *out), l;
	naive_ln(c, out);
	l = dot(out, c->dy, (size_t)c->N * c->C);
	free(out);
	return l;
}

static void test_layernorm(void)
{
	int N = 9, C = 16;
	float *x = frand(N * C, 2), *g = frand(C, 1), *b = frand(C, 1), *dy = frand(N * C, 1);
	for (int i = 0; i < C; i++)
		x[i] += 5.0f;	/* a row with a large mean */
	struct ln_ctx c = { N, C, to_double(x, N * C), to_double(g, C), to_double(b, C),
		to_double(dy, N * C) };
	double *want = malloc(N * C * sizeof *want), *fd = malloc(N * C * sizeof *fd);
	float *out = malloc(N * C * sizeof *out), *out2 = malloc(N * C * sizeof *out2);
	float mean[9], rstd[9];
	naive_ln(&c, want);
	layernorm_forward(out, mean, rstd, x, g, b, N, C, 1e-5f);
	check("layernorm forward", out, want, N * C, FWD_TOL);
	layernorm_apply(out2, mean, rstd, x, g, b, N, C);
	is_mem(out2, out, N * C * sizeof *out, "layernorm_apply recomputes the forward exactly");

	float *dx = calloc(N * C, sizeof *dx), *dg = calloc(C, sizeof *dg), *db = calloc(C, sizeof *db);
	layernorm_backward(dx, dg, db, dy, x, g, mean, rstd, N, C);
	fd_grad(c.x, N * C, ln_loss, &c, fd);
	check("layernorm backward dinp", dx, fd, N * C, GRAD_TOL);
	fd_grad(c.g, C, ln_loss, &c, fd);
	check("layernorm backward dgamma", dg, fd, C, GRAD_TOL);
	fd_grad(c.b, C, ln_loss, &c, fd);
	check("layernorm backward dbeta", db, fd, C, GRAD_TOL);
	free(x), free(g), free(b), free(dy), free(c.x), free(c.g), free(c.b), free(c.dy);
	free(want), free(fd), free(out), free(out2), free(dx), free(dg), free(db);
}

/* ------------------------------------------------------------------ GELU, GLU, exp */

static double naive_gelu(double x)	/* erfc: 1 + erf(x) would cancel for x << 0 */
{
	return 0.5 * x * erfc(-x / sqrt(2.0));
}

static void test_vecmath(void)
{
	double worst = 0;
	for (double x = -86.0; x <= 87.9; x += 0.0137)
		worst = fmax(worst, fabs(vm_exp((float)x) / exp((float)x) - 1.0));
	if (!ok(worst < 5e-7, "vm_exp relative error < 5e-7 on [-86, 88]"))
		printf("#   worst %.3g\n", worst);
	ok(isfinite(vm_exp(1000.0f)) && vm_exp(-1000.0f) >= 0.0f, "vm_exp saturates, no inf");

	double worst_rel = 0;
	for (double x = -12.0; x <= 12.0; x += 0.001) {
		double want = naive_gelu((float)x);
		double e = fabs(vm_gelu((float)x) - want);
		/* relative where the value is not tiny, absolute below */
		worst_rel = fmax(worst_rel, fabs(want) > 1e-30 ? e / fabs(want) : e);
	}
	if (!ok(worst_rel < 2e-5, "GELU (erfc fit) relative error < 2e-5 on [-12, 12], tails too"))
		printf("#   worst %.3g\n", worst_rel);
}

struct pw_ctx {
	size_t n;
	int N, F, glu;
	double *x, *dy;
};

static double gelu_loss(void *p)
{
	struct pw_ctx *c = p;
	double l = 0;
	if (!c->glu) {
		for (size_t i = 0; i < c->n; i++)
			l += naive_gelu(c->x[i]) * c->dy[i];
		return l;
	}
	for (int n = 0; n < c->N; n++)
		for (int i = 0; i < c->F; i++)
			l += naive_gelu(c->x[n * 2 * c->F + i]) * c->x[n * 2 * c->F + c->F + i] *
				c->dy[n * c->F + i];
	return l;
}

static void test_gelu_glu(void)
{
	size_t n = 200;
	float *x = frand(n, 4), *dy = frand(n, 1), *out = malloc(n * sizeof *out);
	float *dx = malloc(n * sizeof *dx);
	struct pw_ctx c = { n, 0, 0, 0, to_double(x, n), to_double(dy, n) };
	double *want = malloc(n * sizeof *want), *fd = malloc(n * sizeof *fd);
	for (size_t i = 0; i < n; i++)
		want[i] = naive_gelu(c.x[i]);
	gelu_forward(out, x, n);
	check("gelu forward", out, want, n, FWD_TOL);
	gelu_backward(dx, x, dy, n);
	fd_grad(c.x, n, gelu_loss, &c, fd);
	check("gelu backward", dx, fd, n, GRAD_TOL);

	int N = 10, F = 10;	/* GLU: inp (N,2F), out (N,F) */
	c.N = N, c.F = F, c.glu = 1;
	glu_forward(out, x, N, F);
	for (int r = 0; r < N; r++)
		for (int i = 0; i < F; i++)
			want[r * F + i] = naive_gelu(c.x[r * 2 * F + i]) * c.x[r * 2 * F + F + i];
	check("glu forward", out, want, N * F, FWD_TOL);
	glu_backward(dx, x, dy, N, F);
	fd_grad(c.x, 2 * N * F, gelu_loss, &c, fd);
	check("glu backward", dx, fd, 2 * N * F, GRAD_TOL);
	free(x), free(dy), free(out), free(dx), free(c.x), free(c.dy), free(want), free(fd);
}

/* ------------------------------------------------------------------ token shift */

struct shift_ctx {
	int B, T, C;
	double *x, *dy;
};

static void naive_shift(const struct shift_ctx *c, double *out)
{
	for (int b = 0; b < c->B; b++)
		for (int t = 0; t < c->T; t++)
			for (int i = 0; i < c->C; i++) {
				size_t at = ((size_t)b * c->T + t) * c->C + i;
				out[at] = i < c->C / 2 ? (t ? c->x[at - c->C] : 0.0) : c->x[at];
			}
}

static double shift_loss(void *p)
{
	struct shift_ctx *c = p;
	size_t n = (size_t)c->B * c->T * c->C;
	double *out = malloc(n * sizeof *out), l;
	naive_shift(c, out);
	l = dot(out, c->dy, n);
	free(out);
	return l;
}

static void test_shift(void)
{
	int B = 2, T = 5, C = 7;	/* odd C: the first C/2 = 3 channels shift */
	size_t n = (size_t)B * T * C;
	float *x = frand(n, 1), *dy = frand(n, 1), *out = malloc(n * sizeof *out);
	float *dx = malloc(n * sizeof *dx);
	struct shift_ctx c = { B, T, C, to_double(x, n), to_double(dy, n) };
	double *want = malloc(n * sizeof *want), *fd = malloc(n * sizeof *fd);
	naive_shift(&c, want);
	shift_forward(out, x, B, T, C);
	check("token shift forward (odd width, two sequences)", out, want, n, 1e-7);
	shift_backward(dx, dy, B, T, C);
	fd_grad(c.x, n, shift_loss, &c, fd);
	check("token shift backward", dx, fd, n, GRAD_TOL);
	free(x), free(dy), free(out), free(dx), free(c.x), free(c.dy), free(want), free(fd);
}

/* ------------------------------------------------------------------ embedding */

struct emb_ctx {
	int B, T, E, V, P, aw;
	const int *tok;
	double *wte, *pa, *pb, *dy;
};

static double emb_loss(void *p)
{
	struct emb_ctx *c = p;
	double l = 0;
	for (int b = 0; b < c->B; b++)
		for (int t = 0; t < c->T; t++)
			for (int i = 0; i < c->E; i++) {
				size_t at = ((size_t)b * c->T + t) * c->E + i;
				double v = c->wte[c->tok[b * c->T + t] * c->E + i];
				v += c->aw ? c->pa[(t / c->aw) * c->E + i] + c->pb[(t % c->aw) * c->E + i] :
					c->pa[t * c->E + i];
				l += v * c->dy[at];
			}
	return l;
}

static void test_embed(void)
{
	int B = 2, T = 11, E = 5, V = 7, tok[22];
	for (int i = 0; i < B * T; i++)
		tok[i] = (i * 5) % V;	/* repeats: the gradient must accumulate */
	for (int aw = 0; aw <= 4; aw += 4) {
		int P = aw ? (T + aw - 1) / aw : T;
		size_t n = (size_t)B * T * E;
		float *wte = frand(V * E, 1), *pa = frand(P * E, 1), *pb = frand(4 * E, 1);
		float *dy = frand(n, 1), *out = malloc(n * sizeof *out);
		struct emb_ctx c = { B, T, E, V, P, aw, tok, to_double(wte, V * E), to_double(pa, P * E),
			to_double(pb, 4 * E), to_double(dy, n) };
		double *want = malloc(n * sizeof *want), *fd = malloc((V > P ? V : P) * E * sizeof *fd);
		for (int b = 0; b < B; b++)
			for (int t = 0; t < T; t++)
				for (int i = 0; i < E; i++)
					want[((size_t)b * T + t) * E + i] = c.wte[tok[b * T + t] * E + i] +
						(aw ? c.pa[t / aw * E + i] + c.pb[t % aw * E + i] : c.pa[t * E + i]);
		embed_forward(out, tok, wte, pa, aw ? pb : NULL, aw, B, T, E);
		check(aw ? "embedding + axial positions forward" : "embedding + learned positions forward",
			out, want, n, FWD_TOL);
		float *dwte = calloc(V * E, sizeof *dwte), *dpa = calloc(P * E, sizeof *dpa);
		float *dpb = calloc(4 * E, sizeof *dpb);
		embed_backward(dwte, dpa, aw ? dpb : NULL, dy, tok, aw, B, T, E);
		fd_grad(c.wte, V * E, emb_loss, &c, fd);
		check("embedding backward dwte", dwte, fd, V * E, GRAD_TOL);
		fd_grad(c.pa, P * E, emb_loss, &c, fd);
		check(aw ? "axial backward dA" : "learned positions backward", dpa, fd, P * E, GRAD_TOL);
		if (aw) {
			fd_grad(c.pb, 4 * E, emb_loss, &c, fd);
			check("axial backward dB", dpb, fd, 4 * E, GRAD_TOL);
		}
		free(wte), free(pa), free(pb), free(dy), free(out), free(want), free(fd);
		free(c.wte), free(c.pa), free(c.pb), free(c.dy), free(dwte), free(dpa), free(dpb);
	}
}

/* ------------------------------------------------------------------ cross-entropy */

struct ce_ctx {
	int N, V;
	const int *tgt;
	double *z;
};

static double ce_loss(void *p)	/* mean over rows whose target is not 3 */
{
	struct ce_ctx *c = p;
	double l = 0;
	int valid = 0;
	for (int n = 0; n < c->N; n++) {
		if (c->tgt[n] == 3)
			continue;
		double s = 0;
		for (int v = 0; v < c->V; v++)
			s += exp(c->z[n * c->V + v]);
		l += log(s) - c->z[n * c->V + c->tgt[n]];
		valid++;
	}
	return l / valid;
}

static void test_crossentropy(void)
{
	int N = 8, V = 9, tgt[8] = { 0, 3, 8, 5, 3, 1, 2, 7 }, valid;
	float *z = frand(N * V, 5), lse[8];
	struct ce_ctx c = { N, V, tgt, to_double(z, N * V) };
	double sum = crossentropy_forward(lse, z, tgt, 3, N, V, &valid);
	is_int(valid, 6, "cross-entropy counts the targets that are not the ignore id");
	is_near(sum / valid, ce_loss(&c), 1e-5, "cross-entropy forward (mean) vs double");
	float *dz = malloc(N * V * sizeof *dz);
	double *fd = malloc(N * V * sizeof *fd);
	crossentropy_backward(dz, z, lse, tgt, 3, 1.0f / valid, N, V);
	fd_grad(c.z, N * V, ce_loss, &c, fd);
	check("cross-entropy backward (ignored rows zero)", dz, fd, N * V, GRAD_TOL);
	free(z), free(c.z), free(dz), free(fd);
}

/* ------------------------------------------------------------------ attention */

/* Naive references over the whole (B,T,3*H*dh) qkv, heads [h0,h1). */
struct att_ctx {
	struct heads hd;
	int W, C;	/* W > 0: local; else linear */
	double eps;
	double *qkv, *dy;
};

static double qkv_at(const struct att_ctx *c, const double *qkv, int b, int t, int part, int h,
	int e)
{
	size_t HD = (size_t)c->hd.H * c->hd.dh;
	return qkv[((size_t)b * c->hd.T + t) * 3 * HD + part * HD + (size_t)h * c->hd.dh + e];
}

/* out (B,T,H*dh), only heads [h0,h1) written */
static void naive_attention(const struct att_ctx *c, const double *qkv, double *out)
{
	int T = c->hd.T, dh = c->hd.dh, HD = c->hd.H * dh;
	double *w = malloc(T * sizeof *w), *qf = malloc(dh * sizeof *qf);
	for (int b = 0; b < c->hd.B; b++)
		for (int h = c->hd.h0; h < c->hd.h1; h++)
			for (int i = 0; i < T; i++) {
				double *o = out + ((size_t)b * T + i) * HD + h * dh, norm = 0;
				if (c->W > 0) {	/* softmax over the visible keys (full mask) */
					double mx = -INFINITY;
					for (int j = 0; j <= i; j++) {
						w[j] = -INFINITY;
						if (j / c->W < i / c->W - 1)
							continue;
						double s = 0;
						for (int e = 0; e < dh; e++)
							s += qkv_at(c, qkv, b, i, 0, h, e) * qkv_at(c, qkv, b, j, 1, h, e);
						w[j] = s / sqrt(dh);
						mx = fmax(mx, w[j]);
					}
					for (int j = 0; j <= i; j++) {
						w[j] = exp(w[j] - mx);
						norm += w[j];
					}
				} else {	/* softmax(q) * dh^-0.5 . exp(k), clamped sum */
					double mx = -INFINITY, s = 0;
					for (int e = 0; e < dh; e++)
						mx = fmax(mx, qkv_at(c, qkv, b, i, 0, h, e));
					for (int e = 0; e < dh; e++)
						s += qf[e] = exp(qkv_at(c, qkv, b, i, 0, h, e) - mx);
					for (int e = 0; e < dh; e++)
						qf[e] /= s * sqrt(dh);
					for (int j = 0; j <= i; j++) {
						w[j] = 0;
						for (int e = 0; e < dh; e++)
							w[j] += qf[e] * exp(qkv_at(c, qkv, b, j, 1, h, e));
						norm += w[j];
					}
					norm = fmax(norm, c->eps);
				}
				for (int e = 0; e < dh; e++) {
					double s = 0;
					for (int j = 0; j <= i; j++)
						s += w[j] * qkv_at(c, qkv, b, j, 2, h, e);
					o[e] = s / norm;
				}
			}
	free(w), free(qf);
}

static double att_loss(void *p)
{
	struct att_ctx *c = p;
	size_t n = (size_t)c->hd.B * c->hd.T * c->hd.H * c->hd.dh;
	double *out = calloc(n, sizeof *out), l;
	naive_attention(c, c->qkv, out);
	l = dot(out, c->dy, n);
	free(out);
	return l;
}

static void test_attention(const char *name, struct heads hd, int W, int C, float kshift)
{
	int local = W > 0, HD = hd.H * hd.dh;
	size_t nq = (size_t)hd.B * hd.T * 3 * HD, no = (size_t)hd.B * hd.T * HD;
	float *qkv = frand(nq, 1.5), *dy = frand(no, 1);
	for (size_t r = 0; r < (size_t)hd.B * hd.T; r++)	/* exp(k) small: the clamp acts */
		for (int e = 0; e < HD; e++)
			qkv[r * 3 * HD + HD + e] += r % 5 == 0 ? kshift : 0.0f;
	struct att_ctx c = { hd, W, C, 1e-3, to_double(qkv, nq), NULL };
	double *want = calloc(no, sizeof *want), *fd = malloc(nq * sizeof *fd);
	float *out = malloc(no * sizeof *out), *stat = malloc((size_t)hd.B * hd.T * hd.H * 4);
	for (size_t i = 0; i < no; i++)
		out[i] = 7.0f;	/* the sentinel in columns of other heads must survive */
	/* two scratch slots: the heads may run on two threads */
	size_t scratch = local ? local_attn_scratch(W) : linear_attn_scratch(hd.T, hd.dh, C);
	float *s = malloc(2 * scratch * sizeof *s);
	if (local)
		local_attn_forward(out, stat, qkv, &hd, W, s, 2);
	else	/* replaces q, k by the feature maps, which the backward takes */
		linear_attn_forward(out, stat, qkv, &hd, C, 1e-3f, s, 2);
	naive_attention(&c, c.qkv, want);
	int others_kept = 1;
	for (size_t r = 0; r < (size_t)hd.B * hd.T; r++)
		for (int e = 0; e < HD; e++)
			if (e < hd.h0 * hd.dh || e >= hd.h1 * hd.dh) {
				others_kept &= out[r * HD + e] == 7.0f;
				want[r * HD + e] = 7.0f;
			}
	char what[160];
	snprintf(what, sizeof what, "%s forward vs naive masked O(T^2)", name);
	check(what, out, want, no, FWD_TOL);
	snprintf(what, sizeof what, "%s leaves the other heads' columns alone", name);
	ok(others_kept, what);

	/* backward: the loss only sees heads [h0,h1), so zero dy elsewhere */
	for (size_t r = 0; r < (size_t)hd.B * hd.T; r++)
		for (int e = 0; e < HD; e++)
			if (e < hd.h0 * hd.dh || e >= hd.h1 * hd.dh)
				dy[r * HD + e] = 0.0f;
	c.dy = to_double(dy, no);
	float *dqkv = calloc(nq, sizeof *dqkv);
	if (local)
		local_attn_backward(dqkv, dy, qkv, out, stat, &hd, W, s, 2);
	else
		linear_attn_backward(dqkv, dy, qkv, out, stat, &hd, C, 1e-3f, s, 2);
	fd_grad(c.qkv, nq, att_loss, &c, fd);
	snprintf(what, sizeof what, "%s backward dq, dk, dv vs finite differences", name);
	check(what, dqkv, fd, nq, GRAD_TOL);
	free(qkv), free(dy), free(c.qkv), free(c.dy), free(want), free(fd), free(out), free(stat);
	free(s), free(dqkv);
}

/* ------------------------------------------------------------------ dropout */

struct drop_ctx {
	const float *w;
	float *x, *out;
	size_t n;
	float p;
	uint64_t key;
};

static double drop_loss(void *p)	/* sum w * dropout(x), in float as the layer */
{
	struct drop_ctx *c = p;
	dropout_forward(c->out, c->x, c->n, c->p, c->key, 0);
	double s = 0;
	for (size_t i = 0; i < c->n; i++)
		s += (double)c->w[i] * c->out[i];
	return s;
}

static void test_dropout(void)
{
	size_t n = 200000;
	float p = 0.1f, *x = frand(n, 1.0), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
	uint64_t key = dropout_key(7, 3, 1, 2);
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] == 0.0f ? 0.5f : x[i];	/* a zero out means dropped */
	dropout_forward(y, x, n, p, key, 0);
	size_t dropped = 0, scaled = 1;
	float keep = 1.0f / (1.0f - (float)dropout_rate(p));
	for (size_t i = 0; i < n; i++) {
		dropped += y[i] == 0.0f;
		scaled &= y[i] == 0.0f || y[i] == x[i] * keep;
	}
	double rate = (double)dropped / n, sigma = sqrt(p * (1 - p) / n);
	char what[160];
	snprintf(what, sizeof what, "dropout 0.1 zeroes %.4f of 200,000 (within 5 sigma of %.4f)",
		rate, dropout_rate(p));
	ok(fabs(rate - dropout_rate(p)) < 5 * sigma, what);
	ok(fabs(dropout_rate(p) - p) <= 0x1p-16, "dropout_rate is p to 2^-16");
	ok(scaled, "dropout keeps the other elements scaled by 1/(1-p)");

	size_t runs = 0, longest = 0;	/* the mask is no pattern: runs of drops as a coin's */
	for (size_t i = 0, r = 0; i < n; i++) {
		r = y[i] == 0.0f ? r + 1 : 0;
		runs += r == 1;
		longest = r > longest ? r : longest;
	}
	ok(fabs((double)runs / dropped - (1 - p)) < 0.02 && longest < 12,
		"dropout: drops come in runs as independent coins do");

	dropout_forward(z, x, n, p, key, 0);
	is_mem(z, y, n * sizeof *y, "dropout: the same key and index give the same mask");
	uint64_t other[] = { dropout_key(8, 3, 1, 2), dropout_key(7, 4, 1, 2),
		dropout_key(7, 3, 2, 2), dropout_key(7, 3, 1, 1) };
	int all_differ = 1;
	for (int k = 0; k < 4; k++) {
		dropout_forward(z, x, n, p, other[k], 0);
		size_t same = 0;
		for (size_t i = 0; i < n; i++)
			same += (z[i] == 0.0f) == (y[i] == 0.0f);
		all_differ &= same < n - n / 10;	/* two independent masks: about 82 % agree */
	}
	ok(all_differ, "dropout: another seed, pass, layer or site gives another mask");
	size_t k0 = 12345;
	dropout_forward(z, x + k0, n - k0, p, key, k0);
	is_mem(z, y + k0, (n - k0) * sizeof *y, "dropout: idx0 places a part in the whole mask");
	dropout_forward(z, x, n, 0.0f, key, 0);
	is_mem(z, x, n * sizeof *x, "dropout 0 copies its input exactly");
	memcpy(z, x, n * sizeof *x);
	dropout_forward(z, z, n, p, key, 0);
	is_mem(z, y, n * sizeof *y, "dropout in place = out of place");

	/* The backward against finite differences of the float forward: the
	 * layer is linear, so a step of 0.25 (exact in float) leaves only the
	 * rounding of the sum. */
	size_t m = 300;
	float *w = frand(m, 1.0), *dx = malloc(m * sizeof *dx);
	struct drop_ctx c = { w, x, y, m, 0.5f, key };
	dropout_backward(dx, w, m, c.p, key, 0);
	double worst = 0;
	for (size_t i = 0; i < m; i++) {
		float save = x[i];
		x[i] = save + 0.25f;
		double lp = drop_loss(&c);
		x[i] = save - 0.25f;
		double lm = drop_loss(&c);
		x[i] = save;
		worst = fmax(worst, fabs((lp - lm) / 0.5 - dx[i]));
	}
	snprintf(what, sizeof what, "dropout backward vs finite differences (max abs err %.2g "
		"< 1e-6)", worst);
	ok(worst < 1e-6, what);
	free(x), free(y), free(z), free(w), free(dx);
}

int main(void)
{
	test_mm();
	test_linear();
	test_layernorm();
	test_vecmath();
	test_gelu_glu();
	test_shift();
	test_embed();
	test_crossentropy();
	test_dropout();
	/* T not a multiple of the window or chunk; two sequences; a subset of heads */
	test_attention("local attention W 8, T 21", (struct heads){ 2, 21, 3, 4, 1, 3 }, 8, 0, 0.0f);
	test_attention("local attention W 5, T 10", (struct heads){ 1, 10, 1, 6, 0, 1 }, 5, 0, 0.0f);
	test_attention("linear attention C 8, T 37", (struct heads){ 2, 37, 3, 4, 1, 3 }, 0, 8, 0.0f);
	test_attention("linear attention C 1, T 9", (struct heads){ 1, 9, 1, 5, 0, 1 }, 0, 1, 0.0f);
	test_attention("linear attention C 64 > T 19", (struct heads){ 1, 19, 2, 3, 0, 2 }, 0, 64,
		0.0f);
	test_attention("linear attention C 4, clamped denominators", (struct heads){ 1, 13, 1, 4, 0, 1 },
		0, 4, -12.0f);
	return tap_done();
}
