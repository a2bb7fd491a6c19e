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
 * model's shards (--split-file; baseline.c). Options: options.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "realism.h"
#include "../eval/coherence.h"
#include "../eval/features.h"
#include "../eval/fields.h"
#include "../eval/input.h"
#include "json.h"
#include "../eval/folds.h"
#include "../eval/metrics.h"
#include "../eval/regroup.h"

#define MAX_REASONS 32

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

/* ------------------------------------------------------------ evaluation */

struct side {
	const char *path, *name;
	enum input_format format;
	uint64_t flows, packets, valid_packets;
	uint64_t tcp_flows, tcp_coherent;
	struct reasons bad_packets, bad_flows;
	size_t first_row, rows;      /* its vectors in the flowset */
	struct linktype_set linktypes;
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
	in.ip_layer = o->ip_layer;
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
	s->linktypes = in.linktypes;
	e->fields.skipped[k] += in.not_ip;
	field_set_warn_skipped(&e->fields, k, s->name);
}

/* Balanced classes, stratified folds, and the F1 of each fold. */
static void discriminate(struct evaluation *e, const struct options *o)
{
	size_t n0 = e->side[0].rows, n1 = e->side[1].rows;
	size_t n = n0 < n1 ? n0 : n1;
	if (n < (size_t)o->folds)
		errx(EX_DATAERR, "too few flows to cross-validate: %zu in %s (real), %zu in %s "
		     "(generated); %d folds need %d a side (--folds)", n0, e->side[0].name, n1,
		     e->side[1].name, o->folds, o->folds);
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
	struct scores all;
	scores_init(&all, 2, 0);
	e->fold_f1 = xmalloc((size_t)o->folds * sizeof *e->fold_f1);
	for (int f = 0; f < o->folds; f++) {
		size_t ntr = 0, nte = 0;
		for (size_t i = 0; i < 2 * n; i++)
			if (fold[i] == f)
				test[nte++] = idx[i];
			else
				train[ntr++] = idx[i];
		fit_predict(o, 2, &e->set, y, train, ntr, test, nte, pred);
		struct scores c;
		scores_init(&c, 2, 0);
		for (size_t i = 0; i < nte; i++) {
			scores_add(&c, y[test[i]], pred[i]);
			scores_add(&all, y[test[i]], pred[i]);
		}
		e->fold_f1[f] = scores_macro_f1(&c, NULL);
		scores_free(&c);
	}
	mean_std(e->fold_f1, (size_t)o->folds, &e->f1, &e->f1_std);
	e->acc = scores_accuracy(&all);
	scores_free(&all);
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
	json_number(stdout, share(s->valid_packets, s->packets), JSON_DIGITS);
	printf(",\"tcp_flows\":%" PRIu64 ",\"tcp_coherent\":%" PRIu64 ",\"tcp_valid\":", s->tcp_flows,
	       s->tcp_coherent);
	json_number(stdout, share(s->tcp_coherent, s->tcp_flows), JSON_DIGITS);
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
	json_number(stdout, e->f1, JSON_DIGITS);
	fputs(",\"f1_std\":", stdout);
	json_number(stdout, e->f1_std, JSON_DIGITS);
	fputs(",\"accuracy\":", stdout);
	json_number(stdout, e->acc, JSON_DIGITS);
	fputs(",\"validity\":", stdout);
	json_number(stdout, share(g->valid_packets, g->packets), JSON_DIGITS);
	fputs(",\"tcp_valid\":", stdout);
	json_number(stdout, share(g->tcp_coherent, g->tcp_flows), JSON_DIGITS);
	fputs(",\"regrouped\":", stdout);
	json_number(stdout, o->tokens ? share(e->regrouped, e->regroup.records) : NAN, JSON_DIGITS);
	if (o->tokens)
		printf(",\"gen_records\":%" PRIu64 ",\"gen_alone\":%" PRIu64 ",\"gen_capture_flows\":%"
		       PRIu64, e->regroup.records, e->regrouped, e->regroup.flows);
	fputs(",\"mean_jsd_packet\":", stdout);
	json_number(stdout, field_mean_jsd(e->res, 0), JSON_DIGITS);
	fputs(",\"mean_jsd_flow\":", stdout);
	json_number(stdout, field_mean_jsd(e->res, 1), JSON_DIGITS);
	fputs(",\n\"f1_folds\":[", stdout);
	for (int f = 0; f < o->folds; f++) {
		if (f)
			putchar(',');
		json_number(stdout, e->fold_f1[f], JSON_DIGITS);
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
	linktypes_warn(&e.side[0].linktypes, e.side[0].name, &e.side[1].linktypes, e.side[1].name,
		       o->ip_layer);
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

/* ------------------------------------------------------------ options */

int main(int argc, char **argv)
{
	struct options o;
	cli_init(argc, argv);
	int first = parse_options(argc, argv, &o);
	argc -= first;
	argv += first;
	if (o.baseline)
		return baseline(argc, argv, &o);
	if (argc != 2)
		cli_usage_error(usage, "two inputs wanted (real, generated), %d given", argc);
	if (strcmp(argv[0], "-") == 0 && strcmp(argv[1], "-") == 0)
		cli_usage_error(usage, "only one input can be stdin");
	return evaluate(argv, &o);
}
