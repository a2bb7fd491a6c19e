/* baseline.c: realism-eval --baseline: the classical peer of tgpt's
 * fine-tuned classifier. Labelled flows (LABEL=FILE inputs, a table of
 * them, or flow streams with labels) become feature vectors; a split of
 * their own (by capture or by time) or the classifier's (tokshard's
 * split.tsv) sets them apart; XGBoost trains on one side and is scored on
 * the other: accuracy, macro-F1, per-class precision, recall and F1, and
 * the confusion matrix, as text or JSON. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "realism.h"
#include "splitfile.h"
#include "../eval/bytevec.h"
#include "../eval/features.h"
#include "../eval/input.h"
#include "json.h"
#include "../eval/folds.h"
#include "../eval/metrics.h"

struct labelled_input {
	char *label;   /* NULL: the records' own labels */
	char *path;
};

struct baseline {
	struct labelled_input *in;
	size_t n_in, in_cap;
	struct intern labels, sources; /* ids in order of arrival */
	struct flowset set;
	uint64_t unlabelled;
	struct split_file split;  /* --split-file */
	int *listed_test;         /* --split-file: per flow, 1 on the test side */
	size_t listed_test_cap;
	uint64_t unlisted, val_out; /* --split-file: flows not listed, listed for val */
	int *test;        /* per flow: 1 in the test set */
	int *dropped;     /* per label: left out (--split capture, one capture) */
	size_t n_train, n_test;
	struct scores conf;
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
		in.ip_layer = o->ip_layer;
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
			if (o->byte_features)
				byte_vector(f, o->first_packets, o->first_bytes, row);
			else
				flow_vector(f, o->packets, o->ports, &acc, row);
			size_t r = b->set.n - 1;
			if (e) {
				grow((void **)&b->listed_test, &b->listed_test_cap, r + 1,
				     sizeof *b->listed_test);
				b->listed_test[r] = e->side == SIDE_TEST;
			}
			b->set.label[r] = (int)intern_add(&b->labels, label, label_len);
			const char *src = f->source_len ? f->source : in.path;
			b->set.source[r] = (int)intern_add(&b->sources, src,
							    f->source_len ? f->source_len : strlen(src));
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
			warnx("--split capture: label %s is in one capture only: left out", b->labels.e[l].s);
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
	scores_init(&b->conf, (uint32_t)nl, 1);
	for (size_t i = 0; i < b->n_test; i++)
		scores_add(&b->conf, b->set.label[test[i]], pred[i]);
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
		int len = (int)strlen(b->labels.e[l].s);
		width = len > width ? len : width;
		kept += !b->dropped[l];
	}
	printf("baseline: supervised flow classification\n");
	if (o->byte_features)
		printf("  XGBoost, %d rounds of depth %d on %zu features (bytes: first %u bytes of the first "
		       "%u packets, masked, and their intervals), seed %" PRIu64 "\n", o->rounds, o->depth,
		       b->set.ncol, o->first_bytes, o->first_packets, o->seed);
	else
		printf("  XGBoost, %d rounds of depth %d on %zu features (first %u packets, %s), seed %" PRIu64 "\n",
		       o->rounds, o->depth, b->set.ncol, o->packets, o->ports ? "with ports" : "no ports", o->seed);
	printf("  %zu labels, %zu flows from %zu capture%s; split by %s: %zu to train, %zu to test ",
	       kept, b->n_train + b->n_test, b->sources.n, b->sources.n == 1 ? "" : "s",
	       o->split == SPLIT_FILE ? o->split_file : split_name(o), b->n_train, b->n_test);
	if (o->split == SPLIT_FILE)
		printf("(%" PRIu64 " of val left out)\n", b->val_out);
	else
		printf("(test share %.2f)\n", o->test_share);
	printf("  macro-F1  %.4f\n  accuracy  %.4f\n\n", scores_macro_f1(&b->conf, NULL),
	       scores_accuracy(&b->conf));
	printf("  %-*s %7s %7s %9s %7s %7s\n", width, "label", "train", "test", "precision", "recall", "f1");
	for (size_t l = 0; l < nl; l++) {
		if (b->dropped[l])
			continue;
		struct class_score s = class_score(&b->conf, (uint32_t)l);
		printf("  %-*s %7" PRIu64 " %7" PRIu64 " %9.4f %7.4f %7.4f\n", width, b->labels.e[l].s,
		       b->count[0][l], b->count[1][l], s.precision, s.recall, s.f1);
	}
	printf("\n  confusion (rows: true label, columns: predicted, in the order above)\n  %-*s", width, "");
	for (size_t l = 0; l < nl; l++)
		if (!b->dropped[l])
			printf(" %*.*s", width, width, b->labels.e[l].s);
	putchar('\n');
	for (size_t t = 0; t < nl; t++) {
		if (b->dropped[t])
			continue;
		printf("  %-*s", width, b->labels.e[t].s);
		for (size_t p = 0; p < nl; p++)
			if (!b->dropped[p])
				printf(" %*" PRIu64, width, scores_cell(&b->conf, (uint32_t)t, (uint32_t)p));
		putchar('\n');
	}
}

static void print_baseline_json(const struct baseline *b, const struct options *o)
{
	size_t nl = b->labels.n;
	double f1 = scores_macro_f1(&b->conf, NULL);
	printf("{\"mode\":\"baseline\",\"split\":\"%s\",\"test_share\":", split_name(o));
	json_number(stdout, o->split == SPLIT_FILE ? NAN : o->test_share, JSON_DIGITS);
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
	json_number(stdout, f1, JSON_DIGITS);
	if (o->byte_features)
		printf(",\"feature_set\":\"bytes\",\"first_packets\":%u,\"first_bytes\":%u", o->first_packets,
		       o->first_bytes);
	fputs(",\"f1\":", stdout);
	json_number(stdout, f1, JSON_DIGITS);
	fputs(",\"accuracy\":", stdout);
	json_number(stdout, scores_accuracy(&b->conf), JSON_DIGITS);
	fputs(",\"left_out\":[", stdout);
	const char *sep = "";
	for (size_t l = 0; l < nl; l++)
		if (b->dropped[l]) {
			fputs(sep, stdout);
			json_string(stdout, b->labels.e[l].s);
			sep = ",";
		}
	fputs("],\n\"classes\":[", stdout);
	sep = "\n";
	for (size_t l = 0; l < nl; l++) {
		if (b->dropped[l])
			continue;
		struct class_score s = class_score(&b->conf, (uint32_t)l);
		printf("%s{\"label\":", sep);
		json_string(stdout, b->labels.e[l].s);
		printf(",\"train\":%" PRIu64 ",\"test\":%" PRIu64 ",\"precision\":", b->count[0][l],
		       b->count[1][l]);
		json_number(stdout, s.precision, JSON_DIGITS);
		fputs(",\"recall\":", stdout);
		json_number(stdout, s.recall, JSON_DIGITS);
		fputs(",\"f1\":", stdout);
		json_number(stdout, s.f1, JSON_DIGITS);
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
				printf("%s%" PRIu64, sep2, scores_cell(&b->conf, (uint32_t)t, (uint32_t)p));
				sep2 = ",";
			}
		putchar(']');
		sep = ",";
	}
	fputs("]}\n", stdout);
}

int baseline(int argc, char **argv, const struct options *o)
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
	b.set.ncol = o->byte_features ? byte_vector_len(o->first_packets, o->first_bytes)
				      : flow_vector_len(o->packets, o->ports);
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
	intern_free(&b.labels);
	intern_free(&b.sources);
	flowset_free(&b.set);
	free(b.test);
	free(b.listed_test);
	split_file_free(&b.split);
	free(b.dropped);
	free(b.count[0]);
	free(b.count[1]);
	scores_free(&b.conf);
	return 0;
}
