/* ckpt.c: the checkpoint writer and reader of tgpt-ckpt(5): CRC-32, the
 * "KEY VALUE" text sections, the model config and parameters in and out,
 * the label table of a classifier.
 * The reader maps the file and checks its structure and checksums before
 * anything is taken from it. */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "cli.h"
#include "mapfile.h"
#include "record.h"

/* ------------------------------------------------------------ CRC-32 */

/* Slicing by 8: eight bytes per step through eight tables (about 1.5 GB/s,
 * against 0.3 for the byte-wise loop), so checking a paper-size checkpoint
 * costs about a second. */
static uint32_t crc_table[8][256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t n)
{
	if (!crc_table[0][1])
		crc_init();
	const uint8_t *p = data;
	crc = ~crc;
	for (; n >= 8; n -= 8, p += 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			(uint32_t)p[3] << 24);
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
			crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
			crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
	}
	while (n--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ------------------------------------------------------------ bytes */

static uint64_t align_up(uint64_t x)
{
	return (x + CKPT_ALIGN - 1) / CKPT_ALIGN * CKPT_ALIGN;
}


/* Byte offsets of the header fields (tgpt-ckpt(5), HEADER) and of the
 * fields of a table entry. */
enum {
	H_MAGIC = 0, H_VERSION = 8, H_HEADER_SIZE = 12, H_N_SECTIONS = 16, H_ENTRY_SIZE = 20,
	H_TOC_OFF = 24, H_FILE_SIZE = 32, H_CRC = 40,
	E_TYPE = 0, E_FLAGS = 4, E_OFFSET = 8, E_SIZE = 16, E_CRC = 24, E_NAME = 32,
};

static const char *type_name(uint32_t type)
{
	static const char *names[] = { NULL, "model", "train", "labels", "params", "adam_m",
		"adam_v", "last" };
	if (type < sizeof names / sizeof names[0] && names[type])
		return names[type];
	return "unknown";
}

/* ------------------------------------------------------------ text sections */

void ckpt_text_add(struct ckpt_text *t, const char *key, const char *fmt, ...)
{
	char value[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(value, sizeof value, fmt, ap);
	va_end(ap);
	size_t need = t->len + strlen(key) + strlen(value) + 3;
	grow((void **)&t->buf, &t->cap, need, 1);
	t->len += (size_t)sprintf(t->buf + t->len, "%s %s\n", key, value);
}

void ckpt_text_free(struct ckpt_text *t)
{
	free(t->buf);
	memset(t, 0, sizeof *t);
}

const char *ckpt_real(char *out, size_t outlen, double v, int as_float)
{
	for (int digits = 6; digits <= 17; digits++) {
		snprintf(out, outlen, "%.*g", digits, v);
		double back = strtod(out, NULL);
		if (as_float ? (float)back == (float)v : back == v)
			break;
	}
	return out;
}

const char *ckpt_text_get(const struct ckpt_section *s, const char *key, size_t *len)
{
	const char *p = s->data, *end = p + s->size;
	size_t klen = strlen(key);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if ((size_t)(eol - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == ' ') {
			*len = (size_t)(eol - p - klen - 1);
			return p + klen + 1;
		}
		p = eol + 1;
	}
	return NULL;
}

/* The value of KEY as a NUL-terminated string in buf; -1 when missing. */
static int text_value(const struct ckpt_section *s, const char *key, char *buf, size_t buflen,
	char *err, size_t errlen)
{
	size_t len;
	const char *v = ckpt_text_get(s, key, &len);
	if (!v) {
		snprintf(err, errlen, "section %s lacks key %s", s->name, key);
		return -1;
	}
	if (len >= buflen) {
		snprintf(err, errlen, "section %s: value of %s too long", s->name, key);
		return -1;
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	return 0;
}

int ckpt_get_i64(const struct ckpt_section *s, const char *key, int64_t min, int64_t max,
	int64_t *out, char *err, size_t errlen)
{
	char buf[64], *end;
	if (text_value(s, key, buf, sizeof buf, err, errlen) < 0)
		return -1;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (!*buf || *end || errno || v < min || v > max) {
		snprintf(err, errlen, "section %s: %s '%s' is not a whole number from %lld to %lld",
			s->name, key, buf, (long long)min, (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int ckpt_get_u64(const struct ckpt_section *s, const char *key, uint64_t *out, char *err,
	size_t errlen)
{
	char buf[64];
	if (text_value(s, key, buf, sizeof buf, err, errlen) < 0)
		return -1;
	if (parse_u64(buf, 0, UINT64_MAX, out) < 0) {
		snprintf(err, errlen, "section %s: %s '%s' is not a whole number", s->name, key, buf);
		return -1;
	}
	return 0;
}

int ckpt_get_double(const struct ckpt_section *s, const char *key, double *out, char *err,
	size_t errlen)
{
	char buf[64];
	if (text_value(s, key, buf, sizeof buf, err, errlen) < 0)
		return -1;
	if (parse_double(buf, -HUGE_VAL, HUGE_VAL, out) < 0) {
		snprintf(err, errlen, "section %s: %s '%s' is not a number", s->name, key, buf);
		return -1;
	}
	return 0;
}

int ckpt_get_str(const struct ckpt_section *s, const char *key, char *out, size_t outlen,
	char *err, size_t errlen)
{
	return text_value(s, key, out, outlen, err, errlen);
}

/* ------------------------------------------------------------ the model config */

enum field_kind { F_INT, F_FLOAT, F_POS };

/* Every field of struct model_config under its MODEL section key. */
static const struct config_field {
	const char *key;
	size_t off;
	enum field_kind kind;
} config_fields[] = {
#define I(f) { #f, offsetof(struct model_config, f), F_INT }
#define F(f) { #f, offsetof(struct model_config, f), F_FLOAT }
	I(vocab), I(pad_id), I(max_ctx), I(emb_dim), I(d_model), I(n_layer), I(n_head),
	I(n_local), I(d_head), I(window), I(chunk), I(d_ff), I(ff_glu),
	{ "pos", offsetof(struct model_config, pos), F_POS },
	I(axial_w), I(token_shift), I(reversible), I(qkv_bias), I(head_bias),
	F(init_std), F(emb_std), F(pos_std), F(ln_eps), F(lin_eps),
#undef I
#undef F
};
#define N_CONFIG_FIELDS (sizeof config_fields / sizeof config_fields[0])

static int *int_field(struct model_config *c, const struct config_field *f)
{
	return (int *)((char *)c + f->off);
}

static float *float_field(struct model_config *c, const struct config_field *f)
{
	return (float *)((char *)c + f->off);
}

void model_config_value(const struct model_config *c, const char *key, char *out, size_t outlen)
{
	struct model_config copy = *c;
	snprintf(out, outlen, "?");
	for (size_t i = 0; i < N_CONFIG_FIELDS; i++) {
		const struct config_field *f = &config_fields[i];
		if (strcmp(f->key, key) != 0)
			continue;
		if (f->kind == F_FLOAT)
			ckpt_real(out, outlen, *float_field(&copy, f), 1);
		else if (f->kind == F_POS)
			snprintf(out, outlen, "%s", *int_field(&copy, f) == POS_LEARNED ? "learned" : "axial");
		else
			snprintf(out, outlen, "%d", *int_field(&copy, f));
	}
}

const char *model_config_diff(const struct model_config *a, const struct model_config *b)
{
	struct model_config x = *a, y = *b;
	for (size_t i = 0; i < N_CONFIG_FIELDS; i++) {
		const struct config_field *f = &config_fields[i];
		if (f->kind == F_FLOAT ? *float_field(&x, f) != *float_field(&y, f) :
			*int_field(&x, f) != *int_field(&y, f))
			return f->key;
	}
	return NULL;
}

/* The MODEL section; "conditional 1" only for a class-conditional model,
 * so every other checkpoint is what builds before the key wrote. */
static void model_text(const struct model *m, int conditional, struct ckpt_text *t)
{
	char v[64];
	t->len = 0;
	ckpt_text_add(t, "tokenizer", "%s", TOKENIZER_NAME);
	ckpt_text_add(t, "tokenizer_version", "%d", TOKENIZER_VERSION);
	for (size_t i = 0; i < N_CONFIG_FIELDS; i++) {
		model_config_value(&m->c, config_fields[i].key, v, sizeof v);
		ckpt_text_add(t, config_fields[i].key, "%s", v);
	}
	ckpt_text_add(t, "n_params", "%zu", m->n_params);
	for (int i = 0; i < P_COUNT; i++) {
		char key[64];
		snprintf(key, sizeof key, "tensor.%s", m->tensors[i].name);
		ckpt_text_add(t, key, "%zu %zu", m->tensors[i].offset, m->tensors[i].count);
	}
	if (conditional)
		ckpt_text_add(t, "conditional", "1");
}

int ckpt_model_config(struct ckpt *ck, struct model_config *c, char *err, size_t errlen)
{
	const struct ckpt_section *s;
	char msg[256], tok[64];
	int rc = ckpt_verify(ck, CKPT_MODEL, &s, err, errlen);
	if (rc)
		return rc;
	int64_t v;
	memset(c, 0, sizeof *c);
	if (ckpt_get_str(s, "tokenizer", tok, sizeof tok, msg, sizeof msg) < 0 ||
		ckpt_get_i64(s, "tokenizer_version", 0, INT32_MAX, &v, msg, sizeof msg) < 0)
		return data_error(err, errlen, ck->path, "%s", msg);
	if (strcmp(tok, TOKENIZER_NAME) != 0 || v != TOKENIZER_VERSION)
		return data_error(err, errlen, ck->path, "a model of tokenizer %s %" PRId64 "; this build "
			"knows %s %d", tok, v, TOKENIZER_NAME, TOKENIZER_VERSION);
	for (size_t i = 0; i < N_CONFIG_FIELDS; i++) {
		const struct config_field *f = &config_fields[i];
		if (f->kind == F_FLOAT) {
			double d;
			if (ckpt_get_double(s, f->key, &d, msg, sizeof msg) < 0)
				return data_error(err, errlen, ck->path, "%s", msg);
			*float_field(c, f) = (float)d;
		} else if (f->kind == F_POS) {
			char pos[16];
			if (ckpt_get_str(s, f->key, pos, sizeof pos, msg, sizeof msg) < 0)
				return data_error(err, errlen, ck->path, "%s", msg);
			if (strcmp(pos, "axial") != 0 && strcmp(pos, "learned") != 0)
				return data_error(err, errlen, ck->path, "section model: pos '%s' is neither "
					"axial nor learned", pos);
			*int_field(c, f) = strcmp(pos, "learned") == 0 ? POS_LEARNED : POS_AXIAL;
		} else {
			if (ckpt_get_i64(s, f->key, INT32_MIN, INT32_MAX, &v, msg, sizeof msg) < 0)
				return data_error(err, errlen, ck->path, "%s", msg);
			*int_field(c, f) = (int)v;
		}
	}
	const char *why = model_config_check(c);
	if (why)
		return data_error(err, errlen, ck->path, "section model: an unusable config: %s", why);
	return 0;
}

/* The MODEL section's n_params and tensor table against this build's layout,
 * so that parameters written by a build that laid them out otherwise are
 * never read as the wrong tensors. */
static int check_layout(const struct ckpt *ck, const struct ckpt_section *s,
	const struct model *m, char *err, size_t errlen)
{
	char msg[256], key[64], want[64], got[64];
	uint64_t n;
	if (ckpt_get_u64(s, "n_params", &n, msg, sizeof msg) < 0)
		return data_error(err, errlen, ck->path, "%s", msg);
	if (n != m->n_params)
		return data_error(err, errlen, ck->path, "%" PRIu64 " parameters; its config makes %zu in "
			"this build", n, m->n_params);
	for (int i = 0; i < P_COUNT; i++) {
		snprintf(key, sizeof key, "tensor.%s", m->tensors[i].name);
		snprintf(want, sizeof want, "%zu %zu", m->tensors[i].offset, m->tensors[i].count);
		if (ckpt_get_str(s, key, got, sizeof got, msg, sizeof msg) < 0)
			return data_error(err, errlen, ck->path, "%s", msg);
		if (strcmp(got, want) != 0)
			return data_error(err, errlen, ck->path, "tensor %s at offset and count %s; this build "
				"lays it out at %s", m->tensors[i].name, got, want);
	}
	return 0;
}

int ckpt_load_floats(struct ckpt *ck, uint32_t type, size_t n, float **dst, char *err,
	size_t errlen)
{
	const struct ckpt_section *s;
	int rc = ckpt_verify(ck, type, &s, err, errlen);
	if (rc)
		return rc;
	if (s->size != (uint64_t)n * sizeof(float))
		return data_error(err, errlen, ck->path, "section %s holds %" PRIu64 " bytes, not %zu "
			"float32", s->name, s->size, n);
	if (!*dst)
		*dst = xmalloc(n * sizeof(float));
	memcpy(*dst, s->data, n * sizeof(float));
	return 0;
}

int ckpt_load_model(struct ckpt *ck, struct model *m, int with_adam, char *err,
	size_t errlen)
{
	struct model_config c;
	int rc = ckpt_model_config(ck, &c, err, errlen);
	if (rc)
		return rc;
	if (model_init(m, &c, 0) < 0)
		return data_error(err, errlen, ck->path, "an unusable config");
	const struct ckpt_section *s = ckpt_find(ck, CKPT_MODEL);
	if ((rc = check_layout(ck, s, m, err, errlen)) ||
		(rc = ckpt_load_floats(ck, CKPT_PARAMS, m->n_params, &m->params_mem, err, errlen)))
		goto bad;
	if (with_adam && ckpt_find(ck, CKPT_ADAM_M) &&
		((rc = ckpt_load_floats(ck, CKPT_ADAM_M, m->n_params, &m->adam_m, err, errlen)) ||
		(rc = ckpt_load_floats(ck, CKPT_ADAM_V, m->n_params, &m->adam_v, err, errlen))))
		goto bad;
	return 0;
bad:
	model_free(m);
	return rc;
}

/* ------------------------------------------------------------ writer */

void ckpt_out_add(struct ckpt_out *o, uint32_t type, const void *data, uint64_t size)
{
	if (o->n == CKPT_MAX_SECTIONS)
		errx(EX_SOFTWARE, "ckpt_out_add: more than %d sections", CKPT_MAX_SECTIONS);
	struct ckpt_section *s = &o->sec[o->n++];
	memset(s, 0, sizeof *s);
	s->type = type;
	snprintf(s->name, sizeof s->name, "%s", type_name(type));
	s->data = data;
	s->size = size;
}

void ckpt_out_add_model(struct ckpt_out *o, const struct model *m, struct ckpt_text *text)
{
	ckpt_out_add_model_with(o, m, text, NULL, NULL);
}

void ckpt_out_add_model_with(struct ckpt_out *o, const struct model *m, struct ckpt_text *text,
	const struct ckpt_labels *labels, const float *params)
{
	/* The empty label table: n_labels 0, then one string offset, 0. */
	static const uint8_t no_labels[8];
	model_text(m, labels && labels->conditional, text);
	ckpt_out_add(o, CKPT_MODEL, text->buf, text->len);
	if (labels) {
		uint64_t size;
		free(o->labels);
		o->labels = ckpt_labels_encode(labels, &size);
		ckpt_out_add(o, CKPT_LABELS, o->labels, size);
	} else {
		ckpt_out_add(o, CKPT_LABELS, no_labels, sizeof no_labels);
	}
	size_t bytes = m->n_params * sizeof(float);
	ckpt_out_add(o, CKPT_PARAMS, params ? params : m->params_mem, bytes);
	if (m->adam_m && m->adam_v) {
		ckpt_out_add(o, CKPT_ADAM_M, m->adam_m, bytes);
		ckpt_out_add(o, CKPT_ADAM_V, m->adam_v, bytes);
	}
	if (params)
		ckpt_out_add(o, CKPT_LAST, m->params_mem, bytes);
}

void ckpt_out_free(struct ckpt_out *o)
{
	free(o->labels);
	o->labels = NULL;
}

/* ------------------------------------------------------------ label table */

/* The layout of the LABELS section (tgpt-ckpt(5)): the shard label table
 * (n, n + 1 string offsets, the strings), which is all of it without labels;
 * then, from the next multiple of 4, k, window and the n * k uint16 tokens;
 * then, from the next multiple of 8, the n uint64 counts. */
struct labels_layout {
	uint64_t text, tail, tokens, counts, size;
};

static struct labels_layout labels_layout(uint64_t n, uint64_t text_len, uint64_t k)
{
	struct labels_layout y;
	y.text = 4 + 4 * (n + 1);
	y.tail = (y.text + text_len + 3) / 4 * 4;
	y.tokens = y.tail + 8;
	y.counts = (y.tokens + 2 * n * k + 7) / 8 * 8;
	y.size = n ? y.counts + 8 * n : y.text + text_len;
	return y;
}

void *ckpt_labels_encode(const struct ckpt_labels *l, uint64_t *size)
{
	uint64_t text_len = 0;
	for (uint32_t i = 0; i < l->n; i++)
		text_len += strlen(l->name[i]) + 1;
	struct labels_layout y = labels_layout(l->n, text_len, l->k);
	uint8_t *p = xcalloc((size_t)y.size, 1);
	put_le32(p, l->n);
	uint64_t at = 0;
	for (uint32_t i = 0; i < l->n; i++) {
		size_t len = strlen(l->name[i]) + 1;
		put_le32(p + 4 + 4 * (uint64_t)i, (uint32_t)at);
		memcpy(p + y.text + at, l->name[i], len);
		at += len;
	}
	put_le32(p + 4 + 4 * (uint64_t)l->n, (uint32_t)at);
	if (l->n) {
		put_le32(p + y.tail, l->k);
		put_le32(p + y.tail + 4, l->window);
		for (uint64_t i = 0; i < (uint64_t)l->n * l->k; i++) {
			p[y.tokens + 2 * i] = (uint8_t)l->token[i];
			p[y.tokens + 2 * i + 1] = (uint8_t)(l->token[i] >> 8);
		}
		for (uint32_t i = 0; i < l->n; i++)
			put_le64(p + y.counts + 8 * (uint64_t)i, l->count[i]);
	}
	*size = y.size;
	return p;
}

void ckpt_labels_free(struct ckpt_labels *l)
{
	for (uint32_t i = 0; l->name && i < l->n; i++)
		free(l->name[i]);
	free(l->name);
	free(l->token);
	free(l->count);
	memset(l, 0, sizeof *l);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* No two labels predicted as the same tokens. */
static int labels_distinct(const struct ckpt_labels *l)
{
	uint32_t *key = xcalloc(l->n, sizeof *key);
	for (uint32_t i = 0; i < l->n; i++)
		key[i] = l->k == 1 ? l->token[i] : (uint32_t)l->token[2 * i] << 16 | l->token[2 * i + 1];
	qsort(key, l->n, sizeof *key, cmp_u32);
	int ok = 1;
	for (uint32_t i = 1; ok && i < l->n; i++)
		ok = key[i] != key[i - 1];
	free(key);
	return ok;
}

/* The MODEL section's "conditional" key into *out: 0 when the key or the
 * section is absent (checkpoints from before the key, bare label tables). */
static int read_conditional(struct ckpt *ck, uint32_t *out, char *err, size_t errlen)
{
	const struct ckpt_section *s;
	size_t len;
	int64_t v = 0;
	char msg[256];
	*out = 0;
	if (!ckpt_find(ck, CKPT_MODEL))
		return 0;
	int rc = ckpt_verify(ck, CKPT_MODEL, &s, err, errlen);
	if (rc)
		return rc;
	if (ckpt_text_get(s, "conditional", &len) &&
		ckpt_get_i64(s, "conditional", 0, 1, &v, msg, sizeof msg) < 0)
		return data_error(err, errlen, ck->path, "%s", msg);
	*out = (uint32_t)v;
	return 0;
}

int ckpt_read_labels(struct ckpt *ck, struct ckpt_labels *l, char *err, size_t errlen)
{
	const struct ckpt_section *s;
	uint32_t conditional;
	memset(l, 0, sizeof *l);
	int rc = read_conditional(ck, &conditional, err, errlen);
	if (rc)
		return rc;
	if (!ckpt_find(ck, CKPT_LABELS)) {
		if (conditional)
			return data_error(err, errlen, ck->path, "a class-conditional model without a "
				"labels section");
		return 0;
	}
	rc = ckpt_verify(ck, CKPT_LABELS, &s, err, errlen);
	if (rc)
		return rc;
	const uint8_t *p = s->data;
	uint64_t size = s->size;
	if (size < 8)
		return data_error(err, errlen, ck->path, "section labels: %" PRIu64 " bytes, too short", size);
	uint32_t n = get_le32(p);
	if (n > CKPT_MAX_LABELS || 4 + 4 * ((uint64_t)n + 1) > size)
		return data_error(err, errlen, ck->path, "section labels: %u labels do not fit", n);
	uint64_t text_len = get_le32(p + 4 + 4 * (uint64_t)n);
	uint32_t k = 0;
	struct labels_layout y = labels_layout(n, text_len, 1);
	if (n && y.tail + 8 <= size) {
		k = get_le32(p + y.tail);
		y = labels_layout(n, text_len, k);
	}
	if (get_le32(p + 4) != 0 || (n && k != 1 && k != 2) || y.size != size)
		return data_error(err, errlen, ck->path, "section labels: %" PRIu64 " bytes do not hold "
			"%u labels of %" PRIu64 " bytes of text and %u tokens each", size, n, text_len, k);
	const char *text = (const char *)p + y.text;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t a = get_le32(p + 4 + 4 * (uint64_t)i), b = get_le32(p + 8 + 4 * (uint64_t)i);
		if (b <= a || b > text_len || text[b - 1] != '\0' || memchr(text + a, 0, b - a - 1))
			return data_error(err, errlen, ck->path, "section labels: label %u is not one "
				"NUL-terminated string", i);
	}
	if (n == 0) {
		if (conditional)
			return data_error(err, errlen, ck->path, "a class-conditional model with an empty "
				"label table");
		return 0;
	}
	l->n = n;
	l->conditional = conditional;
	l->k = k;
	l->window = get_le32(p + y.tail + 4);
	l->name = xcalloc(n, sizeof *l->name);
	l->token = xcalloc((size_t)n * k, sizeof *l->token);
	l->count = xcalloc(n, sizeof *l->count);
	for (uint32_t i = 0; i < n; i++) {
		l->name[i] = xstrdup(text + get_le32(p + 4 + 4 * (uint64_t)i));
		l->count[i] = get_le64(p + y.counts + 8 * (uint64_t)i);
	}
	for (uint64_t i = 0; i < (uint64_t)n * k; i++)
		l->token[i] = (uint16_t)(p[y.tokens + 2 * i] | p[y.tokens + 2 * i + 1] << 8);
	const char *why = !conditional && l->window < 1 ? "a window of 0 tokens" :
		conditional && l->window != 0 ? "a window in a class-conditional model's table" :
		!labels_distinct(l) ? "two labels have the same tokens" : NULL;
	if (why) {
		ckpt_labels_free(l);
		return data_error(err, errlen, ck->path, "section labels: %s", why);
	}
	return 0;
}

/* A write that fails removes the temporary file (the old checkpoint stays)
 * and exits. */
static void write_bytes(struct atomic_file *af, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, af->f) != n) {
		int e = errno;
		atomic_abort(af);
		errno = e;
		err(EX_IOERR, "checkpoint not written");
	}
}

static void write_zeros(struct atomic_file *af, uint64_t n)
{
	static const uint8_t zeros[CKPT_ALIGN];
	while (n > 0) {
		size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
		write_bytes(af, zeros, k);
		n -= k;
	}
}

/* The rename is only durable once the directory is on disk too. */
static void sync_dir_of(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = '\0';	/* "/x" -> "/" */
	int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

void ckpt_write(const struct ckpt_out *o, const char *path)
{
	struct ckpt_section sec[CKPT_MAX_SECTIONS];
	uint8_t head[CKPT_HEADER_SIZE] = { 0 }, toc[CKPT_MAX_SECTIONS * CKPT_ENTRY_SIZE] = { 0 };
	uint64_t toc_len = (uint64_t)o->n * CKPT_ENTRY_SIZE, at = CKPT_HEADER_SIZE + toc_len;
	for (int i = 0; i < o->n; i++) {
		sec[i] = o->sec[i];
		sec[i].offset = at = align_up(at);
		sec[i].crc = crc32_update(0, sec[i].data, sec[i].size);
		at += sec[i].size;
		uint8_t *e = toc + (size_t)i * CKPT_ENTRY_SIZE;
		put_le32(e + E_TYPE, sec[i].type);
		put_le64(e + E_OFFSET, sec[i].offset);
		put_le64(e + E_SIZE, sec[i].size);
		put_le32(e + E_CRC, sec[i].crc);
		memcpy(e + E_NAME, sec[i].name, strlen(sec[i].name));
	}
	uint64_t file_size = align_up(at);
	memcpy(head + H_MAGIC, CKPT_MAGIC, CKPT_MAGIC_LEN);
	put_le32(head + H_VERSION, CKPT_VERSION);
	put_le32(head + H_HEADER_SIZE, CKPT_HEADER_SIZE);
	put_le32(head + H_N_SECTIONS, (uint32_t)o->n);
	put_le32(head + H_ENTRY_SIZE, CKPT_ENTRY_SIZE);
	put_le64(head + H_TOC_OFF, CKPT_HEADER_SIZE);
	put_le64(head + H_FILE_SIZE, file_size);
	put_le32(head + H_CRC, crc32_update(crc32_update(0, head, sizeof head), toc, toc_len));

	struct atomic_file af;
	atomic_open(&af, path);
	write_bytes(&af, head, sizeof head);
	write_bytes(&af, toc, toc_len);
	at = CKPT_HEADER_SIZE + toc_len;
	for (int i = 0; i < o->n; i++) {
		write_zeros(&af, sec[i].offset - at);
		write_bytes(&af, sec[i].data, sec[i].size);
		at = sec[i].offset + sec[i].size;
	}
	write_zeros(&af, file_size - at);
	atomic_commit(&af);
	sync_dir_of(path);
}

/* ------------------------------------------------------------ reader */

/* The header and table of contents, once the file is mapped. */
static int read_toc(struct ckpt *ck, char *err, size_t errlen)
{
	const uint8_t *h = ck->map;
	const char *path = ck->path;
	uint64_t size = ck->map_len;
	ck->version = get_le32(h + H_VERSION);
	if (ck->version != CKPT_VERSION)
		return data_error(err, errlen, path, "checkpoint format version %u; this build reads "
			"version %d", ck->version, CKPT_VERSION);
	uint32_t hsize = get_le32(h + H_HEADER_SIZE), n = get_le32(h + H_N_SECTIONS);
	uint32_t esize = get_le32(h + H_ENTRY_SIZE);
	uint64_t toc_off = get_le64(h + H_TOC_OFF), file_size = get_le64(h + H_FILE_SIZE);
	if (file_size != size)
		return data_error(err, errlen, path, "%s: %" PRIu64 " bytes, the header says %" PRIu64,
			size < file_size ? "cut short" : "longer than written", size, file_size);
	if (hsize != CKPT_HEADER_SIZE || esize != CKPT_ENTRY_SIZE || n > CKPT_MAX_SECTIONS ||
		toc_off != CKPT_HEADER_SIZE || toc_off + (uint64_t)n * esize > size)
		return data_error(err, errlen, path, "damaged header (header size %u, %u sections of %u "
			"bytes at %" PRIu64 ")", hsize, n, esize, toc_off);
	uint8_t head[CKPT_HEADER_SIZE];
	memcpy(head, h, sizeof head);
	put_le32(head + H_CRC, 0);
	uint32_t crc = crc32_update(crc32_update(0, head, sizeof head), h + toc_off,
		(size_t)n * esize);
	if (crc != get_le32(h + H_CRC))
		return data_error(err, errlen, path, "damaged header or section table (CRC-32 %08x, "
			"stored %08x)", crc, get_le32(h + H_CRC));
	ck->n = (int)n;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = h + toc_off + (size_t)i * esize;
		struct ckpt_section *s = &ck->sec[i];
		s->type = get_le32(e + E_TYPE);
		memcpy(s->name, e + E_NAME, CKPT_NAME_LEN);
		s->name[CKPT_NAME_LEN] = '\0';
		s->offset = get_le64(e + E_OFFSET);
		s->size = get_le64(e + E_SIZE);
		s->crc = get_le32(e + E_CRC);
		if (s->offset % CKPT_ALIGN || s->offset < toc_off + (uint64_t)n * esize ||
			s->offset > size || s->size > size - s->offset)
			return data_error(err, errlen, path, "section %s (%" PRIu64 " bytes at %" PRIu64 ") "
				"is unaligned or outside the file", s->name, s->size, s->offset);
		for (uint32_t j = 0; j < i; j++)
			if (ck->sec[j].type == s->type)
				return data_error(err, errlen, path, "two sections of type %u", s->type);
		s->data = ck->map + s->offset;
	}
	return 0;
}

static int check_crc(const struct ckpt *ck, struct ckpt_section *s, char *err, size_t errlen)
{
	if (s->verified)
		return 0;
	uint32_t crc = crc32_update(0, s->data, s->size);
	if (crc != s->crc)
		return data_error(err, errlen, ck->path, "section %s is damaged (CRC-32 %08x, stored %08x)",
			s->name, crc, s->crc);
	s->verified = 1;
	return 0;
}

int ckpt_open(const char *path, struct ckpt *ck, int verify_all, char *err, size_t errlen)
{
	memset(ck, 0, sizeof *ck);
	int rc = map_file(path, "checkpoint", CKPT_MAGIC, CKPT_MAGIC_LEN, CKPT_HEADER_SIZE, &ck->map,
		&ck->map_len, err, errlen);
	if (rc)
		return rc;
	ck->path = xstrdup(path);
	rc = read_toc(ck, err, errlen);
	for (int i = 0; !rc && verify_all && i < ck->n; i++)
		rc = check_crc(ck, &ck->sec[i], err, errlen);
	if (rc)
		ckpt_close(ck);
	return rc;
}

const struct ckpt_section *ckpt_find(const struct ckpt *ck, uint32_t type)
{
	for (int i = 0; i < ck->n; i++)
		if (ck->sec[i].type == type)
			return &ck->sec[i];
	return NULL;
}

int ckpt_verify(struct ckpt *ck, uint32_t type, const struct ckpt_section **out,
	char *err, size_t errlen)
{
	struct ckpt_section *s = (struct ckpt_section *)ckpt_find(ck, type);
	if (!s)
		return data_error(err, errlen, ck->path, "no %s section", type_name(type));
	int rc = check_crc(ck, s, err, errlen);
	if (!rc && out)
		*out = s;
	return rc;
}

void ckpt_close(struct ckpt *ck)
{
	unmap_file(ck->map, ck->map_len);
	free(ck->path);
	memset(ck, 0, sizeof *ck);
}
