/* conditional.h: class-conditional generation (beyond the paper): a model
 * pre-trained with a label before every flow generates flows of the class
 * it is given. The one place that lays out such a model's sequences and
 * label tokens, for tgpt-train --conditional and tgpt-infer generate
 * --label:
 *
 *   labels    the shard's labels in their order, then one more, named "",
 *             for the flows that carry none; entry i's tokens come from
 *             clf_assign_tokens(map, COND_TOKEN_BASE): one token 260 + i
 *             (up to 256 entries), else two, 260 + i / 256 and 260 + i % 256:
 *             ids past the tokenizer's, which no flow holds and the
 *             generator never samples.
 *   vocab     at least the highest label token + 1 (tiny and small: 260 +
 *             entries; bench's 300 holds up to 40 entries as it is).
 *   sequence  every flow is its label's tokens, then START ... END; flows
 *             are packed one after another as without labels, a flow too
 *             long for the context cut after its label tokens.
 *   targets   a label token is never a target (PAD): the model learns the
 *             flows given their label, not which label comes next.
 *
 * The map travels in the checkpoint's label table with window 0, and the
 * MODEL section says "conditional 1" (tgpt-ckpt(5)). */
#ifndef TGPT_CONDITIONAL_H
#define TGPT_CONDITIONAL_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "record.h"

#define COND_TOKEN_BASE TOK_VOCAB

/* The map of a conditional model: n_labels labels name[i] with count[i]
 * training flows, the "" entry with unlabelled flows, k tokens per entry
 * (1 or 2). Free with ckpt_labels_free. */
void cond_map_init(struct ckpt_labels *map, uint32_t n_labels, const char *const *name,
	const uint64_t *count, uint64_t unlabelled, uint32_t k);

/* The vocabulary the map's tokens need: the highest token + 1. */
int cond_vocab(const struct ckpt_labels *map);

/* 0, or -1 with the reason in err when map is not a sound conditional map
 * for a model of vocab tokens (not conditional, no "" entry last, a token
 * below COND_TOKEN_BASE or outside the vocabulary). */
int cond_check(const struct ckpt_labels *map, int vocab, char *err, size_t errlen);

/* The entry of a shard label id (SHARD_NO_LABEL: the "" entry). */
uint32_t cond_entry(const struct ckpt_labels *map, uint16_t shard_label_id);

/* One flow into a training sequence seq (T tokens) at pos: with a map
 * (NULL: none) entry's label tokens first, then tok[0 .. len). Returns the
 * position after it. A flow that does not fit returns -1 when pos > 0 (it
 * starts the next sequence); at pos 0 it is cut to T tokens. */
int cond_put_flow(const struct ckpt_labels *map, uint32_t entry, const uint16_t *tok, size_t len,
	int *seq, int pos, int T);

/* Targets that are label tokens become pad. */
void cond_mask_targets(int *tgt, size_t n, int pad);

/* The entry of label NAME, or -1 (also for "", which is no label). */
long cond_find(const struct ckpt_labels *map, const char *name);

/* The labels (not the "" entry) as "a, b, c" into buf (cut with "..."). */
void cond_known(const struct ckpt_labels *map, char *buf, size_t len);

/* An entry drawn with the frequencies of the training flows (uniformly
 * among the labels when it counted none), from r (uniform 64 bits). */
uint32_t cond_draw(const struct ckpt_labels *map, uint64_t r);

#endif
