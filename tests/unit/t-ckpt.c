/* t-ckpt.c: unit tests of the checkpoint files (tools/tgpt/ckpt.h,
 * tgpt-ckpt(5)): CRC-32, text sections, a model saved and loaded giving the
 * same parameters, AdamW moments and logits, alignment, unknown sections
 * skipped, and damage refused: cut short, a flipped byte, another version,
 * a tensor laid out otherwise, not a checkpoint, missing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "../../tools/tgpt/ckpt.h"
#include "../../tools/tgpt/model.h"
#include "../tap.h"

static char dir[256];

static const char *path_of(const char *name)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

static void random_tokens(int *tok, int *tgt, int n, int vocab, unsigned seed)
{
	for (int i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		tok[i] = (int)((seed >> 8) % (unsigned)vocab);
		tgt[i] = (int)((seed >> 20) % (unsigned)vocab);
	}
}

/* A tiny model after one AdamW step (so it has moments), B 2 x T 16. */
static void trained_model(struct model *m, int *tok, int *tgt)
{
	struct model_config c = model_config_tiny();
	model_init(m, &c, 7);
	random_tokens(tok, tgt, 32, c.vocab, 3);
	model_zero_grad(m);
	model_forward(m, tok, tgt, 2, 16);
	model_backward(m);
	model_adamw_update(m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1);
}

/* Writes m with a small TRAIN section and an unknown section (type 99). */
static void save(const struct model *m, const char *path, struct ckpt_text *mt)
{
	struct ckpt_out o = { 0 };
	struct ckpt_text tt = { 0 };
	static const char future[] = "a section of a later version";
	ckpt_text_add(&tt, "step", "%d", 1);
	ckpt_text_add(&tt, "lr", "%s", "0.001");
	ckpt_out_add(&o, CKPT_TRAIN, tt.buf, tt.len);
	ckpt_out_add_model(&o, m, mt);
	ckpt_out_add(&o, 99, future, sizeof future);
	ckpt_write(&o, path);
	ckpt_text_free(&tt);
}

static void slurp(const char *path, unsigned char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	*buf = NULL, *len = 0;
	if (!f || fstat(fileno(f), &st) < 0)
		return;
	*len = (size_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	if (fread(*buf, 1, *len, f) != *len)
		*len = 0;
	fclose(f);
}

static void spill(const char *path, const unsigned char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(buf, 1, len, f);
		fclose(f);
	}
}

/* ckpt_open's status and message for a file. */
static int open_status(const char *path, int verify_all, char *err, size_t errlen)
{
	struct ckpt ck;
	int rc = ckpt_open(path, &ck, verify_all, err, errlen);
	if (!rc)
		ckpt_close(&ck);
	return rc;
}

/* ------------------------------------------------------------ tests */

static void test_crc(void)
{
	is_u64(crc32_update(0, "123456789", 9), 0xCBF43926u, "CRC-32 check value of \"123456789\"");
	is_u64(crc32_update(0, "", 0), 0, "CRC-32 of nothing is 0");
	unsigned char big[1000];
	for (int i = 0; i < 1000; i++)
		big[i] = (unsigned char)(i * 7 + 3);
	uint32_t whole = crc32_update(0, big, sizeof big);
	uint32_t parts = crc32_update(crc32_update(crc32_update(0, big, 5), big + 5, 500), big + 505,
		495);
	is_u64(parts, whole, "CRC-32 in pieces equals CRC-32 of the whole");
}

static void test_text(void)
{
	struct ckpt_text t = { 0 };
	char err[256], s[32];
	int64_t v;
	double d;
	ckpt_text_add(&t, "steps", "%d", 20);
	ckpt_text_add(&t, "step", "%d", 7);
	ckpt_text_add(&t, "lr", "%s", "0.0003");
	ckpt_text_add(&t, "preset", "%s", "tiny");
	struct ckpt_section sec = { .type = CKPT_TRAIN, .name = "train", .data = t.buf,
		.size = t.len };
	ok(ckpt_get_i64(&sec, "step", 0, 100, &v, err, sizeof err) == 0 && v == 7,
		"text: a key that is a prefix of another is found on its own");
	ok(ckpt_get_double(&sec, "lr", &d, err, sizeof err) == 0 && d == 0.0003, "text: a double");
	ok(ckpt_get_str(&sec, "preset", s, sizeof s, err, sizeof err) == 0 && !strcmp(s, "tiny"),
		"text: a string");
	ok(ckpt_get_i64(&sec, "steps", 0, 10, &v, err, sizeof err) < 0 && strstr(err, "steps"),
		"text: a value out of range is refused, naming the key");
	ok(ckpt_get_i64(&sec, "nosuch", 0, 10, &v, err, sizeof err) < 0 && strstr(err, "nosuch"),
		"text: a missing key is reported");
	ckpt_text_free(&t);

	is_str(ckpt_real(s, sizeof s, 0.9, 0), "0.9", "ckpt_real: shortest form of a double");
	is_str(ckpt_real(s, sizeof s, 0.02f, 1), "0.02", "ckpt_real: shortest form of a float");
	ok(strtod(ckpt_real(s, sizeof s, 1.0 / 3, 0), NULL) == 1.0 / 3, "ckpt_real: reads back exactly");
}

static void test_round_trip(void)
{
	struct model a, b;
	struct ckpt_text mt = { 0 };
	int tok[32], tgt[32];
	char err[512];
	trained_model(&a, tok, tgt);
	const char *path = path_of("a.ckpt");
	save(&a, path, &mt);
	ckpt_text_free(&mt);

	struct ckpt ck;
	int rc = ckpt_open(path, &ck, 1, err, sizeof err);
	is_int(rc, 0, "a checkpoint just written opens, every CRC right");
	if (rc) {
		printf("# %s\n", err);
		model_free(&a);
		return;
	}
	int aligned = 1;
	for (int i = 0; i < ck.n; i++)
		aligned &= ck.sec[i].offset % CKPT_ALIGN == 0;
	ok(aligned && ck.map_len % CKPT_ALIGN == 0, "every section and the file end 64-byte aligned");
	is_int(ck.n, 7, "train, model, labels, params, adam_m, adam_v and the unknown section");
	const struct ckpt_section *p = ckpt_find(&ck, CKPT_PARAMS);
	ok(p && (uintptr_t)p->data % CKPT_ALIGN == 0, "the mapped parameters are 64-byte aligned");
	ok(ckpt_find(&ck, 99) != NULL, "an unknown section type is listed and skipped");
	is_int(ckpt_load_model(&ck, &b, 1, err, sizeof err), 0, "the model loads");
	ckpt_close(&ck);
	ok(model_config_diff(&a.c, &b.c) == NULL, "same config");
	is_u64(b.n_params, a.n_params, "same parameter count");
	is_mem(b.params_mem, a.params_mem, a.n_params * sizeof(float), "same parameters, bit for bit");
	ok(b.adam_m && b.adam_v, "AdamW moments loaded");
	if (b.adam_m && b.adam_v) {
		is_mem(b.adam_m, a.adam_m, a.n_params * sizeof(float), "same first moments");
		is_mem(b.adam_v, a.adam_v, a.n_params * sizeof(float), "same second moments");
	}
	int V = a.c.vocab;
	model_forward(&a, tok, NULL, 2, 16);
	model_forward(&b, tok, NULL, 2, 16);
	is_mem(model_logits(&b), model_logits(&a), (size_t)32 * V * sizeof(float),
		"identical logits on the same input");
	model_free(&a);
	model_free(&b);

	struct stat st;
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	ok(stat(tmp, &st) < 0 && errno == ENOENT, "no temporary file left behind");
}

static void test_fresh_model(void)
{
	struct model a, b;
	struct ckpt_text mt = { 0 };
	struct model_config c = model_config_tiny();
	struct ckpt_out o = { 0 };
	char err[512];
	model_init(&a, &c, 1);
	ckpt_out_add_model(&o, &a, &mt);
	ckpt_write(&o, path_of("fresh.ckpt"));
	ckpt_text_free(&mt);
	struct ckpt ck;
	ok(ckpt_open(path_of("fresh.ckpt"), &ck, 1, err, sizeof err) == 0,
		"a model without optimizer state saves and opens");
	ok(ckpt_find(&ck, CKPT_ADAM_M) == NULL, "... without AdamW sections");
	ok(ckpt_load_model(&ck, &b, 1, err, sizeof err) == 0 && b.adam_m == NULL,
		"... and loads without moments");
	is_mem(b.params_mem, a.params_mem, a.n_params * sizeof(float), "... its parameters intact");
	ckpt_close(&ck);
	model_free(&a);
	model_free(&b);
}

static void test_damage(void)
{
	unsigned char *buf;
	size_t len;
	char err[512];
	slurp(path_of("a.ckpt"), &buf, &len);
	if (!buf || len < 4096) {
		ok(0, "the round-trip checkpoint is there to damage");
		free(buf);
		return;
	}
	spill(path_of("cut.ckpt"), buf, len - 100);
	is_int(open_status(path_of("cut.ckpt"), 1, err, sizeof err), EX_DATAERR,
		"a checkpoint cut short is refused");
	ok(strstr(err, "cut short") && strstr(err, "cut.ckpt"), "... saying so and naming the file");

	spill(path_of("head.ckpt"), buf, 40);
	is_int(open_status(path_of("head.ckpt"), 1, err, sizeof err), EX_DATAERR,
		"a checkpoint cut inside its header is refused");

	struct ckpt ck;
	ckpt_open(path_of("a.ckpt"), &ck, 0, err, sizeof err);
	const struct ckpt_section *p = ckpt_find(&ck, CKPT_PARAMS);
	size_t in_params = p ? (size_t)(p->offset + p->size / 2) : len / 2;
	ckpt_close(&ck);
	buf[in_params] ^= 0x10;
	spill(path_of("flip.ckpt"), buf, len);
	buf[in_params] ^= 0x10;
	is_int(open_status(path_of("flip.ckpt"), 1, err, sizeof err), EX_DATAERR,
		"a flipped bit in the parameters is refused");
	ok(strstr(err, "params") && strstr(err, "damaged"), "... naming the damaged section");
	struct model m;
	ok(ckpt_open(path_of("flip.ckpt"), &ck, 0, err, sizeof err) == 0 &&
		ckpt_load_model(&ck, &m, 0, err, sizeof err) == EX_DATAERR,
		"unverified at open, it is still refused when loaded");
	ckpt_close(&ck);

	buf[200] ^= 1;	/* in the table of contents */
	spill(path_of("toc.ckpt"), buf, len);
	buf[200] ^= 1;
	is_int(open_status(path_of("toc.ckpt"), 0, err, sizeof err), EX_DATAERR,
		"a flipped bit in the section table is refused");

	buf[8] = 2;	/* version */
	spill(path_of("v2.ckpt"), buf, len);
	buf[8] = 1;
	is_int(open_status(path_of("v2.ckpt"), 1, err, sizeof err), EX_DATAERR,
		"another format version is refused");
	ok(strstr(err, "version 2") != NULL, "... naming it");

	memcpy(buf, "TGPTSHRD", 8);
	spill(path_of("shard.ckpt"), buf, len);
	is_int(open_status(path_of("shard.ckpt"), 1, err, sizeof err), EX_DATAERR,
		"a file without the magic is refused");
	ok(strstr(err, "not a tgpt checkpoint") != NULL, "... as not a checkpoint");
	free(buf);

	is_int(open_status(path_of("nosuch.ckpt"), 1, err, sizeof err), EX_NOINPUT,
		"a missing checkpoint is EX_NOINPUT");
}

/* A MODEL section whose tensor table is not this build's layout (as from a
 * build that ordered the tensors otherwise) is refused, not misread. */
static void test_layout(void)
{
	struct model a, b;
	struct ckpt_text mt = { 0 };
	struct ckpt_out o = { 0 };
	struct model_config c = model_config_tiny();
	char err[512];
	model_init(&a, &c, 1);
	ckpt_out_add_model(&o, &a, &mt);
	char *t = strstr(mt.buf, "tensor.w_o ");
	if (t)
		t[strlen("tensor.w_o ")] = '9';
	ckpt_write(&o, path_of("layout.ckpt"));
	struct ckpt ck;
	ok(t && ckpt_open(path_of("layout.ckpt"), &ck, 1, err, sizeof err) == 0,
		"a checkpoint with another tensor layout opens");
	ok(ckpt_load_model(&ck, &b, 0, err, sizeof err) == EX_DATAERR && strstr(err, "w_o"),
		"but its parameters are refused, naming the tensor");
	ckpt_close(&ck);
	ckpt_text_free(&mt);
	model_free(&a);

	struct model_config d = c;
	d.n_layer = 3;
	is_str(model_config_diff(&c, &d), "n_layer", "model_config_diff names the field");
	d = c;
	d.ln_eps = 2e-5f;
	is_str(model_config_diff(&c, &d), "ln_eps", "... floats too");
	ok(model_config_diff(&c, &c) == NULL, "... and none for the same config");
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/t-ckpt.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp %s\n", dir);
		return 1;
	}
	model_set_threads(1);
	test_crc();
	test_text();
	test_round_trip();
	test_fresh_model();
	test_damage();
	test_layout();
	const char *names[] = { "a.ckpt", "cut.ckpt", "head.ckpt", "flip.ckpt", "toc.ckpt",
		"v2.ckpt", "shard.ckpt", "fresh.ckpt", "layout.ckpt" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(path_of(names[i]));
	rmdir(dir);
	return tap_done();
}
