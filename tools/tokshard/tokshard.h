/* tokshard.h: the parts of tokshard (private to tools/tokshard): the data
 * set read from the token records (tokshard.c), the selection and split of
 * its flows (split.c), the shards and tables written (write.c), and the
 * summary and --dump (summary.c). */
#ifndef TGPT_TOKSHARD_H
#define TGPT_TOKSHARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "intern.h"
#include "../tgpt/shard.h"

#define NONE INTERN_NONE /* no label, no key */

struct options {
	const char *outdir;
	uint64_t share[SHARD_SPLITS];
	uint32_t context;
	enum shard_long long_mode;
	enum shard_group group;
	uint64_t seed;
	uint64_t max_per_source_label; /* 0: no cap */
	uint64_t min_label_flows;      /* 0: every label */
	int dedup;
	int labelled_only;
	int quiet, dump;
};

/* ------------------------------------------------------------ the data set */

/* Flows that must land in one split: one source capture (or one flow). */
struct group {
	uint32_t key;     /* id in dataset.keys, NONE for a flow without a source */
	uint64_t ordinal; /* input position of its first flow */
	uint64_t flows, tokens;
	uint32_t label;   /* most frequent label of its flows (final id or NONE) */
	enum shard_split split;
};

/* One stored sequence (a whole flow, its cut head, or one window): len
 * tokens from token at of the spill file. */
struct item {
	uint64_t at;
	uint32_t group, label, len;
};

/* One stored flow: its group, label, where it came from (for the selection
 * and split.tsv) and its items, which follow those of the flow before. */
struct flow_ref {
	uint32_t group, label;
	uint32_t source;   /* id in dataset.sources, NONE without one */
	uint32_t n_items;
	uint64_t id;       /* the record's "id" */
	size_t first_item;
	int dropped;       /* by the selection */
};

struct dataset {
	FILE *spill;      /* tokens of every item, in input order, little-endian */
	const char *dir;  /* where the spill file is, for messages */
	struct intern labels, keys, sources; /* strings interned in order of sight */
	struct intern seen;     /* --dedup: a 128-bit digest of every flow kept */
	uint32_t *group_of_key; /* key id -> group; every key has one */
	size_t group_of_key_cap, n_keyed;
	struct group *groups;
	size_t n_groups, groups_cap;
	struct item *items;
	size_t n_items, items_cap;
	struct flow_ref *flows;
	size_t n_flows, flows_cap;
	uint32_t *label_final; /* label id in order of sight -> id in sorted order */
	uint32_t *label_seen;  /* the reverse */
	size_t n_labels;       /* labels kept (all but those of --min-label-flows) */
	uint8_t *label_dropped; /* per label in order of sight: by --min-label-flows */
	uint64_t *label_flows;  /* per label in order of sight: flows before that */
	uint64_t spilled;      /* tokens in the spill file */
	char *keybuf;
	size_t keybuf_cap;
	uint64_t read, tokens_read, tokens_kept;
	uint64_t empty, cut, windowed, dropped, unsourced;
	uint64_t duplicates, unlabelled_out, over_cap, rare_flows, rare_labels; /* the selection */
};

/* split.c: the selection after --labelled-only (the cap per source and
 * label, then the labels with too few flows left); label ids in byte order
 * of the labels; each group's flow count and label; and the split of each
 * group (returns the groups in label and key order). */
void select_flows(struct dataset *d, const struct options *o);
void number_labels(struct dataset *d);
void label_groups(struct dataset *d);
uint32_t *assign_splits(struct dataset *d, const struct options *o);
/* The label of a final id. */
const struct interned *label_at(const struct dataset *d, uint32_t final);

/* write.c: the three shards, labels.tsv, split.tsv and groups.tsv in the
 * output directory, renamed into place; after a failed run (status not 0)
 * kept apart as FILE.partial, the old files left as they were. DIR/NAME. */
void write_shards(const struct dataset *d, const struct options *o, int status);
void write_labels_tsv(const struct dataset *d, const struct options *o, int status);
void write_split_tsv(const struct dataset *d, const struct options *o, int status);
void write_groups_tsv(const struct dataset *d, const struct options *o, const uint32_t *order,
		      int status);
char *join_path(const char *dir, const char *name);

/* summary.c: the table and warnings on stderr; --dump of shards to stdout
 * (returns the exit status). */
void summary(const struct dataset *d, const struct options *o);
int dump(int n, char **paths);

#endif
