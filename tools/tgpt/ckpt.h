/* ckpt.h: checkpoint files (tgpt-ckpt(5), version 1), which tgpt-train writes
 * and resumes from and tgpt-infer loads: a header, a table of typed sections
 * (model config as text, training state as text, label table, parameters,
 * AdamW moments, a fine-tuning run's last parameters), each section 64-byte
 * aligned (the parameters can be used straight from a mapping) and CRC-32
 * checked. Writing is atomic. */
#ifndef TGPT_CKPT_H
#define TGPT_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define CKPT_MAGIC "TGPTCKPT"
#define CKPT_MAGIC_LEN 8
#define CKPT_VERSION 1
#define CKPT_HEADER_SIZE 64
#define CKPT_ENTRY_SIZE 48      /* one entry of the table of contents */
#define CKPT_ALIGN 64           /* every section starts at a multiple of this */
#define CKPT_MAX_SECTIONS 64
#define CKPT_NAME_LEN 16

/* Section types. A reader skips types it does not know, so a later writer
 * may add sections without a new format version. */
enum ckpt_type {
	CKPT_MODEL = 1,   /* text: the model config, tokenizer, tensor layout */
	CKPT_TRAIN = 2,   /* text: step, hyper-parameters, data position, RNG */
	CKPT_LABELS = 3,  /* label table and label tokens (empty but in a classifier) */
	CKPT_PARAMS = 4,  /* n_params float32 */
	CKPT_ADAM_M = 5,  /* n_params float32: AdamW first moments */
	CKPT_ADAM_V = 6,  /* n_params float32: AdamW second moments */
	CKPT_LAST = 7,    /* n_params float32: the run's last parameters, when PARAMS
	                   * holds an earlier step's (the best of a fine-tuning run) */
};

/* The label table of a classifier or of a class-conditional model
 * (tgpt-ckpt(5), "Label table"): label i is name[i] and its k tokens are
 * token[i*k .. i*k+k); count[i] flows of it were trained on. A classifier
 * predicts them after CLS and the first window tokens of a flow; a
 * class-conditional model reads them before a flow's START (conditional.h;
 * window 0, and its last label, named "", stands for flows without one). */
struct ckpt_labels {
	uint32_t n;              /* labels; 0: neither classifier nor conditional */
	uint32_t k;              /* tokens per label: 1 or 2 */
	uint32_t window;         /* W: flow tokens after CLS; 0 when conditional */
	uint32_t conditional;    /* 1: the MODEL section's "conditional 1" */
	char **name;             /* n NUL-terminated strings */
	uint16_t *token;         /* n * k */
	uint64_t *count;         /* n */
};
#define CKPT_MAX_LABELS 65535u

struct ckpt_section {
	uint32_t type;
	char name[CKPT_NAME_LEN + 1];
	uint64_t offset, size;   /* in bytes, from the start of the file */
	uint32_t crc;            /* CRC-32 of the section's size bytes */
	const void *data;        /* writer: what to write; reader: into the mapping */
	int verified;            /* reader: its CRC has been checked */
};

/* CRC-32 (ISO-HDLC, as zlib and gzip): crc32_update(0, p, n) of a whole. */
uint32_t crc32_update(uint32_t crc, const void *p, size_t n);

/* ------------------------------------------------------------ text sections */

/* A text section is lines "KEY VALUE\n": KEY is [a-z0-9_.]+, VALUE the rest
 * of the line. */
struct ckpt_text {
	char *buf;
	size_t len, cap;
};
void ckpt_text_add(struct ckpt_text *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ckpt_text_free(struct ckpt_text *t);
/* The shortest %g form of v that reads back as the same double (or, with
 * as_float, the same float): 0.9, not 0.90000000000000002. Returns out. */
const char *ckpt_real(char *out, size_t outlen, double v, int as_float);

/* The value of KEY in a text section (not NUL-terminated: *len bytes), or
 * NULL when the section lacks it. */
const char *ckpt_text_get(const struct ckpt_section *s, const char *key, size_t *len);
/* The same, parsed; 0, or -1 when missing or malformed (message in err). */
int ckpt_get_i64(const struct ckpt_section *s, const char *key, int64_t min, int64_t max,
	int64_t *out, char *err, size_t errlen);
int ckpt_get_u64(const struct ckpt_section *s, const char *key, uint64_t *out, char *err,
	size_t errlen);
int ckpt_get_double(const struct ckpt_section *s, const char *key, double *out, char *err,
	size_t errlen);
/* Copies the value into out (NUL-terminated, at most outlen - 1 bytes). */
int ckpt_get_str(const struct ckpt_section *s, const char *key, char *out, size_t outlen,
	char *err, size_t errlen);

/* ------------------------------------------------------------ writer */

struct ckpt_out {
	int n;
	struct ckpt_section sec[CKPT_MAX_SECTIONS];
	void *labels;            /* the encoded label table, freed by ckpt_out_free */
};

/* Adds a section (data is referenced, not copied, until ckpt_write). */
void ckpt_out_add(struct ckpt_out *o, uint32_t type, const void *data, uint64_t size);
/* Adds the model's sections: MODEL (its text is built in *text, which must
 * live until ckpt_write), LABELS (empty), PARAMS and, once the optimizer has
 * run, ADAM_M and ADAM_V. */
void ckpt_out_add_model(struct ckpt_out *o, const struct model *m, struct ckpt_text *text);
/* The same with a label table (NULL: the empty one; a conditional one also
 * writes "conditional 1" into MODEL) and other parameters in PARAMS
 * (params: n_params floats, NULL for m's own); then m's own go into LAST.
 * The table is encoded into o->labels: ckpt_out_free after ckpt_write. */
void ckpt_out_add_model_with(struct ckpt_out *o, const struct model *m, struct ckpt_text *text,
	const struct ckpt_labels *labels, const float *params);
void ckpt_out_free(struct ckpt_out *o);
/* The LABELS section's bytes for l (n == 0: the empty table), in a buffer
 * the caller frees. */
void *ckpt_labels_encode(const struct ckpt_labels *l, uint64_t *size);
/* Writes the checkpoint to PATH atomically (PATH.tmp.PID, fsync, rename,
 * fsync of the directory); exits EX_CANTCREAT or EX_IOERR naming PATH when
 * that fails, leaving an existing PATH as it was. */
void ckpt_write(const struct ckpt_out *o, const char *path);

/* ------------------------------------------------------------ reader */

struct ckpt {
	char *path;
	const uint8_t *map;
	size_t map_len;
	uint32_t version;
	int n;
	struct ckpt_section sec[CKPT_MAX_SECTIONS];
};

/* Maps PATH and checks it: magic, version, size against the header, the
 * header's and table's CRC, every section aligned and inside the file, no
 * type twice and, with verify_all, every section's CRC (else call
 * ckpt_verify for the sections used). Returns 0, or a sysexits code with a
 * message naming PATH in err: EX_NOINPUT when PATH cannot be read,
 * EX_DATAERR when it is not a sound checkpoint. */
int ckpt_open(const char *path, struct ckpt *ck, int verify_all, char *err, size_t errlen);
/* A section of a type, or NULL. */
const struct ckpt_section *ckpt_find(const struct ckpt *ck, uint32_t type);
/* The section of a type, its CRC checked: 0, or EX_DATAERR with a message
 * (missing or damaged). */
int ckpt_verify(struct ckpt *ck, uint32_t type, const struct ckpt_section **out,
	char *err, size_t errlen);
void ckpt_close(struct ckpt *ck);

/* The model config of the MODEL section (its tokenizer must be tgpt-bytes 1):
 * 0 or EX_DATAERR with a message. */
int ckpt_model_config(struct ckpt *ck, struct model_config *c, char *err, size_t errlen);
/* Initialises *m from the checkpoint: config, then the parameters (checking
 * that the MODEL section's tensor table is this build's layout) and, with
 * with_adam and when present, the AdamW moments. 0 or EX_DATAERR. */
int ckpt_load_model(struct ckpt *ck, struct model *m, int with_adam, char *err,
	size_t errlen);

/* A section of n floats (PARAMS, ADAM_M, ADAM_V, LAST) into *dst, allocated
 * when NULL: 0, or EX_DATAERR when it is missing, damaged or of another size. */
int ckpt_load_floats(struct ckpt *ck, uint32_t type, size_t n, float **dst, char *err,
	size_t errlen);

/* The label table (LABELS) and whether the model is class-conditional (the
 * MODEL section's "conditional" key; absent, as in checkpoints written
 * before it: 0): 0 with l->n == 0 for a model that is neither a classifier
 * nor conditional (or has no LABELS section), or EX_DATAERR when it is
 * damaged. Free with ckpt_labels_free. */
int ckpt_read_labels(struct ckpt *ck, struct ckpt_labels *l, char *err, size_t errlen);
void ckpt_labels_free(struct ckpt_labels *l);

/* The first field in which two configs differ (its MODEL section key), or
 * NULL when they are the same. */
const char *model_config_diff(const struct model_config *a, const struct model_config *b);
/* Prints the value of config field KEY of c into out. */
void model_config_value(const struct model_config *c, const char *key, char *out, size_t outlen);

#endif
