/* tokshard: token streams (flow2tok) to the train, validation and test shard
 * files that tgpt-train maps (tgpt-shard(5)). Flows are split by capture (or
 * flow by flow), stratified by label with a seeded shuffle, and cut or
 * windowed at packet boundaries to fit the model's context. Flows can be
 * selected first: no duplicates, labelled ones only, a few per capture and
 * label, labels with enough flows. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "cli.h"
#include "record.h"
#include "stream.h"
#include "../tgpt/shard.h"

static const char usage[] =
	"usage: tokshard -o DIR [-q] [--context N] [--group source|flow] [--long cut|window|drop]\n"
	"                [--seed N] [--split TRAIN/VAL/TEST] [--dedup] [--labelled-only]\n"
	"                [--max-flows-per-source-label N] [--min-label-flows N] [FILE ...]\n"
	"       tokshard --dump SHARD ...\n"
	"Reads token records (flow2tok) from FILEs or stdin ('-'), splits the flows\n"
	"into DIR/train.shard, DIR/val.shard and DIR/test.shard (tgpt-shard(5)) and\n"
	"writes DIR/labels.tsv, DIR/groups.tsv and DIR/split.tsv; prints the counts\n"
	"on stderr.\n"
	"  -o, --output DIR      directory of the shards (made if missing)\n"
	"      --context N       most tokens of one stored flow (default 12032)\n"
	"      --dump            print the shards named as text: header, labels, flows\n"
	"      --group KEY       keep in one split the flows of one source (default)\n"
	"                        capture, or split flow by flow (flow)\n"
	"      --long MODE       flows longer than the context: cut (default) keeps the\n"
	"                        packets that fit, window stores them all in windows,\n"
	"                        drop leaves the flow out\n"
	"      --seed N          seed of the shuffle that assigns groups (default 1)\n"
	"      --split A/B/C     whole-number shares of train/val/test (default 98/1/1)\n"
	"Selection, in this order, before the split:\n"
	"      --dedup           leave out a flow whose tokens are those of a flow read\n"
	"                        before (the same traffic in two captures)\n"
	"      --labelled-only   leave out the flows without a label\n"
	"      --max-flows-per-source-label N\n"
	"                        keep at most N flows of one label from one source\n"
	"                        (seeded draw), so big captures do not dominate\n"
	"      --min-label-flows N  leave out labels with fewer than N flows left\n"
	"  -q, --quiet           no progress, no table\n"
	"  -h, --help            this help\n"
	"  -V, --version         version and libraries\n";

#define MIN_CONTEXT (TOK_PACKET_OVERHEAD + 2) /* one byte of one packet and END */
#define MAX_CONTEXT (1u << 24)
#define MAX_SHARE 1000000u
#define MAX_LABEL_LEN 4096
#define NONE UINT32_MAX /* no label, no key */

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

/* ------------------------------------------------------------ string table */

/* Strings interned to dense ids, in order of first sight (labels, sources). */
struct str {
	char *s; /* NUL-terminated copy */
	size_t len;
	uint64_t hash;
};
struct strtab {
	struct str *e;
	size_t n, cap;
	uint32_t *slot; /* id + 1, 0 when empty; open addressing */
	size_t nslot;
};

static uint64_t fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3u;
	return h;
}

static void strtab_rehash(struct strtab *t, size_t nslot)
{
	free(t->slot);
	t->slot = xcalloc(nslot, sizeof *t->slot);
	t->nslot = nslot;
	for (size_t id = 0; id < t->n; id++) {
		size_t i = t->e[id].hash & (nslot - 1);
		while (t->slot[i])
			i = (i + 1) & (nslot - 1);
		t->slot[i] = (uint32_t)id + 1;
	}
}

/* The id of a string, or NONE. */
static uint32_t strtab_find(const struct strtab *t, const char *s, size_t len)
{
	if (!t->nslot)
		return NONE;
	uint64_t h = fnv1a(s, len);
	for (size_t i = h & (t->nslot - 1); t->slot[i]; i = (i + 1) & (t->nslot - 1)) {
		const struct str *e = &t->e[t->slot[i] - 1];
		if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
			return t->slot[i] - 1;
	}
	return NONE;
}

static uint32_t strtab_intern(struct strtab *t, const char *s, size_t len)
{
	if ((t->n + 1) * 2 > t->nslot)
		strtab_rehash(t, t->nslot ? t->nslot * 2 : 64);
	uint64_t h = fnv1a(s, len);
	size_t i = h & (t->nslot - 1);
	for (; t->slot[i]; i = (i + 1) & (t->nslot - 1)) {
		const struct str *e = &t->e[t->slot[i] - 1];
		if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
			return t->slot[i] - 1;
	}
	if (t->n >= UINT32_MAX - 1)
		errx(EX_SOFTWARE, "more than %u distinct strings", UINT32_MAX - 1);
	grow((void **)&t->e, &t->cap, t->n + 1, sizeof *t->e);
	struct str *e = &t->e[t->n];
	e->s = xmalloc(len + 1);
	memcpy(e->s, s, len);
	e->s[len] = 0;
	e->len = len;
	e->hash = h;
	t->slot[i] = (uint32_t)++t->n;
	return (uint32_t)t->n - 1;
}

static void strtab_free(struct strtab *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->e[i].s);
	free(t->e);
	free(t->slot);
	memset(t, 0, sizeof *t);
}

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
	struct strtab labels, keys, sources;
	struct strtab seen;     /* --dedup: a 128-bit digest of every flow kept */
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

/* The group of a record under --group; made on first sight. */
static uint32_t group_for(struct dataset *d, const struct tok_rec *t, enum shard_group mode)
{
	uint32_t key = NONE;
	if (t->source && mode == SHARD_GROUP_SOURCE) {
		key = strtab_intern(&d->keys, t->source, t->source_len);
	} else if (t->source) {
		size_t need = t->source_len + 24;
		grow((void **)&d->keybuf, &d->keybuf_cap, need, 1);
		int n = snprintf(d->keybuf, need, "%.*s#%" PRIu64, (int)t->source_len, t->source, t->id);
		key = strtab_intern(&d->keys, d->keybuf, (size_t)n);
	} else {
		d->unsourced++;
	}
	if (key != NONE && key < d->n_keyed)
		return d->group_of_key[key];
	if (d->n_groups >= UINT32_MAX - 1)
		errx(EX_SOFTWARE, "more than %u groups", UINT32_MAX - 1);
	grow((void **)&d->groups, &d->groups_cap, d->n_groups + 1, sizeof *d->groups);
	struct group *g = &d->groups[d->n_groups];
	memset(g, 0, sizeof *g);
	g->key = key;
	g->ordinal = d->read;
	g->label = NONE;
	if (key != NONE) {
		grow((void **)&d->group_of_key, &d->group_of_key_cap, key + 1,
		     sizeof *d->group_of_key);
		d->group_of_key[key] = (uint32_t)d->n_groups;
		d->n_keyed = key + 1;
	}
	return (uint32_t)d->n_groups++;
}

/* ------------------------------------------------------------ cutting */

/* A flow's tokens as units: each packet from its START to the next (tokens
 * before the first START belong to the first packet), then the closing END
 * as a unit of its own that never opens a window. */
struct units {
	const struct tok_rec *t;
	size_t body; /* tokens before the closing END (all when there is none) */
};

static size_t unit_end(const struct units *u, size_t pos)
{
	size_t i = pos + 1;
	while (i < u->body && tok_at(u->t, i) != TOK_START)
		i++;
	return i < u->body ? i : u->body;
}

/* The longest run of whole units from pos within the context, the closing
 * END included when it fits; a first unit longer than the context is cut at
 * the context. *next is where the next window starts. */
static size_t take_units(const struct units *u, size_t pos, size_t context, size_t *next)
{
	size_t end = pos;
	for (;;) {
		size_t e = unit_end(u, end);
		if (e - pos > context)
			break;
		end = e;
		if (end >= u->body)
			break;
	}
	if (end == pos) {
		*next = unit_end(u, pos);
		return context;
	}
	*next = end;
	if (end == u->body && u->t->n_tokens - pos <= context)
		end = u->t->n_tokens;
	return end - pos;
}

static void add_item(struct dataset *d, const struct tok_rec *t, size_t pos, size_t len,
		     uint32_t group, uint32_t label)
{
	if (fwrite(t->tokens_le + 2 * pos, 2, len, d->spill) != len)
		err(EX_IOERR, "%s: temporary file", d->dir);
	grow((void **)&d->items, &d->items_cap, d->n_items + 1, sizeof *d->items);
	d->items[d->n_items++] = (struct item){ d->spilled, group, label, (uint32_t)len };
	d->spilled += len;
	d->tokens_kept += len;
}

/* Stores the record as one or more items; returns how many. */
static size_t store_flow(struct dataset *d, const struct tok_rec *t, uint32_t group, uint32_t label,
			 const struct options *o)
{
	size_t n = t->n_tokens;
	if (n <= o->context) {
		add_item(d, t, 0, n, group, label);
		return 1;
	}
	if (o->long_mode == SHARD_LONG_DROP) {
		d->dropped++;
		return 0;
	}
	struct units u = { t, tok_at(t, n - 1) == TOK_END ? n - 1 : n };
	size_t pos = 0, next, stored = 0;
	do {
		size_t len = take_units(&u, pos, o->context, &next);
		add_item(d, t, pos, len, group, label);
		stored++;
		pos = next;
	} while (o->long_mode == SHARD_LONG_WINDOW && pos < u.body);
	if (o->long_mode == SHARD_LONG_WINDOW)
		d->windowed++;
	else
		d->cut++;
	return stored;
}

/* ------------------------------------------------------------ reading */

static int has_packet(const struct tok_rec *t)
{
	for (size_t i = 0; i < t->n_tokens; i++)
		if (tok_at(t, i) == TOK_START)
			return 1;
	return 0;
}

/* Why the record cannot be stored, or NULL. */
static const char *record_problem(const struct tok_rec *t, const struct dataset *d, char *why,
				  size_t n)
{
	for (size_t i = 0; i < t->n_tokens; i++)
		if (tok_at(t, i) >= TOK_VOCAB) {
			snprintf(why, n, "token %zu is %u, outside the vocabulary of %d", i,
				 tok_at(t, i), TOK_VOCAB);
			return why;
		}
	if (t->label && memchr(t->label, 0, t->label_len))
		return "label holds a NUL byte";
	if (t->label && t->label_len > MAX_LABEL_LEN) {
		snprintf(why, n, "label of %zu bytes, more than %d", t->label_len, MAX_LABEL_LEN);
		return why;
	}
	/* Only a label not seen yet can overflow the table. */
	if (t->label && t->label_len && d->labels.n >= SHARD_MAX_LABELS &&
	    strtab_find(&d->labels, t->label, t->label_len) == NONE) {
		snprintf(why, n, "more than %u distinct labels", SHARD_MAX_LABELS);
		return why;
	}
	return NULL;
}

/* --dedup: 1 when a flow of the same tokens was read before (two
 * independent 64-bit hashes of them stand for the tokens: a false match
 * wants a collision of both). */
static int seen_before(struct dataset *d, const struct tok_rec *t)
{
	size_t n = 2 * t->n_tokens;
	uint64_t digest[2] = { fnv1a(t->tokens_le, n), n };
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;
		memcpy(&w, t->tokens_le + i, n - i < 8 ? n - i : 8);
		digest[1] = mix64(digest[1] ^ w) + i;
	}
	size_t before = d->seen.n;
	strtab_intern(&d->seen, (const char *)digest, sizeof digest);
	return d->seen.n == before;
}

static void add_record(struct dataset *d, const struct tok_rec *t, const struct options *o)
{
	d->tokens_read += t->n_tokens;
	if (!has_packet(t)) {
		d->empty++;
		d->read++;
		return;
	}
	if (o->dedup && seen_before(d, t)) {
		d->duplicates++;
		d->read++;
		return;
	}
	int labelled = t->label && t->label_len;
	if (!labelled && o->labelled_only) {
		d->unlabelled_out++;
		d->read++;
		return;
	}
	uint32_t label = labelled ? strtab_intern(&d->labels, t->label, t->label_len) : NONE;
	uint32_t source = t->source ? strtab_intern(&d->sources, t->source, t->source_len) : NONE;
	uint32_t group = group_for(d, t, o->group);
	d->read++;
	size_t first = d->n_items, stored = store_flow(d, t, group, label, o);
	if (stored == 0)
		return;
	if (d->n_flows >= UINT32_MAX - 1)
		errx(EX_SOFTWARE, "more than %u flows", UINT32_MAX - 1);
	grow((void **)&d->flows, &d->flows_cap, d->n_flows + 1, sizeof *d->flows);
	d->flows[d->n_flows++] = (struct flow_ref){ group, label, source, (uint32_t)stored,
						    t->id, first, 0 };
}

/* Reads every record of one input; returns 0, or an exit status. */
static int read_input(const char *path, struct dataset *d, const struct options *o,
		      struct progress *prog)
{
	struct rec_reader r;
	if (rec_open(&r, path) < 0) {
		warn("%s", path);
		return EX_NOINPUT;
	}
	int status = 0, got;
	char why[128];
	while ((got = rec_next(&r, REC_TOK)) == REC_TOK) {
		const char *problem = record_problem(&r.tok, d, why, sizeof why);
		if (problem) {
			warnx("%s: record at byte offset %" PRIu64 ": %s", r.mp.name,
			      r.mp.record_offset, problem);
			status = EX_DATAERR;
			break;
		}
		add_record(d, &r.tok, o);
		progress_tick(prog, "%" PRIu64 " flows, %.1f M tokens", d->read,
			      (double)d->tokens_read / 1e6);
	}
	if (got < 0) {
		warnx("%s", r.error);
		status = EX_DATAERR;
	}
	rec_close(&r);
	return status;
}

/* ------------------------------------------------------------ splitting */

static const struct dataset *sort_data; /* for the qsort comparators */

static int cmp_label_text(const void *a, const void *b)
{
	const struct str *x = &sort_data->labels.e[*(const uint32_t *)a];
	const struct str *y = &sort_data->labels.e[*(const uint32_t *)b];
	return strcmp(x->s, y->s);
}

/* Label ids in byte order of the labels, so they do not depend on the order
 * of the input; the labels the selection left out get none. */
static void number_labels(struct dataset *d)
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
static const struct str *label_at(const struct dataset *d, uint32_t final)
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
static void label_groups(struct dataset *d)
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
	const struct str *p = &sort_data->keys.e[x->key], *q = &sort_data->keys.e[y->key];
	size_t n = p->len < q->len ? p->len : q->len;
	int c = memcmp(p->s, q->s, n);
	return c ? c : p->len < q->len ? -1 : p->len > q->len;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), without modulo bias. */
static uint64_t random_below(uint64_t *state, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
	do
		x = splitmix64(state);
	while (x >= limit);
	return x % n;
}

/* A seeded Fisher-Yates shuffle. */
static void shuffle_u32(uint32_t *a, size_t n, uint64_t *state)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)random_below(state, i);
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
static uint32_t *assign_splits(struct dataset *d, const struct options *o)
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
		const struct str *name = label == NONE ? NULL : label_at(d, label);
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

static uint64_t str_seed(const struct strtab *t, uint32_t id)
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
static void select_flows(struct dataset *d, const struct options *o)
{
	d->label_dropped = xcalloc(d->labels.n + 1, sizeof *d->label_dropped);
	d->label_flows = xcalloc(d->labels.n + 1, sizeof *d->label_flows);
	if (o->max_per_source_label)
		cap_per_source_label(d, o);
	if (o->min_label_flows)
		drop_rare_labels(d, o);
	compact(d);
}

/* ------------------------------------------------------------ writing */

struct out_shard {
	struct atomic_file a;
	char *path;
	struct shard_header h;
	uint64_t pos; /* bytes written */
};

/* Write errors stay in the stream's error flag until check_written. */
static void put_bytes(struct out_shard *s, const void *p, size_t n)
{
	if (n)
		fwrite(p, 1, n, s->a.f);
	s->pos += n;
}

static void put_zeros(struct out_shard *s, uint64_t to)
{
	static const uint8_t zeros[SHARD_ALIGN];
	while (s->pos < to)
		put_bytes(s, zeros, to - s->pos < sizeof zeros ? (size_t)(to - s->pos) : sizeof zeros);
}

static void put_u64(struct out_shard *s, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(s, b, 8);
}

static void put_u32(struct out_shard *s, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(s, b, 4);
}

static void put_u16(struct out_shard *s, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put_bytes(s, b, 2);
}

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* The header of one split's shard, with the section offsets. */
static void plan_shard(struct out_shard *s, const struct dataset *d, const struct options *o,
		       enum shard_split split, uint64_t label_bytes)
{
	struct shard_header *h = &s->h;
	memset(h, 0, sizeof *h);
	h->version = SHARD_VERSION;
	h->header_size = SHARD_HEADER_SIZE;
	snprintf(h->tokenizer, sizeof h->tokenizer, "%s", TOKENIZER_NAME);
	h->tokenizer_version = TOKENIZER_VERSION;
	h->vocab = TOK_VOCAB;
	h->context = o->context;
	h->long_mode = o->long_mode;
	snprintf(h->split, sizeof h->split, "%s", shard_split_names[split]);
	h->n_labels = (uint32_t)d->n_labels;
	h->group = o->group;
	h->seed = o->seed;
	for (size_t i = 0; i < d->n_items; i++)
		if (d->groups[d->items[i].group].split == split) {
			h->n_flows++;
			h->n_tokens += d->items[i].len;
		}
	h->labels_off = shard_align(SHARD_HEADER_SIZE);
	h->offsets_off = shard_align(h->labels_off + label_bytes);
	h->label_ids_off = shard_align(h->offsets_off + 8 * (h->n_flows + 1));
	h->tokens_off = shard_align(h->label_ids_off + 2 * h->n_flows);
	h->file_size = shard_align(h->tokens_off + 2 * h->n_tokens);
}

/* Header, label table, offsets and label ids: all but the tokens. */
static void write_index(struct out_shard *s, const struct dataset *d, enum shard_split split)
{
	uint8_t head[SHARD_HEADER_SIZE];
	shard_header_encode(&s->h, head);
	put_bytes(s, head, sizeof head);
	put_zeros(s, s->h.labels_off);
	uint32_t off = 0;
	put_u32(s, off);
	for (uint32_t i = 0; i < s->h.n_labels; i++) {
		off += (uint32_t)label_at(d, i)->len + 1;
		put_u32(s, off);
	}
	for (uint32_t i = 0; i < s->h.n_labels; i++) {
		const struct str *l = label_at(d, i);
		put_bytes(s, l->s, l->len + 1);
	}
	put_zeros(s, s->h.offsets_off);
	uint64_t at = 0;
	put_u64(s, at);
	for (size_t i = 0; i < d->n_items; i++)
		if (d->groups[d->items[i].group].split == split)
			put_u64(s, at += d->items[i].len);
	put_zeros(s, s->h.label_ids_off);
	for (size_t i = 0; i < d->n_items; i++)
		if (d->groups[d->items[i].group].split == split)
			put_u16(s, d->items[i].label == NONE ? SHARD_NO_LABEL : (uint16_t)d->items[i].label);
	put_zeros(s, s->h.tokens_off);
}

/* Copies every item's tokens from the spill file to its split's shard,
 * skipping those of the flows the selection left out. */
static void copy_tokens(struct out_shard out[], const struct dataset *d, uint32_t context)
{
	if (fflush(d->spill) != 0 || ferror(d->spill) || fseek(d->spill, 0, SEEK_SET) != 0)
		err(EX_IOERR, "%s: temporary file", d->dir);
	uint8_t *buf = xmalloc(2 * (size_t)context);
	uint64_t at = 0;
	for (size_t i = 0; i < d->n_items; i++) {
		const struct item *it = &d->items[i];
		if (it->at != at && fseeko(d->spill, (off_t)(2 * it->at), SEEK_SET) != 0)
			err(EX_IOERR, "%s: temporary file: seeking", d->dir);
		at = it->at + it->len;
		if (fread(buf, 2, it->len, d->spill) != it->len)
			err(EX_IOERR, "%s: temporary file: reading back", d->dir);
		put_bytes(&out[d->groups[it->group].split], buf, 2 * (size_t)it->len);
	}
	free(buf);
}

/* Shards not yet renamed into place, removed if we exit before. */
static struct out_shard *pending;

static void remove_pending(void)
{
	for (int s = 0; pending && s < SHARD_SPLITS; s++)
		atomic_abort(&pending[s].a);
}

/* Reads the written shard back with the trainer's reader before it replaces
 * the old one, so a shard that the reader would refuse is never installed. */
static void check_written(struct out_shard *s)
{
	if (fflush(s->a.f) != 0 || ferror(s->a.f))
		err(EX_IOERR, "%s", s->path);
	struct shard back;
	char why[512];
	if (shard_open(s->a.tmp, &back, why, sizeof why) < 0)
		errx(EX_SOFTWARE, "%s: the shard just written does not read back: %s", s->path, why);
	shard_close(&back);
}

static void write_shards(const struct dataset *d, const struct options *o)
{
	uint64_t label_bytes = 4 * ((uint64_t)d->n_labels + 1);
	for (uint32_t i = 0; i < d->n_labels; i++)
		label_bytes += label_at(d, i)->len + 1;
	static struct out_shard out[SHARD_SPLITS];
	pending = out;
	atexit(remove_pending);
	for (int s = 0; s < SHARD_SPLITS; s++) {
		char name[32];
		snprintf(name, sizeof name, "%s.shard", shard_split_names[s]);
		memset(&out[s], 0, sizeof out[s]);
		out[s].path = join_path(o->outdir, name);
		atomic_open(&out[s].a, out[s].path);
		plan_shard(&out[s], d, o, (enum shard_split)s, label_bytes);
		write_index(&out[s], d, (enum shard_split)s);
	}
	copy_tokens(out, d, o->context);
	for (int s = 0; s < SHARD_SPLITS; s++) {
		put_zeros(&out[s], out[s].h.file_size);
		check_written(&out[s]);
	}
	for (int s = 0; s < SHARD_SPLITS; s++) {
		atomic_commit(&out[s].a);
		free(out[s].path);
	}
	pending = NULL;
}

/* A TSV field: the string with tabs, newlines and other controls as '?'. */
static void put_field(FILE *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], f);
}

/* labels.tsv: every label's id and flows per split, for humans. */
static void write_labels_tsv(const struct dataset *d, const struct options *o)
{
	size_t n = d->n_labels;
	uint64_t *flows = xcalloc(n * SHARD_SPLITS + 1, sizeof *flows);
	for (size_t i = 0; i < d->n_flows; i++)
		if (d->flows[i].label != NONE)
			flows[d->flows[i].label * SHARD_SPLITS + d->groups[d->flows[i].group].split]++;
	char *path = join_path(o->outdir, "labels.tsv");
	struct atomic_file a;
	atomic_open(&a, path);
	fprintf(a.f, "# id\tlabel\ttrain_flows\tval_flows\ttest_flows\n");
	for (uint32_t i = 0; i < n; i++) {
		const struct str *l = label_at(d, i);
		fprintf(a.f, "%u\t", i);
		put_field(a.f, l->s, l->len);
		for (int s = 0; s < SHARD_SPLITS; s++)
			fprintf(a.f, "\t%" PRIu64, flows[i * SHARD_SPLITS + s]);
		fputc('\n', a.f);
	}
	for (size_t i = 0; i < d->labels.n; i++)
		if (d->label_dropped[i]) {
			fputs("# left out (--min-label-flows)\t", a.f);
			put_field(a.f, d->labels.e[i].s, d->labels.e[i].len);
			fprintf(a.f, "\t%" PRIu64 "\n", d->label_flows[i]);
		}
	atomic_commit(&a);
	free(path);
	free(flows);
}

/* split.tsv: each stored flow's split, source, id and label ('-' for none),
 * in input order: what realism-eval --split-file needs to classify the same
 * flows on the same sides. */
static void write_split_tsv(const struct dataset *d, const struct options *o)
{
	char *path = join_path(o->outdir, "split.tsv");
	struct atomic_file a;
	atomic_open(&a, path);
	fprintf(a.f, "# split\tsource\tid\tlabel\n");
	for (size_t i = 0; i < d->n_flows; i++) {
		const struct flow_ref *f = &d->flows[i];
		fprintf(a.f, "%s\t", shard_split_names[d->groups[f->group].split]);
		if (f->source != NONE)
			put_field(a.f, d->sources.e[f->source].s, d->sources.e[f->source].len);
		fprintf(a.f, "\t%" PRIu64 "\t", f->id);
		if (f->label == NONE) {
			fputc('-', a.f);
		} else {
			const struct str *l = label_at(d, f->label);
			put_field(a.f, l->s, l->len);
		}
		fputc('\n', a.f);
	}
	atomic_commit(&a);
	free(path);
}

/* groups.tsv: where each source (or flow) went, to audit the split. */
static void write_groups_tsv(const struct dataset *d, const struct options *o,
			     const uint32_t *order)
{
	char *path = join_path(o->outdir, "groups.tsv");
	struct atomic_file a;
	atomic_open(&a, path);
	fprintf(a.f, "# split\tlabel\tflows\ttokens\t%s\n", shard_group_names[o->group]);
	for (size_t i = 0; i < d->n_groups; i++) {
		const struct group *g = &d->groups[order[i]];
		if (!g->flows)
			continue;
		fprintf(a.f, "%s\t", shard_split_names[g->split]);
		if (g->label == NONE) {
			fputc('-', a.f);
		} else {
			const struct str *l = label_at(d, g->label);
			put_field(a.f, l->s, l->len);
		}
		fprintf(a.f, "\t%" PRIu64 "\t%" PRIu64 "\t", g->flows, g->tokens);
		if (g->key == NONE)
			fprintf(a.f, "#%" PRIu64, g->ordinal);
		else
			put_field(a.f, d->keys.e[g->key].s, d->keys.e[g->key].len);
		fputc('\n', a.f);
	}
	atomic_commit(&a);
	free(path);
}

/* ------------------------------------------------------------ summary */

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
				const struct str *name = label_at(d, (uint32_t)l);
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
		const struct str *l = &d->labels.e[i];
		size_t need = len + l->len + 32;
		grow((void **)&list, &cap, need, 1);
		len += (size_t)snprintf(list + len, need - len, "%s%s %" PRIu64, len ? ", " : "",
					l->s, d->label_flows[i]);
	}
	warnx("%" PRIu64 " labels with fewer than %" PRIu64 " flows left out with their %" PRIu64
	      " flows (--min-label-flows): %s", d->rare_labels, o->min_label_flows, d->rare_flows,
	      list);
	free(list);
}

static void summary(const struct dataset *d, const struct options *o)
{
	if (o->quiet)
		return;
	print_table(d);
	if (!d->read)
		warnx("no flows read: the shards are empty");
	if (d->empty)
		warnx("%" PRIu64 " records without a packet (no START token) left out", d->empty);
	if (d->cut)
		warnx("%" PRIu64 " flows longer than the context of %u cut at a packet boundary",
		      d->cut, o->context);
	if (d->windowed)
		warnx("%" PRIu64 " flows longer than the context of %u stored in windows",
		      d->windowed, o->context);
	if (d->dropped)
		warnx("%" PRIu64 " flows longer than the context of %u dropped", d->dropped,
		      o->context);
	if (d->duplicates)
		warnx("%" PRIu64 " flows left out: the same tokens as a flow before (--dedup)",
		      d->duplicates);
	if (d->unlabelled_out)
		warnx("%" PRIu64 " flows without a label left out (--labelled-only)", d->unlabelled_out);
	if (d->over_cap)
		warnx("%" PRIu64 " flows left out: over %" PRIu64 " of one label from one source "
		      "(--max-flows-per-source-label)", d->over_cap, o->max_per_source_label);
	if (d->rare_labels)
		warn_rare_labels(d, o);
	if (d->unsourced && o->group == SHARD_GROUP_SOURCE)
		warnx("%" PRIu64 " flows without a \"source\" (flow2tok --no-side?): each is a group "
		      "of its own, so their captures may straddle splits", d->unsourced);
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

static int dump(int n, char **paths)
{
	int status = 0;
	for (int i = 0; i < n; i++) {
		struct shard s;
		char why[512];
		struct stat st;
		if (stat(paths[i], &st) < 0) {
			warn("%s", paths[i]);
			status = status ? status : EX_NOINPUT;
			continue;
		}
		if (shard_open(paths[i], &s, why, sizeof why) < 0) {
			warnx("%s", why);
			status = status ? status : EX_DATAERR;
			continue;
		}
		dump_shard(&s, paths[i]);
		shard_close(&s);
	}
	cli_close_out(stdout, "stdout");
	return status;
}

/* ------------------------------------------------------------ main */

static void parse_split(const char *arg, uint64_t share[])
{
	char *copy = xstrdup(arg), *save = NULL;
	int n = 0;
	for (char *w = strtok_r(copy, "/", &save); w; w = strtok_r(NULL, "/", &save)) {
		if (n == SHARD_SPLITS)
			cli_usage_error(usage, "--split: '%s' has more than three shares", arg);
		share[n++] = opt_u64(usage, "--split", w, 0, MAX_SHARE);
	}
	free(copy);
	if (n != SHARD_SPLITS)
		cli_usage_error(usage, "--split: '%s' is not TRAIN/VAL/TEST, e.g. 98/1/1", arg);
	if (share[0] + share[1] + share[2] == 0)
		cli_usage_error(usage, "--split: the shares add up to 0");
}

static int pick(const char *opt, const char *arg, const char *const names[], int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(arg, names[i]) == 0)
			return i;
	cli_usage_error(usage, "%s: unknown value '%s'", opt, arg);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_CONTEXT = 256, OPT_DUMP, OPT_GROUP, OPT_LONG, OPT_SEED, OPT_SPLIT,
	       OPT_DEDUP, OPT_LABELLED_ONLY, OPT_MAX_PER_SOURCE_LABEL, OPT_MIN_LABEL_FLOWS };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "context", required_argument, NULL, OPT_CONTEXT },
		{ "dump", no_argument, NULL, OPT_DUMP },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "long", required_argument, NULL, OPT_LONG },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "split", required_argument, NULL, OPT_SPLIT },
		{ "dedup", no_argument, NULL, OPT_DEDUP },
		{ "labelled-only", no_argument, NULL, OPT_LABELLED_ONLY },
		{ "max-flows-per-source-label", required_argument, NULL, OPT_MAX_PER_SOURCE_LABEL },
		{ "min-label-flows", required_argument, NULL, OPT_MIN_LABEL_FLOWS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const libs[] = { NULL };
	int c;
	memset(o, 0, sizeof *o);
	o->share[SHARD_TRAIN] = 98, o->share[SHARD_VAL] = 1, o->share[SHARD_TEST] = 1;
	o->context = 12032;
	o->seed = 1;
	while ((c = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->outdir = optarg; break;
		case OPT_CONTEXT:
			o->context = (uint32_t)opt_u64(usage, "--context", optarg, MIN_CONTEXT, MAX_CONTEXT);
			break;
		case OPT_DUMP: o->dump = 1; break;
		case OPT_GROUP: o->group = (enum shard_group)pick("--group", optarg, shard_group_names, 2); break;
		case OPT_LONG: o->long_mode = (enum shard_long)pick("--long", optarg, shard_long_names, 3); break;
		case OPT_SEED: o->seed = opt_u64(usage, "--seed", optarg, 0, UINT64_MAX); break;
		case OPT_SPLIT: parse_split(optarg, o->share); break;
		case OPT_DEDUP: o->dedup = 1; break;
		case OPT_LABELLED_ONLY: o->labelled_only = 1; break;
		case OPT_MAX_PER_SOURCE_LABEL:
			o->max_per_source_label = opt_u64(usage, "--max-flows-per-source-label", optarg, 1,
							  UINT32_MAX);
			break;
		case OPT_MIN_LABEL_FLOWS:
			o->min_label_flows = opt_u64(usage, "--min-label-flows", optarg, 1, UINT32_MAX);
			break;
		case 'q': o->quiet = 1; break;
		case 'h': cli_help(usage);
		case 'V': cli_version(libs);
		default: cli_usage_error(usage, "unknown option or missing argument");
		}
	}
	if (o->dump && optind == argc)
		cli_usage_error(usage, "--dump: no shard named");
	if (!o->dump && !o->outdir)
		cli_usage_error(usage, "no output directory (-o DIR)");
}

/* Makes DIR if missing, and the spill file for the tokens inside it (on the
 * same file system as the shards, which may be far larger than /tmp). */
static FILE *open_spill(const char *dir)
{
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		err(EX_CANTCREAT, "%s", dir);
	char *tmpl = join_path(dir, ".tokshard-spill.XXXXXX");
	int fd = mkstemp(tmpl);
	if (fd < 0)
		err(EX_CANTCREAT, "%s", tmpl);
	unlink(tmpl);
	free(tmpl);
	FILE *f = fdopen(fd, "w+b");
	if (!f)
		err(EX_OSERR, "fdopen");
	return f;
}

static void dataset_free(struct dataset *d)
{
	fclose(d->spill);
	strtab_free(&d->labels);
	strtab_free(&d->keys);
	strtab_free(&d->sources);
	strtab_free(&d->seen);
	free(d->label_dropped);
	free(d->label_flows);
	free(d->group_of_key);
	free(d->groups);
	free(d->items);
	free(d->flows);
	free(d->label_final);
	free(d->label_seen);
	free(d->keybuf);
}

int main(int argc, char **argv)
{
	struct options o;
	cli_init(argc, argv);
	parse_options(argc, argv, &o);
	if (o.dump)
		return dump(argc - optind, argv + optind);

	struct dataset d = { 0 };
	d.spill = open_spill(o.outdir);
	d.dir = o.outdir;
	struct progress prog;
	progress_init(&prog, o.quiet);
	int status = 0;
	char *stdin_only[] = { "-" };
	char **inputs = optind < argc ? argv + optind : stdin_only;
	int n_inputs = optind < argc ? argc - optind : 1;
	for (int i = 0; i < n_inputs; i++) {
		int s = read_input(inputs[i], &d, &o, &prog);
		if (s && !status)
			status = s;
	}
	progress_done(&prog);

	select_flows(&d, &o);
	number_labels(&d);
	label_groups(&d);
	uint32_t *order = assign_splits(&d, &o);
	write_shards(&d, &o);
	write_labels_tsv(&d, &o);
	write_groups_tsv(&d, &o, order);
	write_split_tsv(&d, &o);
	summary(&d, &o);
	free(order);
	dataset_free(&d);
	return status;
}
