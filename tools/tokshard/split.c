/* split.c: tokshard's selection of flows (a capped draw per source and
 * label, labels with too few flows left out) and their split: groups
 * (captures, or flows) handed to train, val and test within each label by
 * a seeded shuffle, each to the split furthest below its share. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "hash.h"
#include "tokshard.h"

static const struct dataset *sort_data; /* for the qsort comparators */

static int cmp_label_text(const void *a, const void *b)
{
	const struct interned *x = &sort_data->labels.e[*(const uint32_t *)a];
	const struct interned *y = &sort_data->labels.e[*(const uint32_t *)b];
	return strcmp(x->s, y->s);
}

/* Label ids in byte order of the labels, so they do not depend on the order
 * of the input; the labels the selection left out get none. */
void number_labels(struct dataset *d)
{
	size_t n = 0;
	uint32_t *order = xcalloc(d->labels.n + 1, sizeof *order);
	for (size_t i = 0; i < d->labels.n; i++)
		if (!d->label_dropped[i])
			order[n++] = (uint32_t)i;
	sort_data = d;
	qsort(order, n, sizeof *order, cmp_label_text);
	d->label_final = xcalloc(d->labels.n + 1, sizeof *d->label_final);
	for (size_t i = 0; i < d->labels.n; i++)
		d->label_final[i] = NONE;
	for (size_t i = 0; i < n; i++)
		d->label_final[order[i]] = (uint32_t)i;
	d->label_seen = order;
	d->n_labels = n;
	for (size_t i = 0; i < d->n_items; i++)
		if (d->items[i].label != NONE)
			d->items[i].label = d->label_final[d->items[i].label];
	for (size_t i = 0; i < d->n_flows; i++)
		if (d->flows[i].label != NONE)
			d->flows[i].label = d->label_final[d->flows[i].label];
}

/* The label of a final id (labels are interned in order of sight). */
const struct interned *label_at(const struct dataset *d, uint32_t final)
{
	return &d->labels.e[d->label_seen[final]];
}

static int cmp_flow_ref(const void *a, const void *b)
{
	const struct flow_ref *x = a, *y = b;
	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	return x->label < y->label ? -1 : x->label > y->label;
}

/* Each group's flow count and most frequent label (ties: the smallest id,
 * labelled before unlabelled). */
void label_groups(struct dataset *d)
{
	struct flow_ref *f = xcalloc(d->n_flows, sizeof *f);
	if (d->n_flows) /* d->flows is NULL before the first */
		memcpy(f, d->flows, d->n_flows * sizeof *f);
	qsort(f, d->n_flows, sizeof *f, cmp_flow_ref);
	uint64_t best = 0; /* flows of the group's label so far */
	for (size_t i = 0; i < d->n_flows;) {
		size_t j = i;
		while (j < d->n_flows && f[j].group == f[i].group && f[j].label == f[i].label)
			j++;
		struct group *g = &d->groups[f[i].group];
		if (g->flows == 0 || j - i > best) { /* first run of the group, or a longer one */
			best = j - i;
			g->label = f[i].label;
		}
		g->flows += j - i;
		i = j;
	}
	free(f);
	for (size_t i = 0; i < d->n_items; i++)
		d->groups[d->items[i].group].tokens += d->items[i].len;
}

/* Groups by label, then by key (anonymous groups last, in input order). */
static int cmp_group(const void *a, const void *b)
{
	const struct group *x = &sort_data->groups[*(const uint32_t *)a];
	const struct group *y = &sort_data->groups[*(const uint32_t *)b];
	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	if ((x->key == NONE) != (y->key == NONE))
		return x->key == NONE ? 1 : -1;
	if (x->key == NONE)
		return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
	const struct interned *p = &sort_data->keys.e[x->key], *q = &sort_data->keys.e[y->key];
	size_t n = p->len < q->len ? p->len : q->len;
	int c = memcmp(p->s, q->s, n);
	return c ? c : p->len < q->len ? -1 : p->len > q->len;
}

/* A seeded Fisher-Yates shuffle. */
static void shuffle_u32(uint32_t *a, size_t n, uint64_t *state)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)splitmix64_below(state, i);
		uint32_t tmp = a[i - 1];
		a[i - 1] = a[j];
		a[j] = tmp;
	}
}

/* The split furthest below its share once a group of size flows joins. */
static enum shard_split neediest_split(const uint64_t share[], uint64_t total_share,
				       const uint64_t assigned[], uint64_t size)
{
	uint64_t after = size;
	for (int s = 0; s < SHARD_SPLITS; s++)
		after += assigned[s];
	int best = -1;
	int64_t best_need = 0;
	for (int s = 0; s < SHARD_SPLITS; s++) {
		if (!share[s])
			continue;
		/* share/total * after - assigned, scaled by total to stay exact. */
		int64_t need = (int64_t)(share[s] * after) - (int64_t)(total_share * assigned[s]);
		if (best < 0 || need > best_need)
			best = s, best_need = need;
	}
	return (enum shard_split)best;
}

/* Within each label, shuffles the groups (seeded by --seed and the label)
 * and hands each to the split furthest below its share of that label's
 * flows. Returns the groups in label and key order. */
uint32_t *assign_splits(struct dataset *d, const struct options *o)
{
	uint32_t *order = xcalloc(d->n_groups, sizeof *order);
	for (size_t i = 0; i < d->n_groups; i++)
		order[i] = (uint32_t)i;
	sort_data = d;
	qsort(order, d->n_groups, sizeof *order, cmp_group);
	uint32_t *shuffled = xcalloc(d->n_groups, sizeof *shuffled);
	memcpy(shuffled, order, d->n_groups * sizeof *order);
	uint64_t total_share = o->share[0] + o->share[1] + o->share[2];
	for (size_t a = 0; a < d->n_groups;) {
		uint32_t label = d->groups[shuffled[a]].label;
		size_t b = a;
		while (b < d->n_groups && d->groups[shuffled[b]].label == label)
			b++;
		const struct interned *name = label == NONE ? NULL : label_at(d, label);
		uint64_t state = o->seed ^ (name ? fnv1a(name->s, name->len) : 0);
		shuffle_u32(shuffled + a, b - a, &state);
		uint64_t assigned[SHARD_SPLITS] = { 0 };
		for (size_t i = a; i < b; i++) {
			struct group *g = &d->groups[shuffled[i]];
			g->split = neediest_split(o->share, total_share, assigned, g->flows);
			assigned[g->split] += g->flows;
		}
		a = b;
	}
	free(shuffled);
	return order;
}

/* ------------------------------------------------------------ selection */

/* Flows by source, label (ids in order of sight: only runs matter), id and
 * input position: the order within a run does not depend on the input's. */
static int cmp_source_label(const void *a, const void *b)
{
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	const struct flow_ref *x = &sort_data->flows[i], *y = &sort_data->flows[j];
	if (x->source != y->source)
		return x->source < y->source ? -1 : 1;
	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return i < j ? -1 : i > j;
}

static uint64_t str_seed(const struct intern *t, uint32_t id)
{
	return id == NONE ? 0 : fnv1a(t->e[id].s, t->e[id].len);
}

/* --max-flows-per-source-label: of each source's flows of one label, a
 * seeded draw of at most max stays. Flows without a source are each a
 * capture of their own: never capped. */
static void cap_per_source_label(struct dataset *d, const struct options *o)
{
	uint64_t max = o->max_per_source_label;
	uint32_t *idx = xcalloc(d->n_flows + 1, sizeof *idx);
	for (size_t i = 0; i < d->n_flows; i++)
		idx[i] = (uint32_t)i;
	sort_data = d;
	qsort(idx, d->n_flows, sizeof *idx, cmp_source_label);
	for (size_t a = 0, b; a < d->n_flows; a = b) {
		const struct flow_ref *first = &d->flows[idx[a]];
		for (b = a + 1; b < d->n_flows && d->flows[idx[b]].source == first->source &&
				d->flows[idx[b]].label == first->label; b++)
			;
		if (first->source == NONE || b - a <= max)
			continue;
		/* seeded by the names, so that other captures do not change the draw */
		uint64_t state = o->seed ^ str_seed(&d->sources, first->source) ^
				 mix64(str_seed(&d->labels, first->label));
		shuffle_u32(idx + a, b - a, &state);
		for (size_t i = a + max; i < b; i++)
			d->flows[idx[i]].dropped = 1;
		d->over_cap += b - a - max;
	}
	free(idx);
}

/* --min-label-flows: labels with fewer flows left are left out, flows and
 * all (unlabelled flows are not counted nor left out). */
static void drop_rare_labels(struct dataset *d, const struct options *o)
{
	for (size_t i = 0; i < d->n_flows; i++)
		if (!d->flows[i].dropped && d->flows[i].label != NONE)
			d->label_flows[d->flows[i].label]++;
	for (size_t l = 0; l < d->labels.n; l++)
		if (d->label_flows[l] < o->min_label_flows) {
			d->label_dropped[l] = 1;
			d->rare_labels++;
		}
	for (size_t i = 0; i < d->n_flows; i++) {
		struct flow_ref *f = &d->flows[i];
		if (!f->dropped && f->label != NONE && d->label_dropped[f->label]) {
			f->dropped = 1;
			d->rare_flows++;
		}
	}
}

/* Forgets the dropped flows and their items (their tokens stay in the
 * spill file, unread). */
static void compact(struct dataset *d)
{
	size_t nf = 0, ni = 0;
	for (size_t i = 0; i < d->n_flows; i++) {
		struct flow_ref f = d->flows[i];
		if (f.dropped) {
			for (size_t k = 0; k < f.n_items; k++)
				d->tokens_kept -= d->items[f.first_item + k].len;
			continue;
		}
		memmove(&d->items[ni], &d->items[f.first_item], f.n_items * sizeof *d->items);
		f.first_item = ni;
		ni += f.n_items;
		d->flows[nf++] = f;
	}
	d->n_flows = nf;
	d->n_items = ni;
}

/* The selection after --labelled-only (done while reading): the cap per
 * source and label, then the labels with too few flows left. */
void select_flows(struct dataset *d, const struct options *o)
{
	d->label_dropped = xcalloc(d->labels.n + 1, sizeof *d->label_dropped);
	d->label_flows = xcalloc(d->labels.n + 1, sizeof *d->label_flows);
	if (o->max_per_source_label)
		cap_per_source_label(d, o);
	if (o->min_label_flows)
		drop_rare_labels(d, o);
	compact(d);
}
