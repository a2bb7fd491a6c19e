/* realism-eval: how realistic generated traffic is, next to real traffic.
 * Reads a real and a generated set (captures, through pcap2flow, or flow
 * streams) and reports (1) validity: the share of generated packets whose
 * headers hold together and of TCP flows that hold together as connections,
 * (2) a discriminator: gradient-boosted trees (XGBoost) trying to tell
 * generated flows from real ones, scored by macro-F1 over a stratified
 * k-fold cross-validation (0.5: they cannot), and (3) jsdiv's mean
 * divergences. With --baseline it instead trains and tests the same
 * classifier on labelled flows: the classical peer of tgpt's fine-tuned
 * classifier, on a split of its own or on the flows and split of the
 * model's shards (--split-file). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "packet.h"
#include "record.h"
#include "../eval/coherence.h"
#include "../eval/features.h"
#include "../eval/fields.h"
#include "../eval/input.h"
#include "../eval/json.h"
#include "../eval/metrics.h"
#include "../eval/regroup.h"
#include "boost.h"
#include "splitfile.h"

static const char usage[] =
	"usage: realism-eval [-jpq] [-k folds] [-n packets] [-s seed] [options] real generated\n"
	"       realism-eval --baseline [-jpq] [-L labels.tsv] [--split capture|time]\n"
	"                    [--test-share X | --split-file split.tsv] [options] [LABEL=]file ...\n"
	"Compares generated traffic with real traffic (captures or flow streams, \"-\"\n"
	"for stdin): validity of the generated packets and TCP flows, a discriminator\n"
	"(XGBoost on one feature vector per flow, macro-F1 over stratified k-fold\n"
	"cross-validation; 0.5 = indistinguishable) and jsdiv's mean divergences.\n"
	"  -k, --folds K            cross-validation folds (5)\n"
	"  -n, --packets N          packets per flow in the feature vector (20)\n"
	"  -p, --ports              put the first packet's ports in the feature vector\n"
	"  -s, --seed N             seed of subsampling, folds and XGBoost (1)\n"
	"  -r, --rounds N           boosting rounds (100)\n"
	"  -d, --depth N            tree depth (6)\n"
	"  -T, --threads N          XGBoost threads (1; results depend on it)\n"
	"  -t, --idle-timeout SECS  captures: pcap2flow's idle timeout (120)\n"
	"      --tokens FILE        the token records the generated capture was written\n"
	"                           from (tok2pcap): the share of them that come back as\n"
	"                           exactly one flow each\n"
	"  -j, --json               one JSON document instead of the report\n"
	"  -q, --quiet              no progress on the terminal\n"
	"  -h, --help               this text\n"
	"  -V, --version            version and libraries\n"
	"Baseline (supervised flow classification on labelled flows):\n"
	"  -b, --baseline           files are LABEL=FILE, or flow streams with labels\n"
	"  -L, --labels FILE        more inputs: lines FILE<TAB>LABEL (relative paths\n"
	"                           from FILE's directory)\n"
	"      --split MODE         capture: no capture on both sides (default);\n"
	"                           time: each capture's latest flows are the test set\n"
	"      --test-share X       share of flows (captures) to test (0.3)\n"
	"      --split-file FILE    the flows and split of tokshard's split.tsv instead:\n"
	"                           only the flows it lists (by source and id), its\n"
	"                           train and test sides; its val flows are left out\n"
	"Definitions: realism-eval(1).\n";

#define PROGRESS_EVERY 4096
#define MAX_REASONS 32

enum { OPT_SPLIT = 256, OPT_TEST_SHARE, OPT_SPLIT_FILE, OPT_TOKENS };
enum split_mode { SPLIT_CAPTURE, SPLIT_TIME, SPLIT_FILE };

struct options {
	int baseline, json, quiet, ports;
	int folds, rounds, depth, threads;
	unsigned packets;
	uint64_t seed;
	double idle, test_share, eta;
	enum split_mode split;
	const char *labels, *split_file, *tokens;
};

/* ------------------------------------------------------------ tallies */

/* Counts by reason; the reasons are the static phrases of pkt_validate and
 * tcp_flow_check, so a pointer compares them. */
struct reasons {
	const char *why[MAX_REASONS];
	uint64_t n[MAX_REASONS];
	int used;
};

static void reason_add(struct reasons *r, const char *why)
{
	int i = 0;
	while (i < r->used && r->why[i] != why)
		i++;
	if (i == r->used) {
		if (r->used == MAX_REASONS)
			return;
		r->why[r->used] = why;
		r->n[r->used++] = 0;
	}
	r->n[i]++;
}

/* Most frequent first. */
static void reasons_sort(struct reasons *r)
{
	for (int i = 1; i < r->used; i++)
		for (int j = i; j > 0 && r->n[j] > r->n[j - 1]; j--) {
			const char *w = r->why[j];
			uint64_t n = r->n[j];
			r->why[j] = r->why[j - 1], r->n[j] = r->n[j - 1];
			r->why[j - 1] = w, r->n[j - 1] = n;
		}
}

/* ------------------------------------------------------------ flow vectors */

/* Flow vectors of one or more inputs, with what the baseline needs. */
struct flowset {
	size_t ncol, n, cap;
	float *x;            /* n rows of ncol */
	int *label;          /* baseline: class id */
	int *source;         /* baseline: source id */
	uint64_t *first_ns;  /* baseline: time of the first packet */
};

static float *flowset_row(struct flowset *s)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		s->x = xrealloc(s->x, cap * s->ncol * sizeof *s->x);
		s->label = xrealloc(s->label, cap * sizeof *s->label);
		s->source = xrealloc(s->source, cap * sizeof *s->source);
		s->first_ns = xrealloc(s->first_ns, cap * sizeof *s->first_ns);
		s->cap = cap;
	}
	return s->x + s->n++ * s->ncol;
}

static void flowset_free(struct flowset *s)
{
	free(s->x);
	free(s->label);
	free(s->source);
	free(s->first_ns);
	memset(s, 0, sizeof *s);
}

/* A set of names (labels, sources) with small ids, in order of arrival. */
struct names {
	char **name;
	size_t n, cap, last;
};

static int name_is(const struct names *t, size_t i, const char *s, size_t len)
{
	return i < t->n && strlen(t->name[i]) == len && memcmp(t->name[i], s, len) == 0;
}

static int name_id(struct names *t, const char *s, size_t len)
{
	/* flows come in runs of one source and label: the last one first */
	if (name_is(t, t->last, s, len))
		return (int)t->last;
	for (size_t i = 0; i < t->n; i++)
		if (name_is(t, i, s, len))
			return (int)(t->last = i);
	grow((void **)&t->name, &t->cap, t->n + 1, sizeof *t->name);
	char *copy = xmalloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = 0;
	t->name[t->n] = copy;
	t->last = t->n;
	return (int)t->n++;
}

static void names_free(struct names *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->name[i]);
	free(t->name);
	memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ classification */

/* Rows idx[0..n) of the set, copied into one matrix. */
static float *gather(const struct flowset *s, const size_t *idx, size_t n)
{
	float *m = xmalloc((n ? n : 1) * s->ncol * sizeof *m);
	for (size_t i = 0; i < n; i++)
		memcpy(m + i * s->ncol, s->x + idx[i] * s->ncol, s->ncol * sizeof *m);
	return m;
}

/* Trains on the rows train[] and predicts the rows test[] (classes y). */
static void fit_predict(const struct options *o, int n_classes, const struct flowset *s,
			const int *y, const size_t *train, size_t n_train, const size_t *test,
			size_t n_test, int *pred)
{
	struct boost_params bp = { n_classes, o->rounds, o->depth, o->eta, o->threads, o->seed };
	float *xtr = gather(s, train, n_train), *xte = gather(s, test, n_test);
	int *ytr = xmalloc((n_train ? n_train : 1) * sizeof *ytr);
	for (size_t i = 0; i < n_train; i++)
		ytr[i] = y[train[i]];
	boost_fit_predict(&bp, xtr, ytr, n_train, xte, n_test, s->ncol, pred);
	free(xtr);
	free(xte);
	free(ytr);
}

/* ------------------------------------------------------------ evaluation */

struct side {
	const char *path, *name;
	enum input_format format;
	uint64_t flows, packets, valid_packets;
	uint64_t tcp_flows, tcp_coherent;
	struct reasons bad_packets, bad_flows;
	size_t first_row, rows;      /* its vectors in the flowset */
};

struct evaluation {
	struct side side[2];         /* 0 real, 1 generated */
	struct flowset set;
	struct field_set fields;
	size_t per_class;            /* flows a side after balancing */
	double f1, f1_std, acc;
	double *fold_f1;
	struct field_result res[N_FIELDS];
	struct regroup regroup;      /* --tokens: the generated flows' regrouping */
	uint64_t regrouped;          /* records that came back as one flow */
};

/* Validity and the vector of one flow record. */
static void take_flow(struct evaluation *e, int k, const struct flow_rec *f, const struct options *o,
		      struct flow_acc *acc)
{
	struct side *s = &e->side[k];
	const char *why;
	for (size_t i = 0; i < f->n_packets; i++) {
		const struct packet *pk = &f->pkt[i];
		if (pkt_validate_flow(f->linktype, pk->data, pk->caplen, pk->wirelen, NULL, 0, &why))
			s->valid_packets++;
		else
			reason_add(&s->bad_packets, why);
	}
	s->packets += f->n_packets;
	int tcp = tcp_flow_check(f, &why);
	if (tcp >= 0) {
		s->tcp_flows++;
		if (tcp)
			s->tcp_coherent++;
		else
			reason_add(&s->bad_flows, why);
	}
	field_set_add_flow(&e->fields, k, f);
	if (k == 1 && o->tokens)
		regroup_flow(&e->regroup, f);
	if (f->n_packets == 0)
		return;
	flow_vector(f, o->packets, o->ports, acc, flowset_row(&e->set));
	s->flows++;
}

static void read_side(struct evaluation *e, int k, const struct options *o, struct progress *pr)
{
	struct side *s = &e->side[k];
	struct input in;
	struct flow_acc acc;
	flow_acc_init(&acc);
	input_open(&in, s->path, o->idle);
	s->format = in.format;
	s->first_row = e->set.n;
	const struct flow_rec *f;
	while ((f = input_next(&in))) {
		take_flow(e, k, f, o, &acc);
		if (s->flows && s->flows % PROGRESS_EVERY == 0)
			progress_tick(pr, "%s: %" PRIu64 " flows", s->name, s->flows);
	}
	input_close(&in);
	flow_acc_free(&acc);
	s->rows = e->set.n - s->first_row;
}

/* Balanced classes, stratified folds, and the F1 of each fold. */
static void discriminate(struct evaluation *e, const struct options *o)
{
	size_t n0 = e->side[0].rows, n1 = e->side[1].rows;
	size_t n = n0 < n1 ? n0 : n1;
	if (n < (size_t)o->folds)
		errx(EX_DATAERR, "too few flows to cross-validate: %zu real, %zu generated; "
		     "%d folds need %d a side (--folds)", n0, n1, o->folds, o->folds);
	e->per_class = n;

	/* the larger side subsampled (seeded), then both sides' rows */
	uint64_t state = o->seed ^ 0x5eedba1a9cedull;
	size_t *idx = xmalloc(2 * n * sizeof *idx), *pick = xmalloc((n0 > n1 ? n0 : n1) * sizeof *pick);
	int *y = xcalloc(e->set.n, sizeof *y), *cls = xmalloc(2 * n * sizeof *cls);
	for (int k = 0; k < 2; k++) {
		size_t rows = e->side[k].rows;
		for (size_t i = 0; i < rows; i++)
			pick[i] = e->side[k].first_row + i;
		shuffle(pick, rows, &state);
		for (size_t i = 0; i < n; i++) {
			idx[k * n + i] = pick[i];
			y[pick[i]] = k;
			cls[k * n + i] = k;
		}
	}
	int *fold = xmalloc(2 * n * sizeof *fold);
	stratified_folds(cls, 2 * n, 2, o->folds, o->seed, fold);

	size_t *train = xmalloc(2 * n * sizeof *train), *test = xmalloc(2 * n * sizeof *test);
	int *pred = xmalloc(2 * n * sizeof *pred);
	struct confusion all;
	confusion_init(&all, 2);
	e->fold_f1 = xmalloc((size_t)o->folds * sizeof *e->fold_f1);
	for (int f = 0; f < o->folds; f++) {
		size_t ntr = 0, nte = 0;
		for (size_t i = 0; i < 2 * n; i++)
			if (fold[i] == f)
				test[nte++] = idx[i];
			else
				train[ntr++] = idx[i];
		fit_predict(o, 2, &e->set, y, train, ntr, test, nte, pred);
		struct confusion c;
		confusion_init(&c, 2);
		for (size_t i = 0; i < nte; i++) {
			confusion_add(&c, y[test[i]], pred[i]);
			confusion_add(&all, y[test[i]], pred[i]);
		}
		e->fold_f1[f] = macro_f1(&c);
		confusion_free(&c);
	}
	mean_std(e->fold_f1, (size_t)o->folds, &e->f1, &e->f1_std);
	e->acc = accuracy(&all);
	confusion_free(&all);
	free(idx);
	free(pick);
	free(y);
	free(cls);
	free(fold);
	free(train);
	free(test);
	free(pred);
}

static double share(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / (double)whole : NAN;
}

static void print_share(const char *what, uint64_t part, uint64_t whole)
{
	if (whole)
		printf("  %-34s %.4f  (%" PRIu64 " of %" PRIu64 ")\n", what, share(part, whole), part, whole);
	else
		printf("  %-34s -       (none)\n", what);
}

static void print_reasons(const char *what, struct reasons *r)
{
	if (r->used == 0)
		return;
	reasons_sort(r);
	printf("  %s:", what);
	for (int i = 0; i < r->used; i++)
		printf("%s %s %" PRIu64, i ? "," : "", r->why[i], r->n[i]);
	putchar('\n');
}

static void print_report(struct evaluation *e, const struct options *o)
{
	static const char *const role[2] = { "real", "generated" };
	for (int k = 0; k < 2; k++) {
		const struct side *s = &e->side[k];
		printf("%-10s %s (%s): %" PRIu64 " packet%s in %" PRIu64 " flow%s\n", role[k], s->name,
		       input_format_names[s->format], s->packets, s->packets == 1 ? "" : "s", s->flows,
		       s->flows == 1 ? "" : "s");
	}
	struct side *g = &e->side[1], *r = &e->side[0];
	printf("\nvalidity of the generated traffic\n");
	print_share("packets with consistent headers", g->valid_packets, g->packets);
	print_share("TCP flows that hold together", g->tcp_coherent, g->tcp_flows);
	if (o->tokens) {
		print_share("generated flows that regroup alone", e->regrouped, e->regroup.records);
		printf("  (%" PRIu64 " generated flows, %" PRIu64 " flows of their capture)\n",
		       e->regroup.records, e->regroup.flows);
	}
	print_reasons("invalid packets", &g->bad_packets);
	print_reasons("incoherent TCP flows", &g->bad_flows);
	printf("  (real traffic: packets %.4f, TCP flows ", share(r->valid_packets, r->packets));
	if (r->tcp_flows)
		printf("%.4f)\n", share(r->tcp_coherent, r->tcp_flows));
	else
		printf("-)\n");

	printf("\ndiscriminator: can generated flows be told from real ones?\n");
	printf("  XGBoost, %d rounds of depth %d on %zu features (first %u packets, %s), seed %" PRIu64 "\n",
	       o->rounds, o->depth, e->set.ncol, o->packets, o->ports ? "with ports" : "no ports", o->seed);
	printf("  %zu flows a side, %d-fold stratified cross-validation\n", e->per_class, o->folds);
	printf("  macro-F1  %.4f \302\261 %.4f   (0.5: they cannot, 1: always)\n", e->f1, e->f1_std);
	printf("  accuracy  %.4f\n", e->acc);

	double mp = field_mean_jsd(e->res, 0), mf = field_mean_jsd(e->res, 1);
	printf("\ndivergence (jsdiv, base 2)\n  mean jsd  packet fields ");
	if (isnan(mp))
		printf("-");
	else
		printf("%.4f", mp);
	printf(", flow fields ");
	if (isnan(mf))
		printf("-\n");
	else
		printf("%.4f\n", mf);
}

static void json_reasons(struct reasons *r)
{
	reasons_sort(r);
	putchar('{');
	for (int i = 0; i < r->used; i++) {
		if (i)
			putchar(',');
		json_string(stdout, r->why[i]);
		printf(":%" PRIu64, r->n[i]);
	}
	putchar('}');
}

static void json_side(const char *key, struct side *s)
{
	printf("\"%s\":{\"source\":", key);
	json_string(stdout, s->path);
	printf(",\"format\":\"%s\",\"flows\":%" PRIu64 ",\"packets\":%" PRIu64
	       ",\"valid_packets\":%" PRIu64 ",\"validity\":", input_format_names[s->format], s->flows,
	       s->packets, s->valid_packets);
	json_number(stdout, share(s->valid_packets, s->packets));
	printf(",\"tcp_flows\":%" PRIu64 ",\"tcp_coherent\":%" PRIu64 ",\"tcp_valid\":", s->tcp_flows,
	       s->tcp_coherent);
	json_number(stdout, share(s->tcp_coherent, s->tcp_flows));
	fputs(",\"invalid_reasons\":", stdout);
	json_reasons(&s->bad_packets);
	fputs(",\"incoherent_reasons\":", stdout);
	json_reasons(&s->bad_flows);
	putchar('}');
}

/* The summary first, then each side in detail. */
static void print_json(struct evaluation *e, const struct options *o)
{
	struct side *g = &e->side[1];
	fputs("{\"mode\":\"realism\",\"f1\":", stdout);
	json_number(stdout, e->f1);
	fputs(",\"f1_std\":", stdout);
	json_number(stdout, e->f1_std);
	fputs(",\"accuracy\":", stdout);
	json_number(stdout, e->acc);
	fputs(",\"validity\":", stdout);
	json_number(stdout, share(g->valid_packets, g->packets));
	fputs(",\"tcp_valid\":", stdout);
	json_number(stdout, share(g->tcp_coherent, g->tcp_flows));
	fputs(",\"regrouped\":", stdout);
	json_number(stdout, o->tokens ? share(e->regrouped, e->regroup.records) : NAN);
	if (o->tokens)
		printf(",\"gen_records\":%" PRIu64 ",\"gen_alone\":%" PRIu64 ",\"gen_capture_flows\":%"
		       PRIu64, e->regroup.records, e->regrouped, e->regroup.flows);
	fputs(",\"mean_jsd_packet\":", stdout);
	json_number(stdout, field_mean_jsd(e->res, 0));
	fputs(",\"mean_jsd_flow\":", stdout);
	json_number(stdout, field_mean_jsd(e->res, 1));
	fputs(",\n\"f1_folds\":[", stdout);
	for (int f = 0; f < o->folds; f++) {
		if (f)
			putchar(',');
		json_number(stdout, e->fold_f1[f]);
	}
	printf("],\"flows_per_class\":%zu,\"folds\":%d,\"features\":%zu,\"packets_per_flow\":%u,"
	       "\"ports\":%s,\"rounds\":%d,\"depth\":%d,\"seed\":%" PRIu64 ",\n", e->per_class, o->folds,
	       e->set.ncol, o->packets, o->ports ? "true" : "false", o->rounds, o->depth, o->seed);
	json_side("real", &e->side[0]);
	fputs(",\n", stdout);
	json_side("generated", g);
	fputs("}\n", stdout);
}

static int evaluate(char **argv, const struct options *o)
{
	static struct evaluation e;
	struct progress pr;
	e.set.ncol = flow_vector_len(o->packets, o->ports);
	field_set_init(&e.fields);
	progress_init(&pr, o->quiet);
	if (o->tokens)
		regroup_open(&e.regroup, o->tokens);
	for (int k = 0; k < 2; k++) {
		e.side[k].path = argv[k];
		e.side[k].name = strcmp(argv[k], "-") == 0 ? "<stdin>" : argv[k];
		read_side(&e, k, o, &pr);
	}
	if (o->tokens)
		e.regrouped = regroup_alone(&e.regroup);
	discriminate(&e, o);
	progress_done(&pr);
	field_set_compare(&e.fields, e.res);
	if (o->json)
		print_json(&e, o);
	else
		print_report(&e, o);
	cli_close_out(stdout, "stdout");
	field_set_free(&e.fields);
	flowset_free(&e.set);
	regroup_free(&e.regroup);
	free(e.fold_f1);
	return 0;
}

/* ------------------------------------------------------------ baseline */

struct labelled_input {
	char *label;   /* NULL: the records' own labels */
	char *path;
};

struct baseline {
	struct labelled_input *in;
	size_t n_in, in_cap;
	struct names labels, sources;
	struct flowset set;
	uint64_t unlabelled;
	struct split_file split;  /* --split-file */
	int *listed_test;         /* --split-file: per flow, 1 on the test side */
	size_t listed_test_cap;
	uint64_t unlisted, val_out; /* --split-file: flows not listed, listed for val */
	int *test;        /* per flow: 1 in the test set */
	int *dropped;     /* per label: left out (--split capture, one capture) */
	size_t n_train, n_test;
	struct confusion conf;
	uint64_t *count[2]; /* per label: train, test flows */
};

static void add_input(struct baseline *b, const char *label, size_t label_len, const char *path)
{
	grow((void **)&b->in, &b->in_cap, b->n_in + 1, sizeof *b->in);
	struct labelled_input *li = &b->in[b->n_in++];
	li->label = NULL;
	if (label) {
		li->label = xmalloc(label_len + 1);
		memcpy(li->label, label, label_len);
		li->label[label_len] = 0;
	}
	li->path = xstrdup(path);
}

/* LABEL=FILE (LABEL without '/') or FILE. */
static void add_argument(struct baseline *b, const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (eq && eq > arg && memchr(arg, '/', (size_t)(eq - arg)) == NULL)
		add_input(b, arg, (size_t)(eq - arg), eq + 1);
	else
		add_input(b, NULL, 0, arg);
}

/* A label table being read: the inputs and where the table is. */
struct label_table {
	struct baseline *b;
	const char *path;
	size_t dir_len; /* of path, its last '/' included */
};

/* One line FILE<TAB>LABEL, FILE relative to the table's folder. */
static void add_table_line(void *ctx, char *line, unsigned lineno)
{
	struct label_table *t = ctx;
	char *tab = strchr(line, '\t');
	if (!tab || tab == line || tab[1] == 0)
		errx(EX_DATAERR, "%s: line %u: not FILE<TAB>LABEL", t->path, lineno);
	*tab = 0;
	const char *label = tab + 1;
	size_t n = (line[0] == '/' ? 0 : t->dir_len) + strlen(line) + 1;
	char *file = xmalloc(n);
	snprintf(file, n, "%.*s%s", line[0] == '/' ? 0 : (int)t->dir_len, t->path, line);
	add_input(t->b, label, strlen(label), file);
	free(file);
}

/* Lines FILE<TAB>LABEL; '#' comments; paths relative to the table's folder. */
static void read_label_table(struct baseline *b, const char *path)
{
	const char *slash = strrchr(path, '/');
	struct label_table t = { b, path, slash ? (size_t)(slash - path) + 1 : 0 };
	table_lines(path, add_table_line, &t);
}

/* --split-file: the listing of flow f (its label label, or NULL), or NULL
 * when the flow is not to be used: not listed, or listed for val. */
static const struct split_entry *listing(struct baseline *b, const struct input *in,
					 const struct flow_rec *f, const char *label, size_t label_len)
{
	struct split_entry *e = split_file_find(&b->split, f->source ? f->source : "", f->source_len,
						f->id);
	if (!e) {
		b->unlisted++;
		return NULL;
	}
	if (e->matched)
		errx(EX_DATAERR, "%s: flow %.*s #%" PRIu64 " is in the inputs twice", in->name,
		     (int)f->source_len, f->source ? f->source : "", f->id);
	e->matched = 1;
	const char *have = label ? label : "-";
	size_t have_len = label ? label_len : 1;
	if (strlen(e->label) != have_len || memcmp(e->label, have, have_len) != 0)
		errx(EX_DATAERR, "%s: flow %.*s #%" PRIu64 ": label '%.*s' here, '%s' in %s", in->name,
		     (int)f->source_len, f->source ? f->source : "", f->id, (int)have_len, have,
		     e->label, b->split.path);
	if (e->side == SIDE_VAL) {
		b->val_out++;
		return NULL;
	}
	return e;
}

/* --split-file: what the inputs and the file did not have in common. */
static void check_listing(const struct baseline *b)
{
	const struct split_file *sf = &b->split;
	size_t matched = 0;
	const struct split_entry *missing = NULL;
	for (size_t i = 0; i < sf->n; i++) {
		matched += sf->e[i].matched;
		if (!sf->e[i].matched && !missing)
			missing = &sf->e[i];
	}
	if (sf->n == 0)
		errx(EX_DATAERR, "%s: lists no flow", sf->path);
	if (matched == 0)
		errx(EX_DATAERR, "%s: none of its %zu flows is in the inputs (%" PRIu64 " flows): flows "
		     "are matched by source and id, e.g. %s #%" PRIu64 "; were the inputs made by the "
		     "pcap2flow run the token files came from?", sf->path, sf->n, b->unlisted,
		     sf->e[0].source, sf->e[0].id);
	if (missing)
		warnx("%s: %zu of its %zu flows are not in the inputs, e.g. %s #%" PRIu64, sf->path,
		      sf->n - matched, sf->n, missing->source, missing->id);
	if (b->unlisted)
		warnx("%" PRIu64 " flow%s of the inputs not in %s left out", b->unlisted,
		      b->unlisted == 1 ? "" : "s", sf->path);
	if (b->val_out)
		warnx("%" PRIu64 " flow%s of the val split left out", b->val_out,
		      b->val_out == 1 ? "" : "s");
}

static void read_labelled(struct baseline *b, const struct options *o, struct progress *pr)
{
	struct flow_acc acc;
	flow_acc_init(&acc);
	for (size_t i = 0; i < b->n_in; i++) {
		struct input in;
		input_open(&in, b->in[i].path, o->idle);
		const struct flow_rec *f;
		while ((f = input_next(&in))) {
			const char *label = b->in[i].label;
			size_t label_len = label ? strlen(label) : f->label_len;
			if (!label)
				label = f->label;
			const struct split_entry *e = NULL;
			if (o->split == SPLIT_FILE && !(e = listing(b, &in, f, label, label_len)))
				continue;
			if (!label || f->n_packets == 0) {
				b->unlabelled += f->n_packets != 0;
				continue;
			}
			float *row = flowset_row(&b->set);
			flow_vector(f, o->packets, o->ports, &acc, row);
			size_t r = b->set.n - 1;
			if (e) {
				grow((void **)&b->listed_test, &b->listed_test_cap, r + 1,
				     sizeof *b->listed_test);
				b->listed_test[r] = e->side == SIDE_TEST;
			}
			b->set.label[r] = name_id(&b->labels, label, label_len);
			const char *src = f->source_len ? f->source : in.path;
			b->set.source[r] = name_id(&b->sources, src, f->source_len ? f->source_len : strlen(src));
			b->set.first_ns[r] = f->first_ns;
			if (b->set.n % PROGRESS_EVERY == 0)
				progress_tick(pr, "%zu labelled flows", b->set.n);
		}
		input_close(&in);
	}
	flow_acc_free(&acc);
	if (o->split == SPLIT_FILE)
		check_listing(b);
	if (b->unlabelled)
		warnx("%" PRIu64 " flow%s without a label left out", b->unlabelled,
		      b->unlabelled == 1 ? "" : "s");
	if (b->labels.n < 2)
		errx(EX_DATAERR, "a baseline needs flows of two labels at least (%zu found)", b->labels.n);
}

/* A flow's place in time; its row breaks ties, so the order is stable. */
struct when {
	uint64_t ns;
	size_t row;
};

static int by_time(const void *x, const void *y)
{
	const struct when *a = x, *b = y;
	if (a->ns != b->ns)
		return a->ns < b->ns ? -1 : 1;
	return (a->row > b->row) - (a->row < b->row);
}

/* --split time: in each capture, the latest flows (by their first packet)
 * are the test set. */
static void split_by_time(struct baseline *b, double share)
{
	size_t n = b->set.n;
	struct when *w = xmalloc((n ? n : 1) * sizeof *w);
	for (size_t s = 0; s < b->sources.n; s++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (b->set.source[i] == (int)s)
				w[m++] = (struct when){ b->set.first_ns[i], i };
		qsort(w, m, sizeof *w, by_time);
		size_t n_test = (size_t)floor(share * (double)m + 0.5);
		if (n_test >= m && m > 1)
			n_test = m - 1;
		for (size_t i = m - n_test; i < m; i++)
			b->test[w[i].row] = 1;
	}
	free(w);
}

/* --split capture: a capture goes wholly to one side. Captures are grouped
 * by their main label (the one with most flows in them); within each group,
 * shuffled (seeded), a share goes to the test side, at least one capture
 * and never all. Labels found in a single capture cannot be both trained
 * and tested: they are left out. */
static void split_by_capture(struct baseline *b, double share, uint64_t seed)
{
	size_t nl = b->labels.n, ns = b->sources.n;
	uint64_t *flows = xcalloc(nl * ns, sizeof *flows); /* [source][label] */
	for (size_t i = 0; i < b->set.n; i++)
		flows[(size_t)b->set.source[i] * nl + (size_t)b->set.label[i]]++;
	size_t kept = 0;
	for (size_t l = 0; l < nl; l++) {
		size_t captures = 0;
		for (size_t s = 0; s < ns; s++)
			captures += flows[s * nl + l] > 0;
		b->dropped[l] = captures < 2;
		if (b->dropped[l])
			warnx("--split capture: label %s is in one capture only: left out", b->labels.name[l]);
		kept += !b->dropped[l];
	}
	if (kept < 2)
		errx(EX_DATAERR, "--split capture: fewer than two labels have flows in two captures or "
		     "more; --split time splits each capture by time instead");

	int *main_label = xmalloc(ns * sizeof *main_label);
	for (size_t s = 0; s < ns; s++) {
		main_label[s] = -1;
		for (size_t l = 0; l < nl; l++)
			if (!b->dropped[l] && flows[s * nl + l] > 0 &&
			    (main_label[s] < 0 || flows[s * nl + l] > flows[s * nl + (size_t)main_label[s]]))
				main_label[s] = (int)l;
	}
	int *source_test = xcalloc(ns, sizeof *source_test);
	size_t *group = xmalloc(ns * sizeof *group);
	uint64_t state = seed ^ 0xca97u;
	for (size_t l = 0; l < nl; l++) {
		size_t m = 0;
		for (size_t s = 0; s < ns; s++)
			if (main_label[s] == (int)l)
				group[m++] = s;
		shuffle(group, m, &state);
		size_t n_test = (size_t)floor(share * (double)m + 0.5);
		if (n_test == 0 && m > 1)
			n_test = 1;
		if (n_test >= m && m > 0)
			n_test = m - 1;
		for (size_t i = 0; i < n_test; i++)
			source_test[group[i]] = 1;
	}
	for (size_t i = 0; i < b->set.n; i++)
		b->test[i] = source_test[b->set.source[i]];
	free(flows);
	free(main_label);
	free(source_test);
	free(group);
}

static void run_baseline(struct baseline *b, const struct options *o)
{
	size_t n = b->set.n, nl = b->labels.n;
	b->test = xcalloc(n, sizeof *b->test);
	b->dropped = xcalloc(nl, sizeof *b->dropped);
	if (o->split == SPLIT_FILE && n)
		memcpy(b->test, b->listed_test, n * sizeof *b->test);
	else if (o->split == SPLIT_TIME)
		split_by_time(b, o->test_share);
	else
		split_by_capture(b, o->test_share, o->seed);

	size_t *train = xmalloc(n * sizeof *train), *test = xmalloc(n * sizeof *test);
	b->count[0] = xcalloc(nl, sizeof *b->count[0]);
	b->count[1] = xcalloc(nl, sizeof *b->count[1]);
	for (size_t i = 0; i < n; i++) {
		int l = b->set.label[i];
		if (b->dropped[l])
			continue;
		if (b->test[i])
			test[b->n_test++] = i;
		else
			train[b->n_train++] = i;
		b->count[b->test[i]][l]++;
	}
	if (b->n_train == 0 || b->n_test == 0)
		errx(EX_DATAERR, "the split leaves %zu flows to train and %zu to test: both must have some",
		     b->n_train, b->n_test);
	int *pred = xmalloc(b->n_test * sizeof *pred);
	fit_predict(o, (int)nl, &b->set, b->set.label, train, b->n_train, test, b->n_test, pred);
	confusion_init(&b->conf, (int)nl);
	for (size_t i = 0; i < b->n_test; i++)
		confusion_add(&b->conf, b->set.label[test[i]], pred[i]);
	free(pred);
	free(train);
	free(test);
}

static const char *split_name(const struct options *o)
{
	return o->split == SPLIT_FILE ? "file" : o->split == SPLIT_TIME ? "time" : "capture";
}

static void print_baseline(const struct baseline *b, const struct options *o)
{
	size_t nl = b->labels.n, kept = 0;
	int width = 5;
	for (size_t l = 0; l < nl; l++) {
		int len = (int)strlen(b->labels.name[l]);
		width = len > width ? len : width;
		kept += !b->dropped[l];
	}
	printf("baseline: supervised flow classification\n");
	printf("  XGBoost, %d rounds of depth %d on %zu features (first %u packets, %s), seed %" PRIu64 "\n",
	       o->rounds, o->depth, b->set.ncol, o->packets, o->ports ? "with ports" : "no ports", o->seed);
	printf("  %zu labels, %zu flows from %zu capture%s; split by %s: %zu to train, %zu to test ",
	       kept, b->n_train + b->n_test, b->sources.n, b->sources.n == 1 ? "" : "s",
	       o->split == SPLIT_FILE ? o->split_file : split_name(o), b->n_train, b->n_test);
	if (o->split == SPLIT_FILE)
		printf("(%" PRIu64 " of val left out)\n", b->val_out);
	else
		printf("(test share %.2f)\n", o->test_share);
	printf("  macro-F1  %.4f\n  accuracy  %.4f\n\n", macro_f1(&b->conf), accuracy(&b->conf));
	printf("  %-*s %7s %7s %9s %7s %7s\n", width, "label", "train", "test", "precision", "recall", "f1");
	for (size_t l = 0; l < nl; l++) {
		if (b->dropped[l])
			continue;
		struct class_score s = class_score(&b->conf, (int)l);
		printf("  %-*s %7" PRIu64 " %7" PRIu64 " %9.4f %7.4f %7.4f\n", width, b->labels.name[l],
		       b->count[0][l], b->count[1][l], s.precision, s.recall, s.f1);
	}
	printf("\n  confusion (rows: true label, columns: predicted, in the order above)\n  %-*s", width, "");
	for (size_t l = 0; l < nl; l++)
		if (!b->dropped[l])
			printf(" %*.*s", width, width, b->labels.name[l]);
	putchar('\n');
	for (size_t t = 0; t < nl; t++) {
		if (b->dropped[t])
			continue;
		printf("  %-*s", width, b->labels.name[t]);
		for (size_t p = 0; p < nl; p++)
			if (!b->dropped[p])
				printf(" %*" PRIu64, width, b->conf.counts[t * nl + p]);
		putchar('\n');
	}
}

static void print_baseline_json(const struct baseline *b, const struct options *o)
{
	size_t nl = b->labels.n;
	double f1 = macro_f1(&b->conf);
	printf("{\"mode\":\"baseline\",\"split\":\"%s\",\"test_share\":", split_name(o));
	json_number(stdout, o->split == SPLIT_FILE ? NAN : o->test_share);
	if (o->split == SPLIT_FILE) {
		fputs(",\"split_file\":", stdout);
		json_string(stdout, o->split_file);
		printf(",\"val_left_out\":%" PRIu64 ",\"unlisted\":%" PRIu64, b->val_out, b->unlisted);
	}
	printf(",\"seed\":%" PRIu64 ",\"features\":%zu,\"packets_per_flow\":%u,\"ports\":%s,"
	       "\"rounds\":%d,\"depth\":%d,\"captures\":%zu,\"flows\":%zu,\"train\":%zu,\"test\":%zu,"
	       "\"unlabelled\":%" PRIu64 ",\n\"macro_f1\":", o->seed, b->set.ncol, o->packets,
	       o->ports ? "true" : "false", o->rounds, o->depth, b->sources.n, b->n_train + b->n_test,
	       b->n_train, b->n_test, b->unlabelled);
	json_number(stdout, f1);
	fputs(",\"f1\":", stdout);
	json_number(stdout, f1);
	fputs(",\"accuracy\":", stdout);
	json_number(stdout, accuracy(&b->conf));
	fputs(",\"left_out\":[", stdout);
	const char *sep = "";
	for (size_t l = 0; l < nl; l++)
		if (b->dropped[l]) {
			fputs(sep, stdout);
			json_string(stdout, b->labels.name[l]);
			sep = ",";
		}
	fputs("],\n\"classes\":[", stdout);
	sep = "\n";
	for (size_t l = 0; l < nl; l++) {
		if (b->dropped[l])
			continue;
		struct class_score s = class_score(&b->conf, (int)l);
		printf("%s{\"label\":", sep);
		json_string(stdout, b->labels.name[l]);
		printf(",\"train\":%" PRIu64 ",\"test\":%" PRIu64 ",\"precision\":", b->count[0][l],
		       b->count[1][l]);
		json_number(stdout, s.precision);
		fputs(",\"recall\":", stdout);
		json_number(stdout, s.recall);
		fputs(",\"f1\":", stdout);
		json_number(stdout, s.f1);
		putchar('}');
		sep = ",\n";
	}
	fputs("],\n\"confusion\":[", stdout);
	sep = "";
	for (size_t t = 0; t < nl; t++) {
		if (b->dropped[t])
			continue;
		printf("%s[", sep);
		const char *sep2 = "";
		for (size_t p = 0; p < nl; p++)
			if (!b->dropped[p]) {
				printf("%s%" PRIu64, sep2, b->conf.counts[t * nl + p]);
				sep2 = ",";
			}
		putchar(']');
		sep = ",";
	}
	fputs("]}\n", stdout);
}

static int baseline(int argc, char **argv, const struct options *o)
{
	static struct baseline b;
	struct progress pr;
	for (int i = 0; i < argc; i++)
		add_argument(&b, argv[i]);
	if (o->labels)
		read_label_table(&b, o->labels);
	if (b.n_in == 0)
		cli_usage_error(usage, "--baseline: no inputs (LABEL=FILE arguments or --labels)");
	size_t stdin_inputs = 0;
	for (size_t i = 0; i < b.n_in; i++)
		stdin_inputs += strcmp(b.in[i].path, "-") == 0;
	if (stdin_inputs > 1)
		cli_usage_error(usage, "only one input can be stdin");

	if (o->split == SPLIT_FILE)
		split_file_read(&b.split, o->split_file);
	b.set.ncol = flow_vector_len(o->packets, o->ports);
	progress_init(&pr, o->quiet);
	read_labelled(&b, o, &pr);
	run_baseline(&b, o);
	progress_done(&pr);
	if (o->json)
		print_baseline_json(&b, o);
	else
		print_baseline(&b, o);
	cli_close_out(stdout, "stdout");

	for (size_t i = 0; i < b.n_in; i++) {
		free(b.in[i].label);
		free(b.in[i].path);
	}
	free(b.in);
	names_free(&b.labels);
	names_free(&b.sources);
	flowset_free(&b.set);
	free(b.test);
	free(b.listed_test);
	split_file_free(&b.split);
	free(b.dropped);
	free(b.count[0]);
	free(b.count[1]);
	confusion_free(&b.conf);
	return 0;
}

/* ------------------------------------------------------------ options */

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "baseline", no_argument, NULL, 'b' },
		{ "depth", required_argument, NULL, 'd' },
		{ "folds", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "idle-timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "labels", required_argument, NULL, 'L' },
		{ "packets", required_argument, NULL, 'n' },
		{ "ports", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "split", required_argument, NULL, OPT_SPLIT },
		{ "split-file", required_argument, NULL, OPT_SPLIT_FILE },
		{ "test-share", required_argument, NULL, OPT_TEST_SHARE },
		{ "threads", required_argument, NULL, 'T' },
		{ "tokens", required_argument, NULL, OPT_TOKENS },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { .folds = 5, .rounds = 100, .depth = 6, .threads = 1, .packets = 20,
			     .seed = 1, .idle = 120, .test_share = 0.3, .eta = 0.3,
			     .split = SPLIT_CAPTURE };
	int ch, own_split = 0;

	cli_init(argc, argv);
	while ((ch = getopt_long(argc, argv, "bd:hjk:L:n:pqr:s:t:T:V", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			o.baseline = 1;
			break;
		case 'd':
			o.depth = (int)opt_u64(usage, "--depth", optarg, 1, 20);
			break;
		case 'h':
			cli_help(usage);
		case 'j':
			o.json = 1;
			break;
		case 'k':
			o.folds = (int)opt_u64(usage, "--folds", optarg, 2, 100);
			break;
		case 'L':
			o.labels = optarg;
			break;
		case 'n':
			o.packets = (unsigned)opt_u64(usage, "--packets", optarg, 1, 1000);
			break;
		case 'p':
			o.ports = 1;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'r':
			o.rounds = (int)opt_u64(usage, "--rounds", optarg, 1, 100000);
			break;
		case 's':
			o.seed = opt_u64(usage, "--seed", optarg, 0, UINT64_MAX);
			break;
		case 't':
			o.idle = opt_double(usage, "--idle-timeout", optarg, 0, 1e9);
			break;
		case 'T':
			o.threads = (int)opt_u64(usage, "--threads", optarg, 1, 1024);
			break;
		case 'V': {
			const char *const libs[] = { boost_version(), NULL };
			cli_version(libs);
		}
		case OPT_SPLIT:
			if (strcmp(optarg, "capture") == 0)
				o.split = SPLIT_CAPTURE;
			else if (strcmp(optarg, "time") == 0)
				o.split = SPLIT_TIME;
			else
				cli_usage_error(usage, "--split: capture or time, not '%s'", optarg);
			own_split = 1;
			break;
		case OPT_TEST_SHARE:
			o.test_share = opt_double(usage, "--test-share", optarg, 0.01, 0.99);
			own_split = 1;
			break;
		case OPT_SPLIT_FILE:
			o.split_file = optarg;
			break;
		case OPT_TOKENS:
			o.tokens = optarg;
			break;
		default:
			cli_usage_error(usage, "unknown option");
		}
	}
	argc -= optind;
	argv += optind;
	if (o.split_file && own_split)
		cli_usage_error(usage, "--split-file is the split: no --split or --test-share with it");
	if (o.split_file && !o.baseline)
		cli_usage_error(usage, "--split-file goes with --baseline");
	if (o.split_file)
		o.split = SPLIT_FILE;
	if (o.tokens && o.baseline)
		cli_usage_error(usage, "--tokens goes with a real and a generated input, not --baseline");
	if (o.baseline)
		return baseline(argc, argv, &o);
	if (o.labels)
		cli_usage_error(usage, "--labels goes with --baseline");

	if (argc != 2)
		cli_usage_error(usage, "two inputs wanted (real, generated), %d given", argc);
	if (strcmp(argv[0], "-") == 0 && strcmp(argv[1], "-") == 0)
		cli_usage_error(usage, "only one input can be stdin");
	return evaluate(argv, &o);
}
