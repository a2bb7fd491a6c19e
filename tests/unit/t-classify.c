/* t-classify.c: unit tests of classification with a fine-tuned model
 * (tools/tgpt/classify.h) and of the checkpoint's label table (ckpt.h):
 * label tokens, the training rows and targets, per-class probabilities
 * against the model's logits computed by hand (one- and two-token labels,
 * in chunks), the label loss, the argmax, the label section
 * written and read back with the best parameters beside the last, damage
 * refused, and clf_load refusing a model that is no classifier. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "../../tools/tgpt/ckpt.h"
#include "../../tools/tgpt/classify.h"
#include "../../tools/tgpt/model.h"
#include "../tap.h"

#define CLS 258
#define PAD 259

static char dir[256];

static const char *path_of(const char *name)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

/* n labels "c0", "c1", ... of k tokens, window W. */
static void make_map(struct ckpt_labels *l, uint32_t n, uint32_t k, uint32_t W)
{
	memset(l, 0, sizeof *l);
	l->n = n, l->k = k, l->window = W;
	l->name = calloc(n, sizeof *l->name);
	l->count = calloc(n, sizeof *l->count);
	for (uint32_t i = 0; i < n; i++) {
		char s[16];
		snprintf(s, sizeof s, "c%u", i);
		l->name[i] = strdup(s);
		l->count[i] = 10 + i;
	}
	clf_assign_tokens(l, 0);
}

static void random_flow(uint16_t *f, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		f[i] = (uint16_t)((seed >> 8) % 258);	/* bytes, START, END */
	}
}

/* The model's logits at position pos of one row (copied into out, V). */
static void row_logits(struct model *m, const int *row, int T, int pos, float *out)
{
	model_forward(m, row, NULL, 1, T);
	memcpy(out, model_logits(m) + (size_t)pos * m->c.vocab, m->c.vocab * sizeof *out);
}

/* softmax over the ids of sel (n of them) of logits; p(sel[j]) into p[j] */
static void softmax_of(const float *logits, const int *sel, int n, double *p)
{
	double max = -INFINITY, sum = 0;
	for (int j = 0; j < n; j++)
		max = fmax(max, logits[sel[j]]);
	for (int j = 0; j < n; j++)
		sum += p[j] = exp(logits[sel[j]] - max);
	for (int j = 0; j < n; j++)
		p[j] /= sum;
}

/* ------------------------------------------------------------ tests */

static void test_tokens(void)
{
	is_int(clf_tokens_for(1), 1, "one label: one token");
	is_int(clf_tokens_for(256), 1, "256 labels: one token each (the byte tokens)");
	is_int(clf_tokens_for(257), 2, "257 labels: two tokens each");
	is_int(clf_tokens_for(65535), 2, "65535 labels: two tokens each");
	struct ckpt_labels l;
	make_map(&l, 3, 1, 8);
	ok(l.token[0] == 0 && l.token[1] == 1 && l.token[2] == 2, "one token: label i is token i");
	is_int(clf_rows_per_flow(&l), 1, "one row per flow");
	ckpt_labels_free(&l);
	make_map(&l, 300, 2, 8);
	ok(l.token[0] == 0 && l.token[1] == 0 && l.token[2 * 299] == 1 && l.token[2 * 299 + 1] == 43,
		"two tokens: label 299 is 1, 43 (299 / 256, 299 % 256)");
	is_int(clf_row_len(&l), 10, "a row of CLS, 8 flow tokens and a first label token");
	is_int(clf_rows_per_flow(&l), 2, "prediction: a row for each of the 2 first tokens");
	ckpt_labels_free(&l);
}

static void test_batch(void)
{
	struct ckpt_labels l;
	uint16_t a[3] = { 256, 1, 7 }, b[20];
	const uint16_t *flows[2] = { a, b };
	size_t lens[2] = { 3, 20 };
	uint32_t labels[2] = { 2, 0 };
	int tok[2 * 10], tgt[2 * 10];
	random_flow(b, 20, 5);
	make_map(&l, 3, 1, 8);
	int T = clf_batch(&l, PAD, flows, lens, labels, 2, tok, tgt);
	is_int(T, 9, "one-token rows: CLS and at most W = 8 tokens");
	ok(tok[0] == CLS && tok[1] == 256 && tok[2] == 1 && tok[3] == 7 && tok[4] == PAD &&
		tok[8] == PAD, "a short flow: CLS, its tokens, PAD");
	ok(tgt[3] == 2 && tgt[0] == PAD && tgt[2] == PAD && tgt[4] == PAD,
		"its label token is the target after its last token, PAD elsewhere");
	ok(tok[T] == CLS && tok[T + 8] == b[7] && tgt[T + 8] == 0 && tgt[T + 7] == PAD,
		"a long flow: its first W tokens, the label after the W-th");
	ckpt_labels_free(&l);

	make_map(&l, 300, 2, 8);
	labels[0] = 299;
	T = clf_batch(&l, PAD, flows, lens, labels, 2, tok, tgt);
	is_int(T, 10, "two-token rows are one longer");
	ok(tok[4] == 1 && tok[5] == PAD && tgt[3] == 1 && tgt[4] == 43 && tgt[5] == PAD,
		"the first label token follows the flow; targets: both label tokens");
	ckpt_labels_free(&l);
}

/* clf_predict against softmaxes of the model's logits taken row by row. */
static void test_predict_one_token(struct model *m)
{
	struct ckpt_labels l;
	struct clf c;
	char err[256];
	enum { N = 5, W = 12 };
	uint16_t f[N][30];
	const uint16_t *flows[N];
	size_t lens[N] = { 30, 4, 1, 12, 13 };
	uint32_t labels[N] = { 0, 1, 2, 3, 1 };
	float probs[N * 4], lg[260];
	for (int i = 0; i < N; i++) {
		random_flow(f[i], 30, 11 + i);
		flows[i] = f[i];
	}
	make_map(&l, 4, 1, W);
	ok(clf_init(&c, m, &l, 2, err, sizeof err) == 0, "clf_init takes a one-token map");
	double loss = clf_predict(&c, flows, lens, labels, N, probs);
	double worst = 0, want_loss = 0, sum_worst = 0;
	for (int i = 0; i < N; i++) {
		int row[W + 1], L = lens[i] < W ? (int)lens[i] : W, sel[4] = { 0, 1, 2, 3 };
		double p[4], sum = 0;
		row[0] = CLS;
		for (int t = 0; t < L; t++)
			row[1 + t] = f[i][t];
		row_logits(m, row, 1 + L, L, lg);
		softmax_of(lg, sel, 4, p);
		for (int j = 0; j < 4; j++) {
			worst = fmax(worst, fabs(p[j] - probs[i * 4 + j]));
			sum += probs[i * 4 + j];
		}
		sum_worst = fmax(sum_worst, fabs(sum - 1));
		double max = -INFINITY, z = 0;
		for (int v = 0; v < m->c.vocab; v++)
			max = fmax(max, lg[v]);
		for (int v = 0; v < m->c.vocab; v++)
			z += exp(lg[v] - max);
		want_loss += max + log(z) - lg[labels[i]];
	}
	ok(worst < 1e-5, "one token: probabilities are the softmax of the label tokens' logits "
		"after the flow's last token (5 flows in chunks of 2, short and cut ones)");
	printf("#   largest difference %.3g\n", worst);
	ok(sum_worst < 1e-5, "they add up to 1");
	is_near(loss, want_loss, 1e-3 * N, "the loss: full-vocabulary cross-entropy of the labels");
	is_near(clf_predict(&c, flows, lens, NULL, N, probs), 0, 0, "no labels, no loss");
	clf_free(&c);
	l.window = 64;
	ok(clf_init(&c, m, &l, 2, err, sizeof err) < 0 && strstr(err, "context of 64"),
		"a window whose inputs exceed the model's context is refused");
	l.window = W;
	l.token[3] = 260;
	ok(clf_init(&c, m, &l, 2, err, sizeof err) < 0 && strstr(err, "vocabulary"),
		"a label token outside the vocabulary is refused");
	ckpt_labels_free(&l);
}

static void test_predict_two_tokens(struct model *m)
{
	struct ckpt_labels l;
	struct clf c;
	char err[256];
	enum { N = 3, W = 6, NL = 300 };
	uint16_t f[N][10];
	const uint16_t *flows[N];
	size_t lens[N] = { 10, 2, 6 };
	uint32_t labels[N] = { 299, 5, 256 };
	float *probs = calloc(N * NL, sizeof *probs), lg[260], lg2[2][260];
	for (int i = 0; i < N; i++) {
		random_flow(f[i], 10, 40 + i);
		flows[i] = f[i];
	}
	make_map(&l, NL, 2, W);
	ok(clf_init(&c, m, &l, 2, err, sizeof err) == 0 && c.rows == 2,
		"clf_init: 300 labels start with 2 distinct first tokens");
	double loss = clf_predict(&c, flows, lens, labels, N, probs), want_loss = 0;
	double worst = 0, sum_worst = 0;
	for (int i = 0; i < N; i++) {
		int row[W + 2], L = lens[i] < W ? (int)lens[i] : W, firsts[2] = { 0, 1 };
		double pf[2], sum = 0;
		row[0] = CLS;
		for (int t = 0; t < L; t++)
			row[1 + t] = f[i][t];
		row_logits(m, row, 1 + L, L, lg);
		softmax_of(lg, firsts, 2, pf);
		for (int h = 0; h < 2; h++) {
			row[1 + L] = h;
			row_logits(m, row, 2 + L, L + 1, lg2[h]);
		}
		/* second tokens: 0..255 after 0, 0..43 after 1 */
		int sel[256];
		double p2[256];
		for (int j = 0; j < 256; j++)
			sel[j] = j;
		for (int h = 0; h < 2; h++) {
			int n2 = h == 0 ? 256 : NL - 256;
			softmax_of(lg2[h], sel, n2, p2);
			for (int j = 0; j < n2; j++) {
				double want = pf[h] * p2[j];
				worst = fmax(worst, fabs(want - probs[i * NL + h * 256 + j]));
			}
		}
		for (int j = 0; j < NL; j++)
			sum += probs[i * NL + j];
		sum_worst = fmax(sum_worst, fabs(sum - 1));
		int h = (int)labels[i] / 256, s = (int)labels[i] % 256;
		const float *a = lg, *b = lg2[h];
		double ma = -INFINITY, mb = -INFINITY, za = 0, zb = 0;
		for (int v = 0; v < 260; v++)
			ma = fmax(ma, a[v]), mb = fmax(mb, b[v]);
		for (int v = 0; v < 260; v++)
			za += exp(a[v] - ma), zb += exp(b[v] - mb);
		want_loss += ma + log(za) - a[h] + mb + log(zb) - b[s];
	}
	ok(worst < 1e-5, "two tokens: P(label) = P(first) P(second | first), each a softmax over "
		"the label tokens that may come there");
	printf("#   largest difference %.3g\n", worst);
	ok(sum_worst < 1e-4, "they add up to 1 over the 300 labels");
	is_near(loss, want_loss, 2e-3 * N, "the loss: both label tokens, teacher-forced");
	clf_free(&c);
	ckpt_labels_free(&l);
	free(probs);
}

static void test_argmax(void)
{
	float p[4] = { 0.1f, 0.4f, 0.4f, 0.1f };
	is_int(clf_argmax(p, 4), 1, "argmax: the lowest id among equals");
}

/* The label section in and out, the best parameters in PARAMS and the
 * last in LAST; clf_load. */
static void test_checkpoint(struct model *m)
{
	struct ckpt_labels l, back;
	struct ckpt_out o = { 0 };
	struct ckpt_text mt = { 0 };
	struct ckpt ck;
	struct model b;
	char err[1024];
	uint64_t size;
	make_map(&l, 300, 2, 6);
	free(l.name[7]);
	l.name[7] = strdup("a label with spaces\nand a newline");
	float *best = malloc(m->n_params * sizeof *best);
	for (size_t i = 0; i < m->n_params; i++)
		best[i] = m->params_mem[i] + 1.0f;
	ckpt_out_add_model_with(&o, m, &mt, &l, best);
	ckpt_write(&o, path_of("clf.ckpt"));
	ckpt_out_free(&o);
	ok(ckpt_open(path_of("clf.ckpt"), &ck, 1, err, sizeof err) == 0, "a classifier checkpoint opens");
	ok(ckpt_read_labels(&ck, &back, err, sizeof err) == 0, "its label table reads back");
	int same = back.n == 300 && back.k == 2 && back.window == 6;
	for (uint32_t i = 0; same && i < 300; i++)
		same = !strcmp(back.name[i], l.name[i]) && back.count[i] == l.count[i] &&
			back.token[2 * i] == l.token[2 * i] && back.token[2 * i + 1] == l.token[2 * i + 1];
	ok(same, "names (spaces and newlines too), tokens, counts, k and window the same");
	ckpt_labels_free(&back);
	float *last = NULL;
	ok(ckpt_load_model(&ck, &b, 0, err, sizeof err) == 0 &&
		!memcmp(b.params_mem, best, m->n_params * sizeof *best),
		"PARAMS holds the best parameters");
	ok(ckpt_load_floats(&ck, CKPT_LAST, m->n_params, &last, err, sizeof err) == 0 &&
		!memcmp(last, m->params_mem, m->n_params * sizeof *last),
		"LAST holds the run's last ones");
	model_free(&b);
	free(last);
	ckpt_close(&ck);
	ckpt_text_free(&mt);

	struct ckpt_labels got;
	ok(clf_load(path_of("clf.ckpt"), &b, &got, err, sizeof err) == 0 && got.n == 300,
		"clf_load: the model and its map");
	model_free(&b);
	ckpt_labels_free(&got);

	/* a pre-training checkpoint: the empty table */
	struct ckpt_out p = { 0 };
	ckpt_out_add_model(&p, m, &mt);
	ckpt_write(&p, path_of("lm.ckpt"));
	ok(ckpt_open(path_of("lm.ckpt"), &ck, 1, err, sizeof err) == 0 &&
		ckpt_read_labels(&ck, &back, err, sizeof err) == 0 && back.n == 0,
		"a pre-training checkpoint has an empty label table (8 zero bytes)");
	ok(ckpt_find(&ck, CKPT_LAST) == NULL, "and no LAST section");
	ckpt_close(&ck);
	ckpt_text_free(&mt);
	int rc = clf_load(path_of("lm.ckpt"), &b, &got, err, sizeof err);
	ok(rc == EX_DATAERR && strstr(err, "not a classifier"), "clf_load refuses it: no classifier");

	/* damage: two labels with the same tokens; a table cut short */
	l.token[2 * 5 + 1] = l.token[2 * 4 + 1];
	void *sec = ckpt_labels_encode(&l, &size);
	struct ckpt_out d = { 0 };
	ckpt_out_add(&d, CKPT_LABELS, sec, size);
	ckpt_write(&d, path_of("dup.ckpt"));
	ok(ckpt_open(path_of("dup.ckpt"), &ck, 1, err, sizeof err) == 0 &&
		ckpt_read_labels(&ck, &back, err, sizeof err) == EX_DATAERR &&
		strstr(err, "same tokens"), "two labels of the same tokens are refused");
	ckpt_close(&ck);
	struct ckpt_out s = { 0 };
	ckpt_out_add(&s, CKPT_LABELS, sec, size - 8);
	ckpt_write(&s, path_of("short.ckpt"));
	ok(ckpt_open(path_of("short.ckpt"), &ck, 1, err, sizeof err) == 0 &&
		ckpt_read_labels(&ck, &back, err, sizeof err) == EX_DATAERR &&
		strstr(err, "section labels"), "a label table cut short is refused");
	ckpt_close(&ck);
	free(sec);
	free(best);
	ckpt_labels_free(&l);
}

int main(void)
{
	struct model m;
	struct model_config c = model_config_tiny();
	snprintf(dir, sizeof dir, "%s/t-classify.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp %s\n", dir);
		return 1;
	}
	model_set_threads(1);
	model_init(&m, &c, 3);
	test_tokens();
	test_batch();
	test_predict_one_token(&m);
	test_predict_two_tokens(&m);
	test_argmax();
	test_checkpoint(&m);
	model_free(&m);
	const char *names[] = { "clf.ckpt", "lm.ckpt", "dup.ckpt", "short.ckpt" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(path_of(names[i]));
	rmdir(dir);
	return tap_done();
}
