/* state.c: the TRAIN section of a checkpoint (tgpt-ckpt(5)): a run's
 * hyper-parameters and where it got to, as text key-value lines, written
 * with every checkpoint and read back by --resume. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "train.h"

const char *const mode_names[] = { "pretrain", "finetune", NULL };

const char *const balance_names[] = { "none", "weight", "sample", NULL };

enum field_kind { TF_U64, TF_DBL, TF_ENUM };

static const struct train_field {
	const char *key;
	size_t off;
	enum field_kind kind;
	const char *const *names;  /* TF_ENUM: the values' names */
	int optional;              /* absent from older checkpoints: 0; 2: a classifier's only;
	                              3: written only when not 0 */
} train_fields[] = {
#define U(f) { #f, offsetof(struct train, f), TF_U64, NULL, 0 }
#define D(f) { #f, offsetof(struct train, f), TF_DBL, NULL, 0 }
#define OU(f) { #f, offsetof(struct train, f), TF_U64, NULL, 2 }
#define OD(f) { #f, offsetof(struct train, f), TF_DBL, NULL, 2 }
#define OE(f, names, opt) { #f, offsetof(struct train, f), TF_ENUM, names, opt }
#define ND(f) { #f, offsetof(struct train, f), TF_DBL, NULL, 3 }
	U(step), U(steps), U(batch), U(context), U(accum), U(seed), U(threads),
	D(lr), D(min_lr), U(warmup), D(beta1), D(beta2), D(eps), D(weight_decay), D(clip),
	U(ckpt_every), U(eval_every), U(eval_batches), U(random_data),
	U(epoch), U(cursor), U(data_seed), U(data_flows), U(data_tokens), U(rng), U(tokens),
	OE(mode, mode_names, 1), OU(window_tokens), OU(label_tokens), OE(balance, balance_names, 2),
	OU(best_step), OD(best_val_f1), OD(best_val_acc), ND(attn_dropout), ND(resid_dropout),
#undef U
#undef D
#undef OU
#undef OD
#undef OE
#undef ND
};
#define N_TRAIN_FIELDS (sizeof train_fields / sizeof train_fields[0])

void train_text(const struct train *t, struct ckpt_text *txt)
{
	txt->len = 0;
	ckpt_text_add(txt, "preset", "%s", t->preset);
	for (size_t i = 0; i < N_TRAIN_FIELDS; i++) {
		const char *p = (const char *)t + train_fields[i].off;
		char v[32];
		if (train_fields[i].optional == 2 && t->mode != MODE_CLASSIFIER)
			continue;
		if (train_fields[i].optional == 3 && *(const double *)p == 0)
			continue;	/* so runs without it write what they did before */
		if (train_fields[i].kind == TF_DBL)
			ckpt_text_add(txt, train_fields[i].key, "%s",
				ckpt_real(v, sizeof v, *(const double *)p, 0));
		else if (train_fields[i].kind == TF_ENUM)
			ckpt_text_add(txt, train_fields[i].key, "%s",
				train_fields[i].names[*(const uint64_t *)p]);
		else
			ckpt_text_add(txt, train_fields[i].key, "%" PRIu64, *(const uint64_t *)p);
	}
}

int read_train(struct ckpt *ck, struct train *t, char *err, size_t errlen)
{
	const struct ckpt_section *s;
	char msg[256];
	int rc = ckpt_verify(ck, CKPT_TRAIN, &s, err, errlen);
	if (rc)
		return rc;
	memset(t, 0, sizeof *t);
	if (ckpt_get_str(s, "preset", t->preset, sizeof t->preset, msg, sizeof msg) < 0)
		goto bad;
	for (size_t i = 0; i < N_TRAIN_FIELDS; i++) {
		const struct train_field *f = &train_fields[i];
		char *p = (char *)t + f->off, name[32];
		size_t len;
		if (f->optional && !ckpt_text_get(s, f->key, &len))
			continue;	/* a checkpoint of an older build: 0 */
		if (f->kind == TF_ENUM) {
			int v;
			if (ckpt_get_str(s, f->key, name, sizeof name, msg, sizeof msg) < 0)
				goto bad;
			if ((v = enum_index(f->names, name)) < 0) {
				snprintf(msg, sizeof msg, "section train: %s '%s' is unknown", f->key, name);
				goto bad;
			}
			*(uint64_t *)p = (uint64_t)v;
		} else if (f->kind == TF_DBL ?
			ckpt_get_double(s, f->key, (double *)p, msg, sizeof msg) < 0 :
			ckpt_get_u64(s, f->key, (uint64_t *)p, msg, sizeof msg) < 0) {
			goto bad;
		}
	}
	if (t->batch < 1 || t->batch > 1 << 16 || t->accum < 1 || t->accum > 1 << 16 ||
		t->context < 2 || t->context > 1 << 20 || t->steps > MAX_STEPS ||
		t->step > t->steps || t->threads < 1 || t->threads > MAX_THREADS ||
		(t->cursor > t->data_flows) || t->best_step > t->step ||
		(t->mode == MODE_CLASSIFIER && (t->window_tokens < 1 || t->window_tokens > MAX_WINDOW ||
		t->label_tokens < 1 || t->label_tokens > 2 ||
		t->context != t->window_tokens + t->label_tokens)) ||
		!(t->attn_dropout >= 0 && t->attn_dropout <= 0.9) ||
		!(t->resid_dropout >= 0 && t->resid_dropout <= 0.9)) {
		snprintf(msg, sizeof msg, "section train: values out of range");
		goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: %s", ck->path, msg);
	return EX_DATAERR;
}
