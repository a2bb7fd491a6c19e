/* infer.c: tgpt-infer: a trained tgpt model at work. `classify` predicts the
 * label of every flow of token records or a shard with a fine-tuned
 * classifier (classify.h) and scores the predictions against the labels the
 * flows carry; `generate` samples new flows with the recurrent model
 * (recurrent.h, generate.h) under the decoding grammar (grammar.h; --raw:
 * free sampling, every packet checked as it completes, as before), and
 * writes them as token records for tok2pcap(1); a class-conditional model
 * (conditional.h) generates flows of the label it is given. */
#include <blis.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "classify.h"
#include "cli.h"
#include "conditional.h"
#include "generate.h"
#include "model.h"
#include "packet.h"
#include "record.h"
#include "shard.h"
#include "stream.h"

static const char usage[] =
	"usage: tgpt-infer classify [-q] [-j N] [-b B] [-o FILE] [--report FILE] [--json]\n"
	"                           [--force] CKPT [FILE ...]\n"
	"       tgpt-infer generate [-q] [-j N] [-n N] [-s SEED] [-k K] [-T TEMP] [--label X]\n"
	"                           [--prompt FILE] [--prompt-packets K] [--max-tokens N]\n"
	"                           [--retries N] [--streams S] [--linktype N] [--raw]\n"
	"                           [--idle-timeout SECS] [-o FILE] [--force] CKPT\n"
	"classify: predicts the label of every flow of token records (flow2tok) or of a\n"
	"shard (tokshard, e.g. DIR/test.shard) in FILEs or stdin ('-') with the\n"
	"classifier CKPT (tgpt-train --labels), writes one prediction record per flow\n"
	"(schema tgpt.pred) and, for flows with labels, accuracy, macro-F1 and the\n"
	"confusion matrix on stderr. The last line on stderr is \"flows/s: X\".\n"
	"  -b, --batch B          flows per forward pass (default 16)\n"
	"  -o, --output FILE      the predictions (default stdout)\n"
	"      --report FILE      the report to FILE instead of stderr ('-': stdout)\n"
	"      --json             the report as one JSON document\n"
	"generate: samples N flows with the model CKPT under the decoding grammar (each\n"
	"flow one flow of valid packets, coherent TCP) and writes them as token records\n"
	"(tgpt.tok) for tok2pcap; a summary on stderr, last line \"tokens/s: X\"; exit 65\n"
	"when no flow holds a packet.\n"
	"      --raw              sample freely, checking each packet and sampling a\n"
	"                         failing one again (--retries), as the paper does\n"
	"      --idle-timeout S   longest interval between a flow's packets, the idle\n"
	"                         timeout pcap2flow -t will regroup with (default 120)\n"
	"  -n, --flows N          flows to generate (default 1; with --prompt: one per\n"
	"                         prompt record)\n"
	"  -s, --seed N           seed of the sampling (default 1)\n"
	"  -k, --top-k K          sample among the K likeliest tokens (default 26, 0: all)\n"
	"  -T, --temperature X    temperature (default 1, 0: always the likeliest)\n"
	"  -l, --label X          flows of label X (a model of tgpt-train --conditional,\n"
	"                         which otherwise takes a prompt record's label or draws\n"
	"                         one by the training frequencies)\n"
	"  -p, --prompt FILE      token records whose first packets start the flows\n"
	"                         ('-': stdin), taken in turn\n"
	"      --prompt-packets K packets of each prompt record (default 1)\n"
	"      --max-tokens N     tokens per flow, prompt and END included (default 4\n"
	"                         times the model's context)\n"
	"      --retries N        with --raw, samplings of a failing packet before the\n"
	"                         flow ends (default 8)\n"
	"      --streams S        flows generated side by side (default 16)\n"
	"      --linktype N       the link type of escape tokens (255), for the checks\n"
	"      --link-token N     every packet's link-type token is N (e.g. 1,\n"
	"                         Ethernet), so all flows fit one pcap\n"
	"      --precision P      the weights' precision in the products: int8\n"
	"                         (default, the fastest), f16 or f32 (exact)\n"
	"  -o, --output FILE      the flows (default stdout)\n"
	"Both:\n"
	"  -j, --threads N        threads (default: the number of CPUs)\n"
	"      --force            write binary output even to a terminal\n"
	"  -q, --quiet            no progress, no summary (still the last line)\n"
	"  -h, --help             this help\n"
	"  -V, --version          version and libraries\n";

#define MAX_THREADS 1024
#define DEFAULT_BATCH 16
#define MAX_BATCH 4096
/* A forward pass of the classifier whose activations would take more than
 * this runs on fewer flows (the report says so). */
#define ACTS_BUDGET (2ull << 30)
/* Confusion matrices up to this many labels (a dense n x n table). */
#define MAX_CONFUSION 1024
#define DEFAULT_STREAMS 16
#define MAX_STREAMS 4096
/* generate runs its flows in groups of this many (gen_run numbers flows
 * from 0 in every call): group g draws from the seed gen_rng_seed(seed, g),
 * and flow i of a run is flow i % GEN_GROUP of group i / GEN_GROUP. A fixed
 * number, so the flows depend on the seed and their index only. */
#define GEN_GROUP 256
#define MIN_MAX_TOKENS 12 /* START, link type, 8 time tokens, a byte, END */

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static _Noreturn void version(void)
{
	static char blis[64];
	snprintf(blis, sizeof blis, "BLIS %s", bli_info_get_version_str());
	const char *libs[] = { blis, NULL };
	cli_version(libs);
}

/* Output FILE ("-": stdout, refused on a terminal without --force). */
static void open_output(struct atomic_file *out, const char *path, int force)
{
	if (strcmp(path, "-") == 0)
		cli_refuse_tty(force);
	atomic_open(out, path);
	static char obuf[1 << 20];
	setvbuf(out->f, obuf, _IOFBF, sizeof obuf);
}

/* Flushes the msgpack output and commits it; exits EX_IOERR on failure. */
static void close_output(struct atomic_file *out, struct mp_writer *w, const char *path)
{
	if (mp_writer_flush(w) < 0) {
		warn("%s", strcmp(path, "-") ? path : "stdout");
		atomic_abort(out);
		exit(EX_IOERR);
	}
	atomic_commit(out);
}

/* A JSON string (quotes and escapes included). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* A JSON number, null when it is not finite. */
static void json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.9g", v);
	else
		fputs("null", f);
}

/* ================================================================ classify */

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
	struct clf_tally tally;
	uint64_t *confusion;    /* (n, n) true x predicted, NULL beyond MAX_CONFUSION */
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

/* Input rows per flow: 1, or with two-token labels one per distinct first
 * token (classify.h). */
static int rows_per_flow(const struct ckpt_labels *map)
{
	if (map->k != 2)
		return 1;
	static unsigned char seen[65536];
	memset(seen, 0, sizeof seen);
	int rows = 0;
	for (uint32_t i = 0; i < map->n; i++)
		if (!seen[map->token[2 * i]]++)
			rows++;
	return rows;
}

/* Flows per forward pass: the wanted batch, halved while the activations
 * of its (flows x rows, CLS + W (+ 1)) input would exceed ACTS_BUDGET. */
static int fit_batch(struct classifier *c, int want)
{
	int rows = rows_per_flow(&c->map), T = clf_row_len(&c->map);
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
	clf_tally_init(&c->tally, n);
	if (n <= MAX_CONFUSION)
		c->confusion = xcalloc((size_t)n * n, sizeof *c->confusion);
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
	free(c->confusion);
	clf_tally_free(&c->tally);
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
			clf_tally_add(&c->tally, (uint32_t)p->truth, pred);
			if (c->confusion)
				c->confusion[(size_t)p->truth * nl + pred]++;
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
	if (shard_open(open_path, &s, err, sizeof err) < 0) {
		warnx("%s", err);
		return EX_DATAERR;
	}
	int status = 0;
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

struct class_score {
	double precision, recall, f1;
	uint64_t support;
};

static struct class_score class_score(const struct clf_tally *t, uint32_t i)
{
	uint64_t tp = t->tp[i], fp = t->fp[i], fn = t->fn[i];
	struct class_score s = {
		.precision = tp + fp ? (double)tp / (double)(tp + fp) : NAN,
		.recall = tp + fn ? (double)tp / (double)(tp + fn) : NAN,
		.f1 = 2 * tp + fp + fn ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : NAN,
		.support = tp + fn,
	};
	return s;
}

/* Whether class i occurs in the truth or the predictions. */
static int class_occurs(const struct clf_tally *t, uint32_t i)
{
	return t->tp[i] || t->fp[i] || t->fn[i];
}

static void report_confusion_text(FILE *f, const struct classifier *c)
{
	const struct clf_tally *t = &c->tally;
	uint32_t n = c->map.n;
	if (!c->confusion) {
		fprintf(f, "confusion: not shown for %u labels (at most %d)\n", n, MAX_CONFUSION);
		return;
	}
	int w = 4;
	for (uint32_t i = 0; i < n; i++)
		if (class_occurs(t, i) && (int)strlen(c->map.name[i]) > w)
			w = (int)strlen(c->map.name[i]);
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < n; j++) {
			int d = snprintf(NULL, 0, "%" PRIu64, c->confusion[(size_t)i * n + j]);
			w = d > w ? d : w;
		}
	fprintf(f, "confusion (rows: true label, columns: predicted):\n%*s", w, "");
	for (uint32_t j = 0; j < n; j++)
		if (class_occurs(t, j))
			fprintf(f, " %*s", w, c->map.name[j]);
	fputc('\n', f);
	for (uint32_t i = 0; i < n; i++) {
		if (!class_occurs(t, i))
			continue;
		fprintf(f, "%-*s", w, c->map.name[i]);
		for (uint32_t j = 0; j < n; j++)
			if (class_occurs(t, j))
				fprintf(f, " %*" PRIu64, w, c->confusion[(size_t)i * n + j]);
		fputc('\n', f);
	}
}

/* The report as text, ending with the flows/s line. */
static void report_text(FILE *f, const struct classifier *c, double fps)
{
	const struct clf_tally *t = &c->tally;
	fprintf(f, "flows: %" PRIu64 " (labelled %" PRIu64 ", unknown true label %" PRIu64
		", unlabelled %" PRIu64 ")\n", c->flows_done, t->n, c->unknown, c->unlabelled);
	if (t->n) {
		uint32_t classes;
		double f1 = clf_macro_f1(t, &classes);
		fprintf(f, "accuracy: %.4f\nmacro-F1: %.4f (%u classes)\n", clf_accuracy(t), f1,
			classes);
		report_confusion_text(f, c);
		int w = 5;
		for (uint32_t i = 0; i < c->map.n; i++)
			if (class_occurs(t, i) && (int)strlen(c->map.name[i]) > w)
				w = (int)strlen(c->map.name[i]);
		fprintf(f, "%-*s %9s %9s %9s %9s\n", w, "label", "precision", "recall", "F1",
			"support");
		for (uint32_t i = 0; i < c->map.n; i++) {
			if (!class_occurs(t, i))
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
	const struct clf_tally *t = &c->tally;
	uint32_t n = c->map.n, classes = 0;
	double f1 = clf_macro_f1(t, &classes);
	fprintf(f, "{\"model\":");
	json_str(f, o->ckpt);
	fprintf(f, ",\"window\":%u,\"flows\":%" PRIu64 ",\"labelled\":%" PRIu64
		",\"unknown_true\":%" PRIu64 ",\"unlabelled\":%" PRIu64 ",\"accuracy\":",
		c->map.window, c->flows_done, t->n, c->unknown, c->unlabelled);
	json_num(f, clf_accuracy(t));
	fputs(",\"macro_f1\":", f);
	json_num(f, f1);
	fprintf(f, ",\"classes\":%u,\"labels\":[", classes);
	for (uint32_t i = 0; i < n; i++) {
		fputs(i ? "," : "", f);
		json_str(f, c->map.name[i]);
	}
	fputs("],\"per_class\":[", f);
	for (uint32_t i = 0; i < n; i++) {
		struct class_score s = class_score(t, i);
		fputs(i ? ",{\"precision\":" : "{\"precision\":", f);
		json_num(f, s.precision);
		fputs(",\"recall\":", f);
		json_num(f, s.recall);
		fputs(",\"f1\":", f);
		json_num(f, s.f1);
		fprintf(f, ",\"support\":%" PRIu64 "}", s.support);
	}
	fputs("],\"confusion\":", f);
	if (c->confusion) {
		fputc('[', f);
		for (uint32_t i = 0; i < n; i++) {
			fputs(i ? ",[" : "[", f);
			for (uint32_t j = 0; j < n; j++)
				fprintf(f, "%s%" PRIu64, j ? "," : "", c->confusion[(size_t)i * n + j]);
			fputc(']', f);
		}
		fputc(']', f);
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\"batch\":%d,\"threads\":%d,\"seconds\":", c->batch, o->threads);
	json_num(f, seconds);
	fputs(",\"flows_per_s\":", f);
	json_num(f, fps);
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
	while ((ch = getopt_long(argc, argv, "b:hj:o:qV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b': o->batch = (int)opt_u64(usage, "--batch", optarg, 1, MAX_BATCH); break;
		case 'j': o->threads = (int)opt_u64(usage, "--threads", optarg, 1, MAX_THREADS); break;
		case 'o': o->output = optarg; break;
		case 'q': o->quiet = 1; break;
		case O_REPORT: o->report = optarg; break;
		case O_JSON: o->json = 1; break;
		case O_FORCE: o->force = 1; break;
		case 'h': cli_help(usage);
		case 'V': version();
		default: cli_usage_error(usage, "unknown option or missing argument");
		}
	}
	if (optind >= argc)
		cli_usage_error(usage, "classify: which checkpoint?");
	o->ckpt = argv[optind++];
	static char *stdin_only[] = { "-", NULL };
	o->inputs = optind < argc ? argv + optind : stdin_only;
	o->n_inputs = optind < argc ? argc - optind : 1;
	if (o->report && strcmp(o->report, "-") == 0 && strcmp(o->output, "-") == 0)
		cli_usage_error(usage, "--report - and the predictions cannot share stdout: "
			"give -o FILE");
	int stdin_uses = 0;
	for (int i = 0; i < o->n_inputs; i++)
		stdin_uses += strcmp(o->inputs[i], "-") == 0;
	if (stdin_uses > 1)
		cli_usage_error(usage, "stdin ('-') named twice");
}

static int cmd_classify(int argc, char **argv)
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
	close_output(&out, &w, o.output);
	report(&c, &o, seconds);
	classifier_close(&c);
	return status;
}

/* ================================================================ generate */

struct gen_cli {
	const char *ckpt, *output, *prompt, *label;
	uint64_t n, seed, max_tokens;
	int n_given, top_k, prompt_packets, retries, streams, threads, quiet, force;
	double temperature;
	uint32_t linktype;
	int link_token;	/* --link-token: every packet's link-type token, or -1 */
	enum rec_precision precision;
	int raw;	/* --raw: no grammar */
	double idle;	/* --idle-timeout */
};

/* Prompts: per prompt record, its first packets as tokens and, for a
 * class-conditional model, the entry of its label (-1: none it knows). */
struct prompts {
	int **tok;
	size_t *len;
	long *entry;
	size_t n, cap;
};

/* lead[0..nlead) then tok[0..n), in a new buffer. */
static int *concat_tokens(const int *lead, size_t nlead, const int *tok, size_t n)
{
	int *t = xcalloc(nlead + n + 1, sizeof *t);
	if (nlead)
		memcpy(t, lead, nlead * sizeof *t);
	if (n)
		memcpy(t + nlead, tok, n * sizeof *t);
	return t;
}

static void prompts_add(struct prompts *p, const int *tok, size_t n, long entry)
{
	if (p->n == p->cap) {
		size_t cap = p->cap;
		grow((void **)&p->tok, &cap, p->n + 1, sizeof *p->tok);
		cap = p->cap;
		grow((void **)&p->len, &cap, p->n + 1, sizeof *p->len);
		cap = p->cap;
		grow((void **)&p->entry, &cap, p->n + 1, sizeof *p->entry);
		p->cap = cap;
	}
	p->tok[p->n] = concat_tokens(NULL, 0, tok, n);
	p->entry[p->n] = entry;
	p->len[p->n++] = n;
}

static void prompts_free(struct prompts *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->tok[i]);
	free(p->tok);
	free(p->len);
	free(p->entry);
	memset(p, 0, sizeof *p);
}

/* The first K packets of a token record (START ... up to the next START
 * after them, or END), into *buf. Returns their tokens, or -1 with *why
 * when the record is no flow the model can read. */
static long first_packets(const struct tok_rec *t, int K, int vocab, int **buf, size_t *cap,
	const char **why)
{
	grow((void **)buf, cap, t->n_tokens + 1, sizeof **buf);
	size_t n = 0;
	int packets = 0;
	for (size_t i = 0; i < t->n_tokens; i++) {
		int tok = tok_at(t, i);
		if (tok == TOK_END || (tok == TOK_START && ++packets > K))
			break;
		if (tok >= vocab) {
			*why = "holds a token outside the model's vocabulary";
			return -1;
		}
		if (i == 0 && tok != TOK_START) {
			*why = "does not start with START";
			return -1;
		}
		(*buf)[n++] = tok;
	}
	return (long)n;
}

/* The entry of a prompt record's label in a conditional model's map (-1:
 * no map, no label, or one the model does not know). */
static long record_entry(const struct tok_rec *t, const struct ckpt_labels *map)
{
	if (!map || !t->label || !t->label_len)
		return -1;
	char *name = xmalloc(t->label_len + 1);
	memcpy(name, t->label, t->label_len);
	name[t->label_len] = '\0';
	long e = memchr(name, 0, t->label_len) ? -1 : cond_find(map, name);
	free(name);
	return e;
}

/* Reads the prompt records (with -n, at most n of them). With a
 * conditional model's map, each keeps its label's entry, and with a fixed
 * entry (--label) the records of its other labels are skipped. Exits 65 or
 * 66 on a damaged or missing input. */
static void load_prompts(const struct gen_cli *o, const struct ckpt_labels *map, long fixed,
	int vocab, struct prompts *p)
{
	struct rec_reader r;
	const char *name = strcmp(o->prompt, "-") ? o->prompt : "<stdin>";
	if (rec_open(&r, o->prompt) < 0)
		err(EX_NOINPUT, "%s", o->prompt);
	int got = REC_END, *buf = NULL;
	size_t cap = 0;
	const char *why;
	while ((!o->n_given || p->n < o->n) && (got = rec_next(&r, REC_TOK)) == REC_TOK) {
		long entry = record_entry(&r.tok, map);
		if (fixed >= 0 && entry >= 0 && entry != fixed)
			continue;	/* a flow of another label */
		long n = first_packets(&r.tok, o->prompt_packets, vocab, &buf, &cap, &why);
		if (n < 0)
			errx(EX_DATAERR, "%s: prompt record %" PRIu64 " %s", name, r.records, why);
		prompts_add(p, buf, (size_t)n, entry);
	}
	if (got < 0)
		errx(EX_DATAERR, "%s", r.error);
	free(buf);
	rec_close(&r);
	if (p->n == 0 && (!o->n_given || o->n > 0))
		errx(EX_DATAERR, "%s: no token records to prompt with%s%s", name,
			fixed >= 0 ? " but those of other labels than " : "", fixed >= 0 ? o->label : "");
}

/* A conditional model's labels (NULL for another model) and the entry of
 * --label X (-1 without it). Exits 64 when --label names no label of a
 * conditional model or the model is none, 65 when its table is damaged. */
static long open_labels(struct ckpt *ck, const struct gen_cli *o, const struct model *m,
	struct ckpt_labels *map)
{
	char err[1024], known[512];
	int rc = ckpt_read_labels(ck, map, err, sizeof err);
	if (rc)
		errx(rc, "%s", err);
	if (!map->conditional) {
		if (o->label)
			cli_usage_error(usage, "--label %s: %s is not class-conditional (%s); "
				"tgpt-train --conditional makes one", o->label, ck->path, map->n ?
				"a classifier's labels name no flows to generate" : "it has no labels");
		return -1;
	}
	if (cond_check(map, m->c.vocab, err, sizeof err) < 0)
		errx(EX_DATAERR, "%s: %s", ck->path, err);
	if (!o->label)
		return -1;
	long e = cond_find(map, o->label);
	if (e < 0) {
		cond_known(map, known, sizeof known);
		cli_usage_error(usage, "--label %s: not a label of %s (%s)", o->label, ck->path,
			known);
	}
	return e;
}

/* The label of flow i of a conditional model: --label's, else its
 * prompt's, else one drawn with the training frequencies (from the seed
 * and i alone); -1 for another model. */
static long flow_entry(const struct ckpt_labels *map, long fixed, const struct prompts *pr,
	size_t which, uint64_t seed, uint64_t i)
{
	if (!map->conditional)
		return -1;
	if (fixed >= 0)
		return fixed;
	if (pr->n && pr->entry[which] >= 0)
		return pr->entry[which];
	return cond_draw(map, gen_rng_seed(seed ^ 0x6c6162656cull, i));	/* "label" */
}

/* The generator's hook (called before every sampling): every packet after
 * a flow's first takes the first's link type (a flow comes from one
 * capture, and tok2pcap(1) writes one link type per capture), and progress
 * on a terminal. */
struct gen_hook {
	int link_token;	/* pinned link-type token, or -1 */
	struct progress p;
	const struct gen *g;
	uint64_t total;
	long calls;
};

static void link_type_hook(const int *seq, size_t n, float *logits, int vocab, int pinned)
{
	if (n < 1 || seq[n - 1] != TOK_START)
		return;	/* not the link-type slot */
	size_t first = 0;
	while (first < n - 1 && seq[first] != TOK_START)
		first++;	/* the label tokens before the first START */
	int keep = pinned;
	if (keep < 0) {
		if (first + 1 >= n - 1)
			return;	/* the first packet's own link type: free */
		keep = seq[first + 1];
	}
	for (int v = 0; v < vocab; v++)
		if (v != keep)
			logits[v] = -INFINITY;
}

static void gen_hook(void *user, int flow, const int *seq, size_t n, float *logits)
{
	(void)flow;
	struct gen_hook *h = user;
	link_type_hook(seq, n, logits, h->g->m->c.vocab, h->link_token);
	if (h->p.on && ++h->calls % 64 == 0)
		progress_tick(&h->p, "%ld/%" PRIu64 " flows, %ld tokens sampled",
			h->g->stats.flows, h->total, h->g->stats.sampled);
}

static void write_flow(msgpack_packer *pk, const struct gen_flow *f, uint64_t id, size_t skip,
	const char *label, uint16_t **buf, size_t *cap)
{
	size_t n = f->n > skip ? f->n - skip : 0;
	grow((void **)buf, cap, n + 1, sizeof **buf);
	for (size_t i = 0; i < n; i++)
		(*buf)[i] = (uint16_t)f->tok[skip + i];
	struct tok_rec t;
	memset(&t, 0, sizeof t);
	t.id = id;
	t.label = label;
	t.label_len = label ? strlen(label) : 0;
	t.cut = f->stop == GEN_STOP_LENGTH;
	t.n_tokens = n;
	tok_write(pk, &t, *buf);
}

static void gen_summary(const struct gen *g, const long *stops, double seconds, int quiet)
{
	const struct gen_stats *s = &g->stats;
	/* tokens the flows received, sampled or forced (rewound ones too) */
	double tps = seconds > 0 ? (double)(s->sampled + s->forced) / seconds : 0.0;
	if (!quiet) {
		fprintf(stderr, "flows: %ld (ended by END %ld, by --max-tokens %ld, by the retry "
			"bound %ld, stuck %ld, by the grammar %ld)\n", s->flows, stops[GEN_STOP_END],
			stops[GEN_STOP_LENGTH], stops[GEN_STOP_RETRIES], stops[GEN_STOP_STUCK],
			stops[GEN_STOP_GRAMMAR]);
		if (g->o.grammar)
			fprintf(stderr, "grammar: %ld tokens forced, %ld sampled; %ld checksums re-fed "
				"(%ld tokens)\n", s->forced, s->sampled, s->patched, s->refed);
		fprintf(stderr, "packets: %ld generated and kept, %ld dropped\n", s->packets,
			s->dropped);
		fprintf(stderr, "tokens: %ld kept, %ld sampled\n", s->tokens, s->sampled);
		fprintf(stderr, "rewinds: %ld\n", s->rewinds);
		for (int i = 0; i < s->n_reasons; i++)
			fprintf(stderr, "  failed: %s: %ld\n", s->reasons[i].why, s->reasons[i].count);
	}
	fprintf(stderr, "tokens/s: %.1f\n", tps);
}

static void parse_generate(int argc, char **argv, struct gen_cli *o)
{
	enum { O_PROMPT_PACKETS = 256, O_MAX_TOKENS, O_RETRIES, O_STREAMS, O_LINKTYPE, O_LINK_TOKEN, O_FORCE,
		O_PRECISION, O_RAW, O_IDLE };
	static const struct option longopts[] = {
		{ "flows", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ "label", required_argument, NULL, 'l' },
		{ "linktype", required_argument, NULL, O_LINKTYPE },
		{ "link-token", required_argument, NULL, O_LINK_TOKEN },
		{ "max-tokens", required_argument, NULL, O_MAX_TOKENS },
		{ "output", required_argument, NULL, 'o' },
		{ "precision", required_argument, NULL, O_PRECISION },
		{ "prompt", required_argument, NULL, 'p' },
		{ "prompt-packets", required_argument, NULL, O_PROMPT_PACKETS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "raw", no_argument, NULL, O_RAW },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "retries", required_argument, NULL, O_RETRIES },
		{ "seed", required_argument, NULL, 's' },
		{ "streams", required_argument, NULL, O_STREAMS },
		{ "temperature", required_argument, NULL, 'T' },
		{ "threads", required_argument, NULL, 'j' },
		{ "top-k", required_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof *o);
	o->output = "-";
	o->n = 1;
	o->seed = 1;
	o->top_k = 26;
	o->temperature = 1.0;
	o->prompt_packets = 1;
	o->retries = 8;
	o->link_token = -1;
	o->idle = 120.0;
	o->precision = REC_INT8;
	o->streams = DEFAULT_STREAMS;
	o->threads = default_threads();
	int ch;
	optind = 2;	/* after the command; messages still name argv[0] */
	while ((ch = getopt_long(argc, argv, "hj:k:l:n:o:p:qs:T:V", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n': o->n = opt_u64(usage, "--flows", optarg, 0, INT64_MAX), o->n_given = 1; break;
		case 's': o->seed = opt_u64(usage, "--seed", optarg, 0, UINT64_MAX); break;
		case 'k': o->top_k = (int)opt_u64(usage, "--top-k", optarg, 0, 65536); break;
		case 'T': o->temperature = opt_double(usage, "--temperature", optarg, 0, 1e6); break;
		case 'l': o->label = optarg; break;
		case 'p': o->prompt = optarg; break;
		case 'j': o->threads = (int)opt_u64(usage, "--threads", optarg, 1, MAX_THREADS); break;
		case 'o': o->output = optarg; break;
		case 'q': o->quiet = 1; break;
		case O_PROMPT_PACKETS:
			o->prompt_packets = (int)opt_u64(usage, "--prompt-packets", optarg, 1, 1 << 20);
			break;
		case O_MAX_TOKENS:
			o->max_tokens = opt_u64(usage, "--max-tokens", optarg, MIN_MAX_TOKENS,
				(uint64_t)1 << 40);
			break;
		case O_RETRIES: o->retries = (int)opt_u64(usage, "--retries", optarg, 0, 1 << 20); break;
		case O_STREAMS:
			o->streams = (int)opt_u64(usage, "--streams", optarg, 1, MAX_STREAMS);
			break;
		case O_LINK_TOKEN:
			o->link_token = (int)opt_u64(usage, "--link-token", optarg, 0, 255);
			break;
		case O_LINKTYPE:
			o->linktype = (uint32_t)opt_u64(usage, "--linktype", optarg, 0, UINT32_MAX);
			break;
		case O_FORCE: o->force = 1; break;
		case O_RAW: o->raw = 1; break;
		case O_IDLE: o->idle = opt_double(usage, "--idle-timeout", optarg, 0.01, 4e9); break;
		case O_PRECISION: {
			int p = rec_precision_parse(optarg);
			if (p < 0)
				cli_usage_error(usage, "--precision %s: f32, f16 or int8", optarg);
			o->precision = (enum rec_precision)p;
			break;
		}
		case 'h': cli_help(usage);
		case 'V': version();
		default: cli_usage_error(usage, "unknown option or missing argument");
		}
	}
	if (optind >= argc)
		cli_usage_error(usage, "generate: which checkpoint?");
	o->ckpt = argv[optind++];
	if (optind < argc)
		cli_usage_error(usage, "generate: one checkpoint, and no input (--prompt FILE)");
	uint32_t lt = o->link_token != 255 ? (uint32_t)o->link_token : o->linktype ? o->linktype :
		UINT32_MAX;
	if (!o->raw && o->link_token >= 0 && !pkt_linktype_known(lt))
		cli_usage_error(usage, "--link-token %d: the grammar makes no link type %u (--raw "
			"samples any)", o->link_token, lt);
	if (o->prompt && strcmp(o->prompt, "-") == 0 && strcmp(o->output, "-") != 0 &&
			strcmp(o->output, o->prompt) == 0)
		cli_usage_error(usage, "--prompt and -o name the same file");
}

/* Loads the model and, for a conditional one, its labels into map; returns
 * the entry of --label (-1 without it). */
static long load_generator(const struct gen_cli *o, struct model *m, struct ckpt_labels *map)
{
	struct ckpt ck;
	char err[1024];
	int rc = ckpt_open(o->ckpt, &ck, 0, err, sizeof err);
	if (rc == 0)
		rc = ckpt_load_model(&ck, m, 0, err, sizeof err);
	if (rc)
		errx(rc, "%s", err);
	long fixed = open_labels(&ck, o, m, map);
	ckpt_close(&ck);
	if (m->c.vocab < TOK_VOCAB)
		errx(EX_DATAERR, "%s: a vocabulary of %d tokens has no START and END", o->ckpt,
			m->c.vocab);
	return fixed;
}

/* How many flows of each label a conditional model generated. */
static void label_summary(const struct ckpt_labels *map, const uint64_t *per_entry, int quiet)
{
	if (!map->conditional || quiet)
		return;
	fprintf(stderr, "labels:");
	for (uint32_t i = 0, first = 1; i < map->n; i++)
		if (per_entry[i]) {
			fprintf(stderr, "%s %s %" PRIu64, first ? "" : ",", map->name[i][0] ?
				map->name[i] : "(none)", per_entry[i]);
			first = 0;
		}
	fputc('\n', stderr);
}

static int cmd_generate(int argc, char **argv)
{
	struct gen_cli o;
	parse_generate(argc, argv, &o);
	model_set_threads(o.threads);
	struct model m;
	struct ckpt_labels map;
	long fixed = load_generator(&o, &m, &map);
	struct prompts pr = { 0 };
	if (o.prompt) {
		load_prompts(&o, map.conditional ? &map : NULL, fixed,
			map.conditional ? COND_TOKEN_BASE : m.c.vocab, &pr);
		if (!o.n_given)
			o.n = pr.n;
	}
	struct gen_opts go;
	gen_opts_default(&go);
	go.top_k = o.top_k;
	go.temperature = (float)o.temperature;
	go.max_len = o.max_tokens ? (size_t)o.max_tokens : 4 * (size_t)m.c.max_ctx;
	go.max_retries = o.retries;
	go.escape_linktype = o.linktype;
	go.grammar = !o.raw;
	go.link_token = o.link_token;
	go.idle_timeout = o.idle;
	uint64_t streams = o.n < (uint64_t)o.streams ? o.n : (uint64_t)o.streams;
	struct gen g;
	struct gen_hook hook = { .total = o.n, .link_token = o.link_token };
	progress_init(&hook.p, o.quiet);
	go.hook = gen_hook;
	go.hook_user = &hook;
	if (gen_init(&g, &m, streams ? (int)streams : 1, &go) < 0)
		errx(EX_SOFTWARE, "generate: cannot set up %" PRIu64 " streams", streams);
	rec_set_precision(&g.rec, o.precision);
	hook.g = &g;

	struct atomic_file out;
	open_output(&out, o.output, o.force);
	struct mp_writer w;
	mp_writer_init(&w, out.f, o.output);
	hdr_write(&w.pk, SCHEMA_TOK, "tgpt-infer");

	struct gen_flow *flows = xcalloc(GEN_GROUP, sizeof *flows);
	const int **pp = xcalloc(GEN_GROUP, sizeof *pp);
	int **lead_pp = xcalloc(GEN_GROUP, sizeof *lead_pp);
	size_t *pl = xcalloc(GEN_GROUP, sizeof *pl);
	long *entry = xcalloc(GEN_GROUP, sizeof *entry);
	uint64_t *per_entry = xcalloc((size_t)map.n + 1, sizeof *per_entry);
	uint16_t *buf = NULL;
	size_t cap = 0;
	long stops[GEN_N_STOPS] = { 0 };
	static const int start = TOK_START;
	double t0 = now_seconds();
	for (uint64_t at = 0; at < o.n && !w.failed; at += GEN_GROUP) {
		int cn = o.n - at < GEN_GROUP ? (int)(o.n - at) : GEN_GROUP;
		for (int j = 0; j < cn; j++) {
			size_t which = pr.n ? (size_t)((at + (uint64_t)j) % pr.n) : 0;
			pp[j] = pr.n ? pr.tok[which] : NULL;
			pl[j] = pr.n ? pr.len[which] : 0;
			entry[j] = flow_entry(&map, fixed, &pr, which, o.seed, at + (uint64_t)j);
			if (entry[j] < 0)
				continue;
			/* a conditional model's flow: its label's tokens, then the prompt or START */
			int lead[2];
			for (uint32_t t = 0; t < map.k; t++)
				lead[t] = map.token[(size_t)entry[j] * map.k + t];
			lead_pp[j] = concat_tokens(lead, map.k, pl[j] ? pp[j] : &start, pl[j] ? pl[j] : 1);
			pl[j] = map.k + (pl[j] ? pl[j] : 1);
			pp[j] = lead_pp[j];
		}
		g.o.seed = gen_rng_seed(o.seed, at / GEN_GROUP);
		gen_run(&g, pp, pl, flows, cn);
		for (int j = 0; j < cn; j++) {
			const char *label = entry[j] >= 0 && map.name[entry[j]][0] ? map.name[entry[j]] :
				NULL;
			write_flow(&w.pk, &flows[j], at + (uint64_t)j, entry[j] >= 0 ? map.k : 0, label,
				&buf, &cap);
			stops[flows[j].stop]++;
			if (entry[j] >= 0)
				per_entry[entry[j]]++;
			gen_flow_free(&flows[j]);
			free(lead_pp[j]);
			lead_pp[j] = NULL;
		}
	}
	double seconds = now_seconds() - t0;
	progress_done(&hook.p);
	close_output(&out, &w, o.output);
	label_summary(&map, per_entry, o.quiet);
	int status = 0;
	if (o.n > 0 && g.stats.packets == 0 && pr.n == 0) {
		warnx("generate: no flow holds a packet (%s)", o.raw ? "every one failed its checks; "
			"the grammar, without --raw, makes valid ones" : "see the summary");
		status = EX_DATAERR;
	}
	gen_summary(&g, stops, seconds, o.quiet);	/* its last line: tokens/s */
	free(buf);
	free(flows);
	free(pp);
	free(lead_pp);
	free(pl);
	free(entry);
	free(per_entry);
	prompts_free(&pr);
	ckpt_labels_free(&map);
	gen_free(&g);
	model_free(&m);
	return status;
}

/* ================================================================ main */

int main(int argc, char **argv)
{
	cli_init(argc, argv);
	if (argc < 2)
		cli_usage_error(usage, "which command? classify or generate");
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
		cli_help(usage);
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0)
		version();
	if (strcmp(cmd, "classify") == 0)
		return cmd_classify(argc, argv);
	if (strcmp(cmd, "generate") == 0)
		return cmd_generate(argc, argv);
	if (cmd[0] == '-')
		cli_usage_error(usage, "%s: unknown option (the command comes first: classify or "
			"generate)", cmd);
	cli_usage_error(usage, "%s: unknown command (classify or generate)", cmd);
}
