/* cmd-generate.c: tgpt-infer generate: samples new flows with the recurrent
 * model (recurrent.h, generate.h) under the decoding grammar (grammar.h;
 * --raw: free sampling, every packet checked as it completes), primed by
 * prompt records or START, and writes them as token records for
 * tok2pcap(1); a class-conditional model (conditional.h) generates flows of
 * the label it is given, or of labels drawn by the training frequencies. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "infer.h"
#include "packet.h"
#include "record.h"
#include "stream.h"
#include "../tgpt/ckpt.h"
#include "../tgpt/conditional.h"
#include "../tgpt/model.h"

#define DEFAULT_STREAMS 16
#define MAX_STREAMS 4096
/* generate runs its flows in groups of this many (gen_run numbers flows
 * from 0 in every call): group g draws from the seed gen_rng_seed(seed, g),
 * and flow i of a run is flow i % GEN_GROUP of group i / GEN_GROUP. A fixed
 * number, so the flows depend on the seed and their index only. */
#define GEN_GROUP 256
#define MIN_MAX_TOKENS 12 /* START, link type, 8 time tokens, a byte, END */

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
			cli_usage_error(generate_usage, "--label %s: %s is not class-conditional (%s); "
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
		cli_usage_error(generate_usage, "--label %s: not a label of %s (%s)", o->label, ck->path,
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

/* Whether a flow's record (past skip label tokens) holds a packet: a START
 * and a link-type token after it (a flow whose packets all failed is START
 * END). */
static int flow_has_packet(const struct gen_flow *f, size_t skip)
{
	for (size_t i = skip; i + 1 < f->n; i++)
		if (f->tok[i] == TOK_START && f->tok[i + 1] < TOK_START)
			return 1;
	return 0;
}

/* The summary on stderr, tokens/s last; flows without a packet (of n,
 * with_packets holding one) are said even with -q. */
static void gen_summary(const struct gen *g, const long *stops, double seconds, int quiet,
	uint64_t n, uint64_t with_packets)
{
	const struct gen_stats *s = &g->stats;
	/* tokens the flows received, sampled or forced (rewound ones too) */
	double tps = seconds > 0 ? (double)(s->sampled + s->forced) / seconds : 0.0;
	/* why a flow holds no packet: raw's checks failed every draw; the
	 * grammar's packets always pass, so theirs did not fit (--max-tokens) */
	const char *why = g->o.grammar ? "no packet fitted in it" :
		"every packet sampled for it failed its checks";
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
	if (n > 0 && with_packets == 0)
		warnx("none of the %" PRIu64 " %s holds a packet: %s", n,
		      plural(n, "flow generated", "flows generated"), why);
	else if (with_packets < n)
		warnx("%" PRIu64 " of %" PRIu64 " flows hold no packet (START END): %s",
		      n - with_packets, n, why);
	fprintf(stderr, "tokens/s: %.1f\n", tps);
}

static void parse_generate(int argc, char **argv, struct gen_cli *o)
{
	enum { O_PROMPT_PACKETS = 256, O_MAX_TOKENS, O_RETRIES, O_STREAMS, O_LINKTYPE, O_LINK_TOKEN, O_FORCE,
		O_PRECISION, O_SEED, O_RAW, O_IDLE };
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
		{ "seed", required_argument, NULL, O_SEED },
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
	while ((ch = cli_getopt(argc, argv, "hj:k:l:n:o:p:qT:V", longopts, generate_usage)) != -1) {
		switch (ch) {
		case 'n': o->n = opt_u64(generate_usage, "--flows", optarg, 0, INT64_MAX), o->n_given = 1; break;
		case O_SEED: o->seed = opt_u64(generate_usage, "--seed", optarg, 0, UINT64_MAX); break;
		case 'k': o->top_k = (int)opt_u64(generate_usage, "--top-k", optarg, 0, 65536); break;
		case 'T': o->temperature = opt_double(generate_usage, "--temperature", optarg, 0, 1e6); break;
		case 'l': o->label = optarg; break;
		case 'p': o->prompt = optarg; break;
		case 'j': o->threads = (int)opt_u64(generate_usage, "--threads", optarg, 1, MAX_THREADS); break;
		case 'o': o->output = optarg; break;
		case 'q': o->quiet = 1; break;
		case O_PROMPT_PACKETS:
			o->prompt_packets = (int)opt_u64(generate_usage, "--prompt-packets", optarg, 1, 1 << 20);
			break;
		case O_MAX_TOKENS:
			o->max_tokens = opt_u64(generate_usage, "--max-tokens", optarg, MIN_MAX_TOKENS,
				(uint64_t)1 << 40);
			break;
		case O_RETRIES: o->retries = (int)opt_u64(generate_usage, "--retries", optarg, 0, 1 << 20); break;
		case O_STREAMS:
			o->streams = (int)opt_u64(generate_usage, "--streams", optarg, 1, MAX_STREAMS);
			break;
		case O_LINK_TOKEN:
			o->link_token = (int)opt_u64(generate_usage, "--link-token", optarg, 0, 255);
			break;
		case O_LINKTYPE:
			o->linktype = (uint32_t)opt_u64(generate_usage, "--linktype", optarg, 0, UINT32_MAX);
			break;
		case O_FORCE: o->force = 1; break;
		case O_RAW: o->raw = 1; break;
		case O_IDLE: o->idle = opt_double(generate_usage, "--idle-timeout", optarg, 0.01, 4e9); break;
		case O_PRECISION: {
			int p = rec_precision_parse(optarg);
			if (p < 0)
				cli_usage_error(generate_usage, "--precision %s: f32, f16 or int8", optarg);
			o->precision = (enum rec_precision)p;
			break;
		}
		case 'h': cli_help(usage);
		case 'V': version();
		default: cli_usage_error(generate_usage, "unknown option or missing argument");
		}
	}
	if (optind >= argc)
		cli_usage_error(generate_usage, "generate: which checkpoint?");
	o->ckpt = argv[optind++];
	if (optind < argc)
		cli_usage_error(generate_usage, "generate: one checkpoint, and no input (--prompt FILE)");
	uint32_t lt = o->link_token != 255 ? (uint32_t)o->link_token : o->linktype ? o->linktype :
		UINT32_MAX;
	if (!o->raw && o->link_token >= 0 && !pkt_linktype_known(lt))
		cli_usage_error(generate_usage, "--link-token %d: the grammar makes no link type %u "
			"(--raw samples any)", o->link_token, lt);
	if (o->prompt && strcmp(o->prompt, "-") == 0 && strcmp(o->output, "-") != 0 &&
			strcmp(o->output, o->prompt) == 0)
		cli_usage_error(generate_usage, "--prompt and -o name the same file");
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

int cmd_generate(int argc, char **argv)
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
	uint64_t with_packets = 0;
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
			with_packets += (uint64_t)flow_has_packet(&flows[j], entry[j] >= 0 ? map.k : 0);
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
	/* flows without a single packet are no result: an error, not an
	 * empty capture further down the pipe */
	int status = o.n > 0 && with_packets == 0 ? EX_DATAERR : 0;
	close_output(&out, &w, o.output, status, 0, NULL);
	label_summary(&map, per_entry, o.quiet);
	gen_summary(&g, stops, seconds, o.quiet, o.n, with_packets);
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
