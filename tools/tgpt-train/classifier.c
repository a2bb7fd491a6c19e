/* classifier.c: fine-tuning for classification (tgpt-train --labels): the
 * labelled flows of a shard by label, the label map of a new classifier,
 * the flows of a micro-batch (balanced by sampling, or weighted), its pass,
 * and validation as tgpt-infer classifies (classify.h), which keeps the
 * parameters of the best validation macro-F1. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "train.h"

uint64_t labelled_count(const struct shard *sh)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < shard_count(sh); i++)
		n += sh->label_ids[i] != SHARD_NO_LABEL;
	return n;
}

void labelled_index(struct labelled *lab, const struct shard *sh)
{
	uint32_t nl = sh->h.n_labels;
	uint64_t nf = shard_count(sh);
	lab->start = xcalloc((size_t)nl + 1, sizeof *lab->start);
	for (uint64_t i = 0; i < nf; i++)
		if (sh->label_ids[i] != SHARD_NO_LABEL)
			lab->start[sh->label_ids[i] + 1]++;
	for (uint32_t c = 0; c < nl; c++)
		lab->start[c + 1] += lab->start[c];
	lab->n = lab->start[nl];
	lab->flows = xcalloc(lab->n + 1, sizeof *lab->flows);
	uint64_t *fill = xcalloc((size_t)nl + 1, sizeof *fill);
	memcpy(fill, lab->start, ((size_t)nl + 1) * sizeof *fill);
	for (uint64_t i = 0; i < nf; i++)
		if (sh->label_ids[i] != SHARD_NO_LABEL)
			lab->flows[fill[sh->label_ids[i]]++] = i;
	free(fill);
	lab->present = xcalloc((size_t)nl + 1, sizeof *lab->present);
	lab->weight = xcalloc((size_t)nl + 1, sizeof *lab->weight);
	for (uint32_t c = 0; c < nl; c++)
		if (lab->start[c + 1] > lab->start[c])
			lab->present[lab->n_present++] = c;
	for (uint32_t c = 0; c < nl; c++) {
		uint64_t k = lab->start[c + 1] - lab->start[c];
		lab->weight[c] = k ? (double)lab->n / ((double)lab->n_present * (double)k) : 0.0;
	}
}

void labelled_free(struct labelled *lab)
{
	free(lab->flows);
	free(lab->start);
	free(lab->present);
	free(lab->weight);
	memset(lab, 0, sizeof *lab);
}

/* The label map of a new classifier: the shard's label table, label i
 * predicted as the tokens of clf_assign_tokens, with its training flows. */
void labels_from_shard(struct ckpt_labels *map, const struct shard *sh,
	const struct labelled *lab, uint32_t k, uint32_t window)
{
	memset(map, 0, sizeof *map);
	map->n = sh->h.n_labels;
	map->k = k;
	map->window = window;
	map->name = xcalloc((size_t)map->n + 1, sizeof *map->name);
	map->count = xcalloc((size_t)map->n + 1, sizeof *map->count);
	for (uint32_t i = 0; i < map->n; i++) {
		map->name[i] = xstrdup(shard_label(sh, (uint16_t)i));
		map->count[i] = lab->start[i + 1] - lab->start[i];
	}
	clf_assign_tokens(map, 0);
}

/* The flow tokens a classifier reads must be in the model's vocabulary. */
void check_prefix(const struct loader *l, uint64_t flow, const uint16_t *tok, size_t len,
	uint64_t window)
{
	for (size_t i = 0; i < len && i < window; i++)
		if (tok[i] >= l->vocab)
			errx(EX_DATAERR, "%s: flow %" PRIu64 ": token %u at %zu is outside the "
				"vocabulary of %d", l->path, flow, tok[i], i, l->vocab);
}

/* The next labelled flow of the shuffled epoch (unlabelled ones skipped). */
static uint64_t next_labelled(struct loader *l)
{
	uint64_t n = shard_count(&l->sh);
	for (;;) {
		if (l->cursor == n) {
			l->epoch++;
			l->cursor = 0;
			loader_permute(l);
		}
		uint64_t flow = l->perm[l->cursor++];
		if (l->sh.label_ids[flow] != SHARD_NO_LABEL)
			return flow;
	}
}

/* The B flows of a classifier micro-batch into r->bflow, blen, blab:
 * --balance sample draws a label uniformly among those with training flows,
 * then one of its flows (both from the run's generator); the others take
 * the labelled flows of the shuffled epoch in turn. */
static void pick_flows(struct run *r, int B)
{
	struct loader *l = &r->train;
	const struct labelled *lab = &r->lab;
	for (int b = 0; b < B; b++) {
		uint64_t flow;
		uint16_t id;
		if (r->t.balance == BAL_SAMPLE) {
			uint32_t c = lab->present[splitmix64(&r->t.rng) % lab->n_present];
			uint64_t k = lab->start[c + 1] - lab->start[c];
			flow = lab->flows[lab->start[c] + splitmix64(&r->t.rng) % k];
		} else {
			flow = next_labelled(l);
		}
		shard_flow(&l->sh, flow, &r->bflow[b], &r->blen[b], &id);
		r->blab[b] = id;
		check_prefix(l, flow, r->bflow[b], r->blen[b], r->t.window_tokens);
	}
}

static void scale_grads(struct model *m, float f)
{
	for (size_t i = 0; i < m->n_params; i++)
		m->grads_mem[i] *= f;
}

struct row_order {
	uint32_t label;
	int row;
};

static int by_label(const void *a, const void *b)
{
	const struct row_order *x = a, *y = b;
	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

/* Forward and backward of B classifier rows (r->bflow ...); returns the
 * loss and adds the tokens the pass took to *tokens. */
static float classifier_pass(struct run *r, const uint16_t *const *flow, const size_t *len,
	const uint32_t *label, int B, uint64_t *tokens)
{
	struct model *m = &r->m;
	int T = clf_batch(&r->map, m->c.pad_id, flow, len, label, B, r->tok, r->tgt);
	dropout_on(r);
	double loss = batch_pass(m, r->tok, r->tgt, B, T);
	*tokens += (uint64_t)B * (uint64_t)T;
	return (float)loss;
}

/* One micro-batch of a classifier: forward and backward, its gradient added
 * (grads_zero: the gradients are still all zero); returns its loss.
 * --balance weight makes the loss the weighted mean sum_i w_c(i) l_i /
 * sum_i w_c(i) (w_c = labelled flows / (labels present * flows of c), as
 * PyTorch's CrossEntropyLoss(weight)): the rows of each label go through a
 * pass of their own, whose mean gradient g_c enters with the weight
 * a_c = w_c n_c / sum_i w_c(i). The model adds gradients, so the sum
 * G + sum_c a_c g_c is built by scaling what is there by a_prev / a_c
 * before each pass and by the last a_c after. */
double classifier_micro(struct run *r, int grads_zero, uint64_t *tokens)
{
	int B = (int)r->t.batch;
	pick_flows(r, B);
	if (r->t.balance != BAL_WEIGHT)
		return classifier_pass(r, r->bflow, r->blen, r->blab, B, tokens);
	struct row_order *ord = xcalloc((size_t)B, sizeof *ord);
	const uint16_t **flow = xcalloc((size_t)B, sizeof *flow);
	size_t *len = xcalloc((size_t)B, sizeof *len);
	uint32_t *label = xcalloc((size_t)B, sizeof *label);
	double wsum = 0, loss = 0, prev = 1;
	for (int b = 0; b < B; b++) {
		ord[b] = (struct row_order){ r->blab[b], b };
		wsum += r->lab.weight[r->blab[b]];
	}
	qsort(ord, (size_t)B, sizeof *ord, by_label);
	for (int b = 0; b < B; b++) {
		flow[b] = r->bflow[ord[b].row];
		len[b] = r->blen[ord[b].row];
		label[b] = ord[b].label;
	}
	for (int g = 0, end; g < B; g = end) {
		for (end = g + 1; end < B && label[end] == label[g]; end++)
			;
		double a = r->lab.weight[label[g]] * (end - g) / wsum;
		if (!(grads_zero && g == 0))
			scale_grads(&r->m, (float)(prev / a));
		loss += a * classifier_pass(r, flow + g, len + g, label + g, end - g, tokens);
		prev = a;
	}
	scale_grads(&r->m, (float)prev);
	free(ord);
	free(flow);
	free(len);
	free(label);
	return loss;
}

/* The classes of n flows (r->bflow ...) with the loss of their labels,
 * counted into r->scores; returns the summed loss. */
static double classify_chunk(struct run *r, int n)
{
	uint32_t nl = r->map.n;
	double loss = clf_predict(&r->clf, r->bflow, r->blen, r->blab, n, r->probs);
	for (int f = 0; f < n; f++)
		scores_add(&r->scores, r->blab[f], clf_argmax(r->probs + (size_t)f * nl, nl));
	return loss;
}

/* Validation of a classifier: the labelled flows of val.shard in file order
 * (the first eval_batches * batch of them; all with eval_batches 0),
 * classified as tgpt-infer does (classify.h). Returns the mean loss of
 * their label tokens and sets r->val_acc and r->val_f1; NAN without
 * validation data. */
double evaluate_classifier(struct run *r)
{
	struct loader *v = &r->val;
	uint64_t limit = r->t.eval_batches ? r->t.eval_batches * r->t.batch : UINT64_MAX, seen = 0;
	int n = 0;
	double loss = 0;
	r->val_acc = r->val_f1 = NAN;
	if (!v->path)
		return NAN;
	scores_reset(&r->scores);
	for (uint64_t i = 0; i < shard_count(&v->sh) && seen < limit; i++) {
		uint16_t id;
		shard_flow(&v->sh, i, &r->bflow[n], &r->blen[n], &id);
		if (id == SHARD_NO_LABEL)
			continue;
		check_prefix(v, i, r->bflow[n], r->blen[n], r->t.window_tokens);
		r->blab[n++] = id;
		seen++;
		if (n == (int)r->t.batch) {
			loss += classify_chunk(r, n);
			n = 0;
		}
	}
	if (n)
		loss += classify_chunk(r, n);
	r->val_acc = scores_accuracy(&r->scores);
	r->val_f1 = scores_macro_f1(&r->scores, NULL);
	return seen ? loss / (double)(seen * r->t.label_tokens) : NAN;
}

/* A validation macro-F1 above the best so far (the first one counts; ties
 * keep the earlier step) makes the parameters the best. Returns 1 then. */
int keep_best(struct run *r)
{
	struct train *t = &r->t;
	if (isnan(r->val_f1) || (t->best_step && !(r->val_f1 > t->best_val_f1)))
		return 0;
	t->best_step = t->step;
	t->best_val_f1 = r->val_f1;
	t->best_val_acc = r->val_acc;
	if (!r->best)
		r->best = xmalloc(r->m.n_params * sizeof *r->best);
	memcpy(r->best, r->m.params_mem, r->m.n_params * sizeof *r->best);
	return 1;
}

/* The classifier's validation: the predictor (with no more input rows per
 * forward pass than a training micro-batch, as far as one flow allows) and
 * its buffers. */
void setup_classifier(struct run *r)
{
	char err[256];
	size_t B = (size_t)r->t.batch;
	int rows = clf_rows_per_flow(&r->map), per_pass = (int)B / rows;
	if (clf_init(&r->clf, &r->m, &r->map, per_pass > 0 ? per_pass : 1, err, sizeof err) < 0)
		errx(EX_DATAERR, "%s: %s", r->o.finetune ? r->o.finetune : r->o.resume ?
			r->o.resume : "the model", err);
	scores_init(&r->scores, r->map.n, 0);
	r->probs = xcalloc(B * r->map.n, sizeof *r->probs);
	r->bflow = xcalloc(B, sizeof *r->bflow);
	r->blen = xcalloc(B, sizeof *r->blen);
	r->blab = xcalloc(B, sizeof *r->blab);
}
