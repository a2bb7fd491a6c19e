/* classify.c: a fine-tuned tgpt model as a flow classifier (classify.h): the
 * input rows, the training targets, per-class probabilities from the logits
 * at the label positions. */
#include "classify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "record.h"

uint32_t clf_tokens_for(uint32_t n_labels)
{
	return n_labels <= CLF_ONE_TOKEN_MAX ? 1 : 2;
}

void clf_assign_tokens(struct ckpt_labels *l, int base)
{
	free(l->token);
	l->token = xcalloc((size_t)l->n * l->k + 1, sizeof *l->token);
	for (uint32_t i = 0; i < l->n; i++) {
		if (l->k == 1) {
			l->token[i] = (uint16_t)(base + (int)i);
		} else {
			l->token[2 * i] = (uint16_t)(base + (int)(i / 256));
			l->token[2 * i + 1] = (uint16_t)(base + (int)(i % 256));
		}
	}
}

int clf_row_len(const struct ckpt_labels *map)
{
	return 1 + (int)map->window + (int)map->k - 1;
}

/* Flow tokens the input of a flow of len tokens takes. */
static int prefix_len(const struct ckpt_labels *map, size_t len)
{
	return len < map->window ? (int)len : (int)map->window;
}

/* One row: CLS, the prefix of L tokens, then (k = 2) first; pad to T. */
static void fill_row(int *seq, int T, const uint16_t *flow, int L, int first, int pad)
{
	seq[0] = TOK_CLS;
	for (int i = 0; i < L; i++)
		seq[1 + i] = flow[i];
	int at = 1 + L;
	if (first >= 0)
		seq[at++] = first;
	for (; at < T; at++)
		seq[at] = pad;
}

int clf_batch(const struct ckpt_labels *map, int pad, const uint16_t *const *flows,
	const size_t *lens, const uint32_t *labels, int B, int *tok, int *tgt)
{
	int k = (int)map->k, T = 0;
	for (int b = 0; b < B; b++) {
		int len = 1 + prefix_len(map, lens[b]) + k - 1;
		T = len > T ? len : T;
	}
	for (int b = 0; b < B; b++) {
		int L = prefix_len(map, lens[b]);
		const uint16_t *lt = map->token + (size_t)labels[b] * map->k;
		int *seq = tok + (size_t)b * T, *y = tgt + (size_t)b * T;
		fill_row(seq, T, flows[b], L, k == 2 ? lt[0] : -1, pad);
		for (int t = 0; t < T; t++)
			y[t] = pad;
		/* position L holds the last flow token (or CLS when L = 0) */
		for (int j = 0; j < k; j++)
			y[L + j] = lt[j];
	}
	return T;
}

/* ------------------------------------------------------------ prediction */

/* The distinct first tokens of two-token labels in label order (into
 * first, when not NULL) and each label's index among them (into group).
 * Returns their number. */
static int first_rows(const struct ckpt_labels *map, int *first, int *group)
{
	unsigned char seen[65536 / 8] = { 0 };
	int *row_of = xcalloc(65536, sizeof *row_of), rows = 0;
	for (uint32_t i = 0; i < map->n; i++) {
		uint16_t f = map->token[2 * i];
		if (!(seen[f / 8] & 1 << f % 8)) {
			seen[f / 8] |= (unsigned char)(1 << f % 8);
			row_of[f] = rows;
			if (first)
				first[rows] = f;
			rows++;
		}
		if (group)
			group[i] = row_of[f];
	}
	free(row_of);
	return rows;
}

int clf_rows_per_flow(const struct ckpt_labels *map)
{
	return map->k == 2 ? first_rows(map, NULL, NULL) : 1;
}

int clf_init(struct clf *c, struct model *m, const struct ckpt_labels *map, int max_flows,
	char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	const struct model_config *mc = &m->c;
	int T = clf_row_len(map);
	if (map->n < 1 || (map->k != 1 && map->k != 2) || max_flows < 1) {
		snprintf(err, errlen, "no labels to predict");
		return -1;
	}
	if (mc->pad_id < 0 || mc->vocab <= TOK_CLS) {
		snprintf(err, errlen, "the model has %s", mc->pad_id < 0 ? "no pad_id to mask "
			"targets with" : "no CLS token in its vocabulary");
		return -1;
	}
	if (T > mc->max_ctx) {
		snprintf(err, errlen, "a window of %u tokens makes inputs of %d, beyond the model's "
			"context of %d", map->window, T, mc->max_ctx);
		return -1;
	}
	for (size_t i = 0; i < (size_t)map->n * map->k; i++)
		if (map->token[i] >= mc->vocab) {
			snprintf(err, errlen, "label token %u is outside the model's vocabulary of %d",
				map->token[i], mc->vocab);
			return -1;
		}
	c->m = m;
	c->map = map;
	c->max_flows = max_flows;
	c->rows = 1;
	if (map->k == 2) {
		/* the distinct first tokens, in order, and each label's row */
		c->first = xcalloc(map->n, sizeof *c->first);
		c->group = xcalloc(map->n, sizeof *c->group);
		c->rows = first_rows(map, c->first, c->group);
	}
	size_t cells = (size_t)max_flows * (size_t)c->rows * (size_t)T;
	c->tok = xcalloc(cells, sizeof *c->tok);
	c->tgt = xcalloc(cells, sizeof *c->tgt);
	c->work = xcalloc(2 * (size_t)c->rows, sizeof *c->work);
	return 0;
}

void clf_free(struct clf *c)
{
	free(c->first);
	free(c->group);
	free(c->tok);
	free(c->tgt);
	free(c->work);
	memset(c, 0, sizeof *c);
}

/* Softmax of logits over the one-token labels' tokens into p (n). */
static void label_softmax(const float *logits, const struct ckpt_labels *map, float *p)
{
	float max = -INFINITY;
	for (uint32_t i = 0; i < map->n; i++)
		max = fmaxf(max, logits[map->token[i]]);
	double sum = 0;
	for (uint32_t i = 0; i < map->n; i++)
		sum += p[i] = expf(logits[map->token[i]] - max);
	for (uint32_t i = 0; i < map->n; i++)
		p[i] = (float)(p[i] / sum);
}

/* Two-token labels of one flow: P(first) from row 0 at position L, then
 * P(second | first) from each first token's row at L + 1. */
static void label_softmax2(struct clf *c, const float *logits, int T, int L, float *p)
{
	const struct ckpt_labels *map = c->map;
	int V = c->m->c.vocab, R = c->rows;
	float *gmax = c->work, *gsum = c->work + R, pmax = -INFINITY;
	const float *first = logits + (size_t)L * V;
	for (int r = 0; r < R; r++) {
		pmax = fmaxf(pmax, first[c->first[r]]);
		gmax[r] = -INFINITY;
		gsum[r] = 0;
	}
	double psum = 0;
	for (int r = 0; r < R; r++)
		psum += expf(first[c->first[r]] - pmax);
	for (uint32_t i = 0; i < map->n; i++) {
		int r = c->group[i];
		const float *second = logits + ((size_t)r * T + L + 1) * V;
		gmax[r] = fmaxf(gmax[r], second[map->token[2 * i + 1]]);
	}
	for (uint32_t i = 0; i < map->n; i++) {
		int r = c->group[i];
		const float *second = logits + ((size_t)r * T + L + 1) * V;
		gsum[r] += p[i] = expf(second[map->token[2 * i + 1]] - gmax[r]);
	}
	for (uint32_t i = 0; i < map->n; i++) {
		int r = c->group[i];
		double pf = expf(first[c->first[r]] - pmax) / psum;
		p[i] = (float)(pf * p[i] / gsum[r]);
	}
}

/* One forward pass over n <= max_flows flows. */
static double predict_chunk(struct clf *c, const uint16_t *const *flows, const size_t *lens,
	const uint32_t *labels, int n, float *probs)
{
	const struct ckpt_labels *map = c->map;
	int R = c->rows, k = (int)map->k, pad = c->m->c.pad_id, V = c->m->c.vocab, T = 0;
	for (int f = 0; f < n; f++) {
		int len = 1 + prefix_len(map, lens[f]) + k - 1;
		T = len > T ? len : T;
	}
	for (int f = 0; f < n; f++) {
		int L = prefix_len(map, lens[f]);
		const uint16_t *lt = labels ? map->token + (size_t)labels[f] * map->k : NULL;
		for (int r = 0; r < R; r++) {
			size_t row = (size_t)f * R + r;
			int *y = c->tgt + row * T;
			fill_row(c->tok + row * T, T, flows[f], L, k == 2 ? c->first[r] : -1, pad);
			for (int t = 0; t < T; t++)
				y[t] = pad;
			if (lt && (k == 1 || lt[0] == c->first[r]))
				for (int j = 0; j < k; j++)
					y[L + j] = lt[j];
		}
	}
	float loss = model_forward(c->m, c->tok, labels ? c->tgt : NULL, n * R, T);
	const float *logits = model_logits(c->m);
	for (int f = 0; f < n; f++) {
		int L = prefix_len(map, lens[f]);
		const float *lg = logits + (size_t)f * R * T * V;
		float *p = probs + (size_t)f * map->n;
		if (k == 1)
			label_softmax(lg + (size_t)L * V, map, p);
		else
			label_softmax2(c, lg, T, L, p);
	}
	return labels ? (double)loss * c->m->n_valid : 0.0;
}

double clf_predict(struct clf *c, const uint16_t *const *flows, const size_t *lens,
	const uint32_t *labels, int n, float *probs)
{
	double loss = 0;
	for (int at = 0; at < n; at += c->max_flows) {
		int chunk = n - at < c->max_flows ? n - at : c->max_flows;
		loss += predict_chunk(c, flows + at, lens + at, labels ? labels + at : NULL, chunk,
			probs + (size_t)at * c->map->n);
	}
	return loss;
}

uint32_t clf_argmax(const float *probs, uint32_t n_labels)
{
	uint32_t best = 0;
	for (uint32_t i = 1; i < n_labels; i++)
		if (probs[i] > probs[best])
			best = i;
	return best;
}

int clf_load(const char *path, struct model *m, struct ckpt_labels *map, char *err,
	size_t errlen)
{
	struct ckpt ck;
	int rc = ckpt_open(path, &ck, 0, err, errlen);
	if (rc)
		return rc;
	rc = ckpt_read_labels(&ck, map, err, errlen);
	if (!rc && map->n == 0) {
		snprintf(err, errlen, "%s: not a classifier (its label table is empty): fine-tune "
			"it with tgpt-train --labels", path);
		rc = EX_DATAERR;
	} else if (!rc && map->conditional) {
		snprintf(err, errlen, "%s: not a classifier but a class-conditional generator "
			"(tgpt-train --conditional): fine-tune it with tgpt-train --labels", path);
		rc = EX_DATAERR;
	}
	if (!rc)
		rc = ckpt_load_model(&ck, m, 0, err, errlen);
	if (rc)
		ckpt_labels_free(map);
	ckpt_close(&ck);
	return rc;
}
