/* info.c: tgpt-train --info FILE, a checkpoint checked section by section
 * and printed as text (tgpt-ckpt(5)), and --export FILE, its model without
 * the training run's state (what a released model ships). */
#include <inttypes.h>
#include <stdio.h>

#include "train.h"

/* The label table of a classifier: one line per label, its id, token ids
 * (comma-separated), training flows and name. */
static void info_labels(struct ckpt *ck)
{
	struct ckpt_labels l;
	char err[1024];
	int rc = ckpt_read_labels(ck, &l, err, sizeof err);
	if (rc)
		errx(rc, "%s", err);
	printf("[labels]\nn_labels %u\n", l.n);
	if (l.n)
		printf("label_tokens %u\n", l.k);
	if (l.n && l.conditional)
		printf("conditional 1\n");
	else if (l.n)
		printf("window_tokens %u\n", l.window);
	for (uint32_t i = 0; i < l.n; i++) {
		printf("label %u %u", i, l.token[(size_t)i * l.k]);
		if (l.k == 2)
			printf(",%u", l.token[(size_t)i * l.k + 1]);
		printf(" %" PRIu64 " %s\n", l.count[i], l.name[i]);
	}
	ckpt_labels_free(&l);
}

int info(const char *path)
{
	struct ckpt ck;
	char err[1024];
	int rc = ckpt_open(path, &ck, 1, err, sizeof err);
	if (rc)
		errx(rc, "%s", err);
	printf("file %s\nversion %u\nsize %zu\nsections %d\n", path, ck.version, ck.map_len, ck.n);
	for (int i = 0; i < ck.n; i++)
		printf("section %s type %u offset %" PRIu64 " size %" PRIu64 " crc32 %08x\n",
			ck.sec[i].name, ck.sec[i].type, ck.sec[i].offset, ck.sec[i].size, ck.sec[i].crc);
	for (uint32_t type = CKPT_MODEL; type <= CKPT_TRAIN; type++) {
		const struct ckpt_section *s = ckpt_find(&ck, type);
		if (s) {
			printf("[%s]\n", s->name);
			fwrite(s->data, 1, s->size, stdout);
		}
	}
	if (ckpt_find(&ck, CKPT_LABELS))
		info_labels(&ck);
	ckpt_close(&ck);
	cli_close_out(stdout, "stdout");
	return 0;
}

/* The sections a model needs (MODEL, LABELS, PARAMS), checked, into OUT:
 * the AdamW moments, the run's state and a fine-tuning run's last
 * parameters stay behind, so OUT is a third of FILE's size and can be
 * fine-tuned (--finetune) or loaded by tgpt-infer, not resumed. */
int export_model(const char *path, const char *out)
{
	static const uint32_t kept[] = { CKPT_MODEL, CKPT_LABELS, CKPT_PARAMS };
	struct ckpt ck;
	struct ckpt_out o = { 0 };
	const struct ckpt_section *s;
	char err[1024];
	int rc = ckpt_open(path, &ck, 0, err, sizeof err);	/* the dropped sections unchecked */
	if (rc)
		errx(rc, "%s", err);
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
		if ((rc = ckpt_verify(&ck, kept[i], &s, err, sizeof err)))
			errx(rc, "%s", err);
		ckpt_out_add(&o, s->type, s->data, s->size);
	}
	ckpt_write(&o, out);
	ckpt_close(&ck);
	return 0;
}
