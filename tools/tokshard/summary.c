/* summary.c: tokshard's summary on stderr (flows, sequences and tokens per
 * split and label; what was cut, dropped or left out) and --dump, a shard
 * as text. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tokshard.h"

enum { C_GROUPS, C_FLOWS, C_SEQS, C_TOKENS, C_N };

static void print_row(const char *split, const char *label, size_t label_len, const uint64_t *c)
{
	fprintf(stderr, "%-6s %-20.*s %8" PRIu64 " %10" PRIu64 " %10" PRIu64 " %14" PRIu64 "\n",
		split, (int)label_len, label, c[C_GROUPS], c[C_FLOWS], c[C_SEQS], c[C_TOKENS]);
}

/* Per split and label: groups, flows, stored sequences and tokens. */
static void print_table(const struct dataset *d)
{
	size_t rows = d->n_labels + 1; /* the last row: unlabelled */
	uint64_t *c = xcalloc(SHARD_SPLITS * rows * C_N, sizeof *c);
#define CELL(s, l, k) c[((s) * rows + ((l) == NONE ? rows - 1 : (l))) * C_N + (k)]
	for (size_t i = 0; i < d->n_groups; i++)
		if (d->groups[i].flows)
			CELL(d->groups[i].split, d->groups[i].label, C_GROUPS)++;
	for (size_t i = 0; i < d->n_flows; i++)
		CELL(d->groups[d->flows[i].group].split, d->flows[i].label, C_FLOWS)++;
	for (size_t i = 0; i < d->n_items; i++) {
		CELL(d->groups[d->items[i].group].split, d->items[i].label, C_SEQS)++;
		CELL(d->groups[d->items[i].group].split, d->items[i].label, C_TOKENS) += d->items[i].len;
	}
	fprintf(stderr, "%-6s %-20s %8s %10s %10s %14s\n", "split", "label", "groups", "flows",
		"sequences", "tokens");
	for (int s = 0; s < SHARD_SPLITS; s++) {
		uint64_t total[C_N] = { 0 };
		for (size_t l = 0; l < rows; l++) {
			uint64_t *row = &c[(s * rows + l) * C_N];
			for (int k = 0; k < C_N; k++)
				total[k] += row[k];
			if (l < rows - 1) {
				const struct interned *name = label_at(d, (uint32_t)l);
				print_row(shard_split_names[s], name->s, name->len, row);
			} else if (row[C_FLOWS] || row[C_GROUPS]) {
				print_row(shard_split_names[s], "(unlabelled)", 12, row);
			}
		}
		print_row(shard_split_names[s], "(all)", 5, total);
	}
#undef CELL
	free(c);
}

/* A split with a share but no flow: too few groups for the shares. */
static void warn_empty_splits(const struct dataset *d, const struct options *o)
{
	uint64_t flows[SHARD_SPLITS] = { 0 }, groups = 0;
	for (size_t i = 0; i < d->n_groups; i++)
		if (d->groups[i].flows) {
			flows[d->groups[i].split] += d->groups[i].flows;
			groups++;
		}
	for (int s = 0; s < SHARD_SPLITS; s++)
		if (o->share[s] && !flows[s] && d->n_flows)
			warnx("%s: no flows: %" PRIu64 " %s%s too few for its share%s", shard_split_names[s],
			      groups, o->group == SHARD_GROUP_SOURCE ? "source" : "flow",
			      groups == 1 ? " is" : "s are",
			      o->group == SHARD_GROUP_SOURCE ? " (--group flow splits flow by flow)" : "");
}

/* The labels --min-label-flows left out, with their flows. */
static void warn_rare_labels(const struct dataset *d, const struct options *o)
{
	size_t len = 0, cap = 0;
	char *list = NULL;
	for (size_t i = 0; i < d->labels.n; i++) {
		if (!d->label_dropped[i])
			continue;
		const struct interned *l = &d->labels.e[i];
		size_t need = len + l->len + 32;
		grow((void **)&list, &cap, need, 1);
		len += (size_t)snprintf(list + len, need - len, "%s%s %" PRIu64, len ? ", " : "",
					l->s, d->label_flows[i]);
	}
	warnx("%" PRIu64 " %s with fewer than %" PRIu64 " flows left out with their %" PRIu64
	      " %s (--min-label-flows): %s", d->rare_labels, plural(d->rare_labels, "label", "labels"),
	      o->min_label_flows, d->rare_flows, plural(d->rare_flows, "flow", "flows"), list);
	free(list);
}

void summary(const struct dataset *d, const struct options *o)
{
	if (o->quiet)
		return;
	print_table(d);
	if (!d->read)
		warnx("no flows read: the shards are empty");
	if (d->empty)
		warnx("%" PRIu64 " %s without a packet (no START token) left out", d->empty,
		      plural(d->empty, "record", "records"));
	if (d->cut)
		warnx("%" PRIu64 " %s longer than the context of %u cut at a packet boundary",
		      d->cut, plural(d->cut, "flow", "flows"), o->context);
	if (d->windowed)
		warnx("%" PRIu64 " %s longer than the context of %u stored in windows",
		      d->windowed, plural(d->windowed, "flow", "flows"), o->context);
	if (d->dropped)
		warnx("%" PRIu64 " %s longer than the context of %u dropped", d->dropped,
		      plural(d->dropped, "flow", "flows"), o->context);
	if (d->duplicates)
		warnx("%" PRIu64 " %s left out: the same tokens as a flow before (--dedup)",
		      d->duplicates, plural(d->duplicates, "flow", "flows"));
	if (d->unlabelled_out)
		warnx("%" PRIu64 " %s without a label left out (--labelled-only)", d->unlabelled_out,
		      plural(d->unlabelled_out, "flow", "flows"));
	if (d->over_cap)
		warnx("%" PRIu64 " %s left out: over %" PRIu64 " of one label from one source "
		      "(--max-flows-per-source-label)", d->over_cap, plural(d->over_cap, "flow", "flows"),
		      o->max_per_source_label);
	if (d->rare_labels)
		warn_rare_labels(d, o);
	if (d->unsourced && o->group == SHARD_GROUP_SOURCE)
		warnx("%" PRIu64 " %s without a \"source\" (flow2tok --no-side?): each is a group "
		      "of its own, so their captures may straddle splits", d->unsourced,
		      plural(d->unsourced, "flow", "flows"));
	warnx("%" PRIu64 " of %" PRIu64 " tokens stored", d->tokens_kept, d->tokens_read);
	warn_empty_splits(d, o);
}

/* ------------------------------------------------------------ --dump */

static void dump_shard(const struct shard *s, const char *path)
{
	const struct shard_header *h = &s->h;
	printf("shard %s\nversion %u\ntokenizer %s %u\nvocab %u\ncontext %u\nsplit %s\n", path,
	       h->version, h->tokenizer, h->tokenizer_version, h->vocab, h->context, h->split);
	printf("long %s\ngroup %s\nseed %" PRIu64 "\nflows %" PRIu64 "\ntokens %" PRIu64 "\n",
	       h->long_mode < 3 ? shard_long_names[h->long_mode] : "?",
	       h->group < 2 ? shard_group_names[h->group] : "?", h->seed, h->n_flows, h->n_tokens);
	printf("labels %u\n", h->n_labels);
	for (uint32_t i = 0; i < h->n_labels; i++)
		printf("label %u %s\n", i, shard_label(s, (uint16_t)i));
	for (uint64_t i = 0; i < shard_count(s); i++) {
		const uint16_t *tok;
		size_t len;
		uint16_t label;
		shard_flow(s, i, &tok, &len, &label);
		if (label == SHARD_NO_LABEL)
			printf("flow %" PRIu64 " - %zu :", i, len);
		else
			printf("flow %" PRIu64 " %u %zu :", i, label, len);
		for (size_t k = 0; k < len; k++)
			printf(" %u", tok[k]);
		putchar('\n');
	}
}

int dump(int n, char **paths)
{
	int status = 0;
	for (int i = 0; i < n; i++) {
		struct shard s;
		char why[512];
		int rc = shard_open(paths[i], &s, why, sizeof why);
		if (rc) {
			warnx("%s", why);
			status = status ? status : rc;
			continue;
		}
		dump_shard(&s, paths[i]);
		shard_close(&s);
	}
	cli_close_out(stdout, "stdout");
	return status;
}
