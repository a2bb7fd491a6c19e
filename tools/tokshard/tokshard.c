/* tokshard: token streams (flow2tok) to the train, validation and test shard
 * files that tgpt-train maps (tgpt-shard(5)). Flows are split by capture (or
 * flow by flow), stratified by label with a seeded shuffle, and cut or
 * windowed at packet boundaries to fit the model's context. Flows can be
 * selected first: no duplicates, labelled ones only, a few per capture and
 * label, labels with enough flows. The parts: tokshard.h. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "hash.h"
#include "record.h"
#include "stream.h"
#include "tokshard.h"

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

/* ------------------------------------------------------------ the data set */

/* The group of a record under --group; made on first sight. */
static uint32_t group_for(struct dataset *d, const struct tok_rec *t, enum shard_group mode)
{
	uint32_t key = NONE;
	if (t->source && mode == SHARD_GROUP_SOURCE) {
		key = intern_add(&d->keys, t->source, t->source_len);
	} else if (t->source) {
		size_t need = t->source_len + 24;
		grow((void **)&d->keybuf, &d->keybuf_cap, need, 1);
		int n = snprintf(d->keybuf, need, "%.*s#%" PRIu64, (int)t->source_len, t->source, t->id);
		key = intern_add(&d->keys, d->keybuf, (size_t)n);
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
	    intern_find(&d->labels, t->label, t->label_len) == NONE) {
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
	intern_add(&d->seen, digest, sizeof digest);
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
	uint32_t label = labelled ? intern_add(&d->labels, t->label, t->label_len) : NONE;
	uint32_t source = t->source ? intern_add(&d->sources, t->source, t->source_len) : NONE;
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
	while ((c = cli_getopt(argc, argv, "o:qhV", longopts, usage)) != -1) {
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

/* Makes DIR if missing (*made says so), and the spill file for the tokens
 * inside it (on the same file system as the shards, which may be far larger
 * than /tmp). */
static FILE *open_spill(const char *dir, int *made)
{
	*made = mkdir(dir, 0777) == 0;
	if (!*made && errno != EEXIST)
		err(EX_CANTCREAT, "%s", dir);
	char *tmpl = join_path(dir, ".tokshard-spill.XXXXXX");
	int fd = mkstemp(tmpl);
	if (fd < 0)
		err(EX_CANTCREAT, "%s: cannot create a temporary file in it", dir);
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
	intern_free(&d->labels);
	intern_free(&d->keys);
	intern_free(&d->sources);
	intern_free(&d->seen);
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
	int made_dir;
	d.spill = open_spill(o.outdir, &made_dir);
	char *old_shard = join_path(o.outdir, "train.shard");
	int had_shards = access(old_shard, F_OK) == 0;
	free(old_shard);
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
	/* a failed run replaces none of the old files, and says so once */
	write_shards(&d, &o, status);
	write_labels_tsv(&d, &o, status);
	write_groups_tsv(&d, &o, order, status);
	write_split_tsv(&d, &o, status);
	if (status && d.n_flows)
		warnx("%s: %s; what was read before the error (%zu %s) is in %s/*.partial", o.outdir,
		      had_shards ? "the old shards are kept" : "no shards written", d.n_flows,
		      plural(d.n_flows, "flow", "flows"), o.outdir);
	else if (status)
		warnx("%s: %s", o.outdir, had_shards ? "the old shards are kept" : "no shards written");
	if (status && made_dir)
		rmdir(o.outdir); /* made for this run: empty again unless partial shards are in it */
	summary(&d, &o);
	free(order);
	dataset_free(&d);
	return status;
}
