/* cmd-classify.c: tgpt-infer classify: predicts the label of every flow of
 * token records or a shard with a fine-tuned classifier (classify.h), writes
 * one prediction record per flow (tgpt.pred) and scores the predictions
 * against the labels the flows carry: accuracy, macro-F1, per-class
 * precision, recall and F1, the confusion matrix, as text or JSON. */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer.h"
#include "json.h"
#include "record.h"
#include "stream.h"
#include "../tgpt/ckpt.h"
#include "../tgpt/classify.h"
#include "../tgpt/model.h"
#include "../tgpt/shard.h"
#include "../eval/metrics.h"

#define DEFAULT_BATCH 16
#define MAX_BATCH 4096
/* A forward pass of the classifier whose activations would take more than
 * this runs on fewer flows (the report says so). */
#define ACTS_BUDGET (2ull << 30)
/* Confusion matrices up to this many labels (a dense n x n table). */
#define MAX_CONFUSION 1024

struct clf_opts {
	const char *ckpt, *output, *report;
	int batch, threads, json, quiet, force;
	char **inputs;
	int n_inputs;
};

/* A flow waiting for the batch's forward pass: its first W tokens and what
 * its prediction record repeats. */
struct pending {
	uint16_t *tok;          /* (W) */
	size_t len;
	uint64_t id;
	char *source, *label;   /* NULL when the flow has none */
	long truth;             /* label id in the map; -1 unknown label, -2 none */
};

/* The classifier and everything counted over the inputs. */
struct classifier {
	struct model m;
	struct ckpt_labels map;
	struct clf clf;
	int batch;
	uint32_t *by_name;      /* (n) label ids sorted by name, for lookups */
	struct pending *pend;   /* (batch) */
	int n_pend;
	const uint16_t **flows; /* (batch) forward pass inputs */
	size_t *lens;
	float *probs;           /* (batch, n) */
	struct scores scores;   /* its confusion matrix up to MAX_CONFUSION labels */
	uint64_t flows_done, unlabelled, unknown;
	char *unknown_names[4]; /* the first few unknown labels, for the warning */
	int n_unknown_names;
	struct mp_writer *w;
};

static const struct ckpt_labels *sort_map; /* qsort has no user argument */

static int cmp_label_name(const void *a, const void *b)
{
	return strcmp(sort_map->name[*(const uint32_t *)a], sort_map->name[*(const uint32_t *)b]);
}

/* The map's id of label NAME, or -1. */
static long label_id(const struct classifier *c, const char *name)
{
	size_t lo = 0, hi = c->map.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int d = strcmp(name, c->map.name[c->by_name[mid]]);
		if (d == 0)
			return c->by_name[mid];
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* Flows per forward pass: the wanted batch, halved while the activations
 * of its (flows x rows, CLS + W (+ 1)) input would exceed ACTS_BUDGET. */
static int fit_batch(struct classifier *c, int want)
{
	int rows = clf_rows_per_flow(&c->map), T = clf_row_len(&c->map);
	int b = want;
	while (b > 1 && model_acts_bytes(&c->m, b * rows, T) > ACTS_BUDGET)
		b /= 2;
	return b;
}

static void classifier_open(struct classifier *c, const struct clf_opts *o)
{
	char err[1024];
	memset(c, 0, sizeof *c);
	int rc = clf_load(o->ckpt, &c->m, &c->map, err, sizeof err);
	if (rc)
		errx(rc, "%s", err);
	c->batch = fit_batch(c, o->batch);
	if (c->batch < o->batch && !o->quiet)
		warnx("--batch %d would take more than %llu MB of activations at a window of %u "
			"tokens: %d flows per pass", o->batch, ACTS_BUDGET >> 20, c->map.window,
			c->batch);
	if (clf_init(&c->clf, &c->m, &c->map, c->batch, err, sizeof err))
		errx(EX_DATAERR, "%s: %s", o->ckpt, err);
	uint32_t n = c->map.n;
	c->by_name = xcalloc(n, sizeof *c->by_name);
	for (uint32_t i = 0; i < n; i++)
		c->by_name[i] = i;
	sort_map = &c->map;
	qsort(c->by_name, n, sizeof *c->by_name, cmp_label_name);
	c->pend = xcalloc(c->batch, sizeof *c->pend);
	for (int b = 0; b < c->batch; b++)
		c->pend[b].tok = xcalloc(c->map.window, sizeof *c->pend[b].tok);
	c->flows = xcalloc(c->batch, sizeof *c->flows);
	c->lens = xcalloc(c->batch, sizeof *c->lens);
	c->probs = xcalloc((size_t)c->batch * n, sizeof *c->probs);
	scores_init(&c->scores, n, n <= MAX_CONFUSION);
}

static void classifier_close(struct classifier *c)
{
	for (int b = 0; b < c->batch; b++)
		free(c->pend[b].tok);
	for (int i = 0; i < c->n_unknown_names; i++)
		free(c->unknown_names[i]);
	free(c->pend);
	free(c->flows);
	free(c->lens);
	free(c->probs);
	free(c->by_name);
	scores_free(&c->scores);
	clf_free(&c->clf);
	ckpt_labels_free(&c->map);
	model_free(&c->m);
}

/* The header of a prediction stream (tgpt-infer(1), tgpt-stream(5)). */
static void pred_header(msgpack_packer *pk, const struct ckpt_labels *map, const char *model)
{
	msgpack_pack_map(pk, 8);
	mp_key(pk, "t"), mp_cstr(pk, "hdr");
	mp_key(pk, "schema"), mp_cstr(pk, "tgpt.pred");
	mp_key(pk, "v"), msgpack_pack_uint32(pk, 1);
	mp_key(pk, "tool"), mp_cstr(pk, "tgpt-infer");
	mp_key(pk, "tool_v"), mp_cstr(pk, TGPT_VERSION);
	mp_key(pk, "model"), mp_cstr(pk, model);
	mp_key(pk, "window"), msgpack_pack_uint32(pk, map->window);
	mp_key(pk, "labels");
	msgpack_pack_array(pk, map->n);
	for (uint32_t i = 0; i < map->n; i++)
		mp_cstr(pk, map->name[i]);
}

static void pred_write(msgpack_packer *pk, const struct ckpt_labels *map,
	const struct pending *p, uint32_t predicted, const float *probs)
{
	msgpack_pack_map(pk, 4 + (p->source != NULL) + (p->label != NULL));
	mp_key(pk, "t"), mp_cstr(pk, "pred");
	mp_key(pk, "id"), msgpack_pack_uint64(pk, p->id);
	if (p->source)
		mp_key(pk, "source"), mp_cstr(pk, p->source);
	mp_key(pk, "label"), mp_cstr(pk, map->name[predicted]);
	if (p->label)
		mp_key(pk, "true"), mp_cstr(pk, p->label);
	mp_key(pk, "probs");
	msgpack_pack_array(pk, map->n);
	for (uint32_t i = 0; i < map->n; i++)
		msgpack_pack_float(pk, probs[i]);
}

/* Predicts the pending flows, writes their records, counts the scores. */
static void classify_pending(struct classifier *c)
{
	int n = c->n_pend;
	if (n == 0)
		return;
	for (int b = 0; b < n; b++) {
		c->flows[b] = c->pend[b].tok;
		c->lens[b] = c->pend[b].len;
	}
	clf_predict(&c->clf, c->flows, c->lens, NULL, n, c->probs);
	uint32_t nl = c->map.n;
	for (int b = 0; b < n; b++) {
		struct pending *p = &c->pend[b];
		const float *probs = c->probs + (size_t)b * nl;
		uint32_t pred = clf_argmax(probs, nl);
		pred_write(&c->w->pk, &c->map, p, pred, probs);
		if (p->truth >= 0) {
			scores_add(&c->scores, (uint32_t)p->truth, pred);
		}
		free(p->source);
		free(p->label);
		p->source = p->label = NULL;
	}
	c->flows_done += (uint64_t)n;
	c->n_pend = 0;
}

static char *strndup_or_null(const char *s, size_t len)
{
	if (!s)
		return NULL;
	char *d = xmalloc(len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* Queues one flow (tokens are copied: host order, or little-endian bytes
 * when le is set); classifies the batch once it is full. Returns -1 when a
 * token is outside the model's vocabulary, with the token in *bad. */
static int queue_flow(struct classifier *c, const void *tokens, size_t len, int le, uint64_t id,
	const char *source, size_t source_len, const char *label, size_t label_len, unsigned *bad)
{
	struct pending *p = &c->pend[c->n_pend];
	size_t n = len < c->map.window ? len : c->map.window;
	for (size_t i = 0; i < n; i++) {
		unsigned t;
		if (le) {
			const uint8_t *b = (const uint8_t *)tokens + 2 * i;
			t = (unsigned)(b[0] | b[1] << 8);
		} else {
			t = ((const uint16_t *)tokens)[i];
		}
		if (t >= (unsigned)c->m.c.vocab) {
			*bad = t;
			return -1;
		}
		p->tok[i] = (uint16_t)t;
	}
	p->len = n;
	p->id = id;
	p->source = strndup_or_null(source, source_len);
	p->label = strndup_or_null(label, label_len);
	p->truth = -2;
	if (p->label) {
		p->truth = label_id(c, p->label);
		if (p->truth < 0) {
			c->unknown++;
			int seen = 0;
			for (int i = 0; i < c->n_unknown_names; i++)
				seen |= strcmp(c->unknown_names[i], p->label) == 0;
			if (!seen && c->n_unknown_names < 4)
				c->unknown_names[c->n_unknown_names++] = xstrdup(p->label);
		}
	} else {
		c->unlabelled++;
	}
	if (++c->n_pend == c->batch)
		classify_pending(c);
	return 0;
}

/* Whether PATH starts with a shard's magic (a pipe never does: its bytes
 * cannot be read twice). */
static int is_shard(const char *path)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY) : STDIN_FILENO;
	if (fd < 0)
		return 0;
	char magic[SHARD_MAGIC_LEN];
	int yes = pread(fd, magic, sizeof magic, 0) == (ssize_t)sizeof magic &&
		memcmp(magic, SHARD_MAGIC, SHARD_MAGIC_LEN) == 0;
	if (fd != STDIN_FILENO)
		close(fd);
	return yes;
}

static int classify_shard(struct classifier *c, const char *path, struct progress *prog)
{
	struct shard s;
	char err[1024];
	const char *open_path = strcmp(path, "-") ? path : "/dev/stdin";
	int status = shard_open(open_path, &s, err, sizeof err);
	if (status) {
		warnx("%s", err);
		return status;
	}
	if (strcmp(s.h.tokenizer, TOKENIZER_NAME) != 0 || s.h.tokenizer_version != TOKENIZER_VERSION) {
		warnx("%s: tokenizer %s %u, the model's is %s %d", path, s.h.tokenizer,
			s.h.tokenizer_version, TOKENIZER_NAME, TOKENIZER_VERSION);
		status = EX_DATAERR;
	}
	for (uint64_t i = 0; i < shard_count(&s) && !status && !c->w->failed; i++) {
		const uint16_t *tok;
		size_t len;
		uint16_t lid;
		unsigned bad;
		shard_flow(&s, i, &tok, &len, &lid);
		const char *label = shard_label(&s, lid);
		if (queue_flow(c, tok, len, 0, i, NULL, 0, label, label ? strlen(label) : 0,
				&bad) < 0) {
			warnx("%s: flow %" PRIu64 ": token %u is outside the model's vocabulary of %d",
				path, i, bad, c->m.c.vocab);
			status = EX_DATAERR;
		}
		progress_tick(prog, "%" PRIu64 " flows", c->flows_done + (uint64_t)c->n_pend);
	}
	classify_pending(c);
	shard_close(&s);
	return status;
}

static int classify_stream(struct classifier *c, const char *path, struct progress *prog)
{
	struct rec_reader r;
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		warnx("%s: a directory (tokshard's shards are files in it: %s/test.shard)", path,
			path);
		return EX_NOINPUT;
	}
	if (rec_open(&r, path) < 0) {
		warn("%s", path);
		return EX_NOINPUT;
	}
	int status = 0, got;
	while ((got = rec_next(&r, REC_TOK)) == REC_TOK && !c->w->failed) {
		const struct tok_rec *t = &r.tok;
		unsigned bad;
		if (queue_flow(c, t->tokens_le, t->n_tokens, 1, t->id, t->source, t->source_len,
				t->label, t->label_len, &bad) < 0) {
			warnx("%s: record %" PRIu64 ": token %u is outside the model's vocabulary of %d",
				strcmp(path, "-") ? path : "<stdin>", r.records, bad, c->m.c.vocab);
			status = EX_DATAERR;
			break;
		}
		progress_tick(prog, "%" PRIu64 " flows", c->flows_done + (uint64_t)c->n_pend);
	}
	if (got < 0) {
		warnx("%s", r.error);
		status = EX_DATAERR;
	}
	classify_pending(c);	/* what was read before the damage */
	rec_close(&r);
	return status;
}

/* ------------------------------------------------------------ the report */

static void report_confusion_text(FILE *f, const struct classifier *c)
{
	const struct scores *t = &c->scores;
	uint32_t n = c->map.n;
	if (!t->confusion) {
		fprintf(f, "confusion: not shown for %u labels (at most %d)\n", n, MAX_CONFUSION);
		return;
	}
	int w = 4;
	for (uint32_t i = 0; i < n; i++)
		if (scores_occurs(t, i) && (int)strlen(c->map.name[i]) > w)
			w = (int)strlen(c->map.name[i]);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < n; j++) {
			int d = snprintf(NULL, 0, "%" PRIu64, scores_cell(t, i, j));
			w = d > w ? d : w;
		}
	fprintf(f, "confusion (rows: true label, columns: predicted):\n%*s", w, "");
	for (uint32_t j = 0; j < n; j++)
		if (scores_occurs(t, j))
			fprintf(f, " %*s", w, c->map.name[j]);
	fputc('\n', f);
	for (uint32_t i = 0; i < n; i++) {
		if (!scores_occurs(t, i))
			continue;
		fprintf(f, "%-*s", w, c->map.name[i]);
		for (uint32_t j = 0; j < n; j++)
			if (scores_occurs(t, j))
				fprintf(f, " %*" PRIu64, w, scores_cell(t, i, j));
		fputc('\n', f);
	}
}

/* The report as text, ending with the flows/s line. */
static void report_text(FILE *f, const struct classifier *c, double fps)
{
	const struct scores *t = &c->scores;
	fprintf(f, "flows: %" PRIu64 " (labelled %" PRIu64 ", unknown true label %" PRIu64
		", unlabelled %" PRIu64 ")\n", c->flows_done, t->n, c->unknown, c->unlabelled);
	if (t->n) {
		uint32_t classes;
		double f1 = scores_macro_f1(t, &classes);
		fprintf(f, "accuracy: %.4f\nmacro-F1: %.4f (%u classes)\n", scores_accuracy(t), f1,
			classes);
		report_confusion_text(f, c);
		int w = 5;
		for (uint32_t i = 0; i < c->map.n; i++)
			if (scores_occurs(t, i) && (int)strlen(c->map.name[i]) > w)
				w = (int)strlen(c->map.name[i]);
		fprintf(f, "%-*s %9s %9s %9s %9s\n", w, "label", "precision", "recall", "F1",
			"support");
		for (uint32_t i = 0; i < c->map.n; i++) {
			if (!scores_occurs(t, i))
				continue;
			struct class_score s = class_score(t, i);
			fprintf(f, "%-*s %9.4f %9.4f %9.4f %9" PRIu64 "\n", w, c->map.name[i],
				s.precision, s.recall, s.f1, s.support);
		}
	} else {
		fputs("no flow carries a label the classifier knows: no scores\n", f);
	}
	fprintf(f, "flows/s: %.1f\n", fps);
}

static void report_json(FILE *f, const struct classifier *c, const struct clf_opts *o,
	double seconds, double fps)
{
	const struct scores *t = &c->scores;
	uint32_t n = c->map.n, classes = 0;
	double f1 = scores_macro_f1(t, &classes);
	fprintf(f, "{\"model\":");
	json_string(f, o->ckpt);
	fprintf(f, ",\"window\":%u,\"flows\":%" PRIu64 ",\"labelled\":%" PRIu64
		",\"unknown_true\":%" PRIu64 ",\"unlabelled\":%" PRIu64 ",\"accuracy\":",
		c->map.window, c->flows_done, t->n, c->unknown, c->unlabelled);
	json_number(f, scores_accuracy(t), JSON_DIGITS_EXACT);
	fputs(",\"macro_f1\":", f);
	json_number(f, f1, JSON_DIGITS_EXACT);
	fprintf(f, ",\"classes\":%u,\"labels\":[", classes);
	for (uint32_t i = 0; i < n; i++) {
		fputs(i ? "," : "", f);
		json_string(f, c->map.name[i]);
	}
	fputs("],\"per_class\":[", f);
	for (uint32_t i = 0; i < n; i++) {
		struct class_score s = class_score(t, i);
		fputs(i ? ",{\"precision\":" : "{\"precision\":", f);
		json_number(f, s.precision, JSON_DIGITS_EXACT);
		fputs(",\"recall\":", f);
		json_number(f, s.recall, JSON_DIGITS_EXACT);
		fputs(",\"f1\":", f);
		json_number(f, s.f1, JSON_DIGITS_EXACT);
		fprintf(f, ",\"support\":%" PRIu64 "}", s.support);
	}
	fputs("],\"confusion\":", f);
	if (t->confusion) {
		fputc('[', f);
		for (uint32_t i = 0; i < n; i++) {
			fputs(i ? ",[" : "[", f);
			for (uint32_t j = 0; j < n; j++)
				fprintf(f, "%s%" PRIu64, j ? "," : "", scores_cell(t, i, j));
			fputc(']', f);
		}
		fputc(']', f);
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\"batch\":%d,\"threads\":%d,\"seconds\":", c->batch, o->threads);
	json_number(f, seconds, JSON_DIGITS_EXACT);
	fputs(",\"flows_per_s\":", f);
	json_number(f, fps, JSON_DIGITS_EXACT);
	fputs("}\n", f);
}

static void report(const struct classifier *c, const struct clf_opts *o, double seconds)
{
	double fps = seconds > 0 ? (double)c->flows_done / seconds : 0.0;
	if (c->unknown) {
		char names[256] = "";
		size_t at = 0;
		for (int i = 0; i < c->n_unknown_names && at < sizeof names; i++)
			at += (size_t)snprintf(names + at, sizeof names - at, "%s'%s'", i ? ", " : "",
				c->unknown_names[i]);
		warnx("%" PRIu64 " flows with a true label the classifier does not know (%s%s): "
			"left out of the scores", c->unknown, names,
			c->n_unknown_names == 4 ? ", ..." : "");
	}
	/* the report to --report FILE or stderr; the last line on stderr is
	 * flows/s in any case */
	struct atomic_file rf = { 0 };
	FILE *f = stderr;
	if (o->report) {
		atomic_open(&rf, o->report);
		f = rf.f;
	}
	if (o->json)
		report_json(f, c, o, seconds, fps);
	else if (f != stderr || !o->quiet)
		report_text(f, c, fps);
	if (f != stderr || o->json || o->quiet)
		fprintf(stderr, "flows/s: %.1f\n", fps);
	if (o->report) {
		if (ferror(rf.f) || fflush(rf.f)) {
			warn("%s", o->report);
			atomic_abort(&rf);
			exit(EX_IOERR);
		}
		atomic_commit(&rf);
	}
}

static void parse_classify(int argc, char **argv, struct clf_opts *o)
{
	enum { O_REPORT = 256, O_JSON, O_FORCE };
	static const struct option longopts[] = {
		{ "batch", required_argument, NULL, 'b' },
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, O_JSON },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "report", required_argument, NULL, O_REPORT },
		{ "threads", required_argument, NULL, 'j' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof *o);
	o->output = "-";
	o->batch = DEFAULT_BATCH;
	o->threads = default_threads();
	int ch;
	optind = 2;	/* after the command; messages still name argv[0] */
	while ((ch = cli_getopt(argc, argv, "b:hj:o:qV", longopts, classify_usage)) != -1) {
		switch (ch) {
		case 'b': o->batch = (int)opt_u64(classify_usage, "--batch", optarg, 1, MAX_BATCH); break;
		case 'j': o->threads = (int)opt_u64(classify_usage, "--threads", optarg, 1, MAX_THREADS); break;
		case 'o': o->output = optarg; break;
		case 'q': o->quiet = 1; break;
		case O_REPORT: o->report = optarg; break;
		case O_JSON: o->json = 1; break;
		case O_FORCE: o->force = 1; break;
		case 'h': cli_help(usage);
		case 'V': version();
		default: cli_usage_error(classify_usage, "unknown option or missing argument");
		}
	}
	if (optind >= argc)
		cli_usage_error(classify_usage, "classify: which checkpoint?");
	o->ckpt = argv[optind++];
	static char *stdin_only[] = { "-", NULL };
	o->inputs = optind < argc ? argv + optind : stdin_only;
	o->n_inputs = optind < argc ? argc - optind : 1;
	if (o->report && strcmp(o->report, "-") == 0 && strcmp(o->output, "-") == 0)
		cli_usage_error(classify_usage, "--report - and the predictions cannot share stdout: "
			"give -o FILE");
	int stdin_uses = 0;
	for (int i = 0; i < o->n_inputs; i++)
		stdin_uses += strcmp(o->inputs[i], "-") == 0;
	if (stdin_uses > 1)
		cli_usage_error(classify_usage, "stdin ('-') named twice");
}

int cmd_classify(int argc, char **argv)
{
	struct clf_opts o;
	parse_classify(argc, argv, &o);
	model_set_threads(o.threads);
	struct classifier c;
	classifier_open(&c, &o);
	struct atomic_file out;
	open_output(&out, o.output, o.force);
	struct mp_writer w;
	mp_writer_init(&w, out.f, o.output);
	c.w = &w;
	pred_header(&w.pk, &c.map, o.ckpt);
	struct progress prog;
	progress_init(&prog, o.quiet);
	int status = 0;
	double t0 = now_seconds();
	for (int i = 0; i < o.n_inputs && !w.failed; i++) {
		const char *in = o.inputs[i];
		int s = is_shard(in) ? classify_shard(&c, in, &prog) : classify_stream(&c, in, &prog);
		if (s && !status)
			status = s;
	}
	double seconds = now_seconds() - t0;
	progress_done(&prog);
	close_output(&out, &w, o.output, status, c.flows_done, "predictions");
	report(&c, &o, seconds);
	classifier_close(&c);
	return status;
}
