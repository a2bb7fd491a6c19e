/* classify.h: flow classification with a fine-tuned tgpt model (paper
 * section 2: no classifier head; the label is the next token the language
 * model predicts after [cls] and the flow). The one place that lays out a
 * classifier's input and reads labels off its logits, for tgpt-train's
 * training batches and validation and for tgpt-infer (which score the
 * predictions with tools/eval/metrics.h):
 *
 *   input    CLS t_1 .. t_L, L = min(W, flow length), W the map's window;
 *            rows of a batch padded after it with PAD (the model is causal:
 *            padding after position L changes nothing before it).
 *   one-token labels (at most 256): label i is the byte token i; its score
 *            is the logit at position L (the one after t_L); per-class
 *            probabilities are the softmax over the labels' tokens only.
 *   two-token labels (257 to 65535): label i is the tokens i / 256, i % 256;
 *            P(first) as above over the distinct first tokens, P(second |
 *            first) at position L + 1 of the input with the first token
 *            appended, over the second tokens of the labels that start with
 *            it; P(label) is their product (one input row per first token).
 *   training the label's token(s) as the targets at positions L (and L + 1),
 *            PAD everywhere else, so the loss is the model's own
 *            full-vocabulary cross-entropy at the label positions.
 *
 * The label table and its tokens travel in the checkpoint (ckpt.h, struct
 * ckpt_labels; tgpt-ckpt(5)), so a reader never guesses the map. */
#ifndef TGPT_CLASSIFY_H
#define TGPT_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "model.h"

#define CLF_ONE_TOKEN_MAX 256    /* labels one byte token can name */

/* Tokens per label for n labels: 1 up to CLF_ONE_TOKEN_MAX, else 2. */
uint32_t clf_tokens_for(uint32_t n_labels);
/* Fills l->token (allocated here) from l->n and l->k: label i is the token
 * base + i (k = 1) or base + i / 256, base + i % 256 (k = 2). A classifier's
 * base is 0 (the byte tokens); a class-conditional model's is TOK_VOCAB,
 * ids no flow holds (conditional.h). */
void clf_assign_tokens(struct ckpt_labels *l, int base);

/* Tokens of the longest input row: CLS, W flow tokens, and the first label
 * token with two-token labels. */
int clf_row_len(const struct ckpt_labels *map);

/* A training batch: B flows (tokens, lengths, label ids) into tok and tgt,
 * (B, T) each, T the return value (at most clf_row_len): the input above
 * and, as targets, the label's tokens at positions L (and L + 1), pad
 * elsewhere. */
int clf_batch(const struct ckpt_labels *map, int pad, const uint16_t *const *flows,
	const size_t *lens, const uint32_t *labels, int B, int *tok, int *tgt);

/* Input rows clf_predict runs per flow: 1, or with two-token labels the
 * number of distinct first tokens (a forward pass of max_flows flows has
 * max_flows times as many rows). */
int clf_rows_per_flow(const struct ckpt_labels *map);

/* Prediction with a model and its label map (both borrowed). */
struct clf {
	struct model *m;
	const struct ckpt_labels *map;
	int max_flows;          /* flows per forward pass */
	int rows;               /* input rows per flow: 1, or the distinct first tokens */
	int *first;             /* (rows) the distinct first tokens (k = 2) */
	int *group;             /* (n) label -> its first token's row (k = 2) */
	int *tok, *tgt;         /* (max_flows * rows, clf_row_len) */
	float *work;            /* (2 * rows) group maxima and sums */
};

/* 0, or -1 with the reason in err when the map does not suit the model (a
 * label token, CLS or the input length outside it, no pad_id). Exits with
 * EX_OSERR when memory runs out. */
int clf_init(struct clf *c, struct model *m, const struct ckpt_labels *map, int max_flows,
	char *err, size_t errlen);
void clf_free(struct clf *c);

/* Per-class probabilities of n flows (any n: forward passes of at most
 * max_flows flows) into probs (n, map->n). With labels (label ids, else
 * NULL) returns the sum over the flows of the cross-entropy of their label
 * tokens (k per flow, full vocabulary, teacher-forced), else 0. */
double clf_predict(struct clf *c, const uint16_t *const *flows, const size_t *lens,
	const uint32_t *labels, int n, float *probs);

/* The most probable class (the lowest id among equals). */
uint32_t clf_argmax(const float *probs, uint32_t n_labels);

/* Opens a classifier checkpoint for inference: the model (its PARAMS, the
 * best of the fine-tuning run) and the label map. 0, or a sysexits code
 * with a message naming PATH in err: EX_NOINPUT unreadable, EX_DATAERR
 * damaged or no classifier (no labels). */
int clf_load(const char *path, struct model *m, struct ckpt_labels *map, char *err,
	size_t errlen);

#endif
