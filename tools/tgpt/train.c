/* train.c: tgpt-train: trains the TrafficGPT model (model.h) on the shards of
 * tokshard(1) with next-token cross-entropy and AdamW (warm-up, cosine decay,
 * clipping, gradient accumulation), and writes resumable checkpoints
 * (tgpt-ckpt(5)): a resumed run continues with the very next batch and gives
 * the same bits as an uninterrupted one. */
#include <blis.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "record.h"
#include "ckpt.h"
#include "model.h"
#include "shard.h"

static const char usage[] =
	"usage: tgpt-train [-q] [-j N] [--preset NAME] [--context T] [SIZES] [TRAINING]\n"
	"                  [-o FILE] [--metrics FILE] SHARDS | --random-data\n"
	"       tgpt-train --resume FILE [-q] [-j N] [-o FILE] [--metrics FILE]\n"
	"                  [--steps N] [SHARDS]\n"
	"       tgpt-train --info FILE\n"
	"Trains the model on SHARDS/train.shard of tokshard(1) (validation on\n"
	"SHARDS/val.shard) and writes checkpoints (tgpt-ckpt(5)) to FILE. The last\n"
	"line on stderr is \"tokens/s: X\".\n"
	"Model (a preset, then any of its sizes changed):\n"
	"      --preset NAME     paper, small (default), tiny or bench\n"
	"      --context T       tokens per sequence (default: the preset's)\n"
	"      --layers N  --width D  --emb E  --heads H  --local-heads N  --head-dim N\n"
	"      --window W  --chunk C  --ff F  --pos axial|learned\n"
	"      --glu | --no-glu  --reversible | --no-reversible  --shift | --no-shift\n"
	"Training:\n"
	"      --steps N         optimizer steps of the whole run (default 1000)\n"
	"      --batch B         sequences per micro-batch (default 4)\n"
	"      --accum N         micro-batches per step (default 1)\n"
	"      --lr X            peak learning rate (default 1e-4 for paper, else 3e-4)\n"
	"      --min-lr X        learning rate at the end of the cosine (default lr/10)\n"
	"      --warmup N        steps of linear warm-up (default steps/10, <= 2000)\n"
	"      --beta1 X  --beta2 X  --eps X  --weight-decay X\n"
	"                        AdamW (default 0.9, 0.95, 1e-8, 0.1)\n"
	"      --clip X          clip the gradient norm to X, 0 = never (default 1)\n"
	"      --seed N          seed of the initialisation and data order (default 1)\n"
	"      --random-data     random tokens, no shards (for benchmarks)\n"
	"Output:\n"
	"  -o, --output FILE     the checkpoint (default: the --resume FILE)\n"
	"      --ckpt-every N    also every N steps (default 1000, 0: at the end)\n"
	"      --resume FILE     continue the run saved in FILE\n"
	"      --stop-after N    stop (and save) after N steps of this invocation\n"
	"      --metrics FILE    TSV lines: step loss lr grad_norm tokens_per_s val_loss\n"
	"                        ('-' = stdout; appended to on --resume)\n"
	"      --eval-every N    validation loss every N steps (default 1000, 0 = never)\n"
	"      --eval-batches N  batches of val.shard per validation (default 8)\n"
	"      --info FILE       check a checkpoint and print its contents as text\n"
	"  -j, --threads N       threads (default: the number of CPUs)\n"
	"  -q, --quiet           no progress or summary (still the tokens/s line)\n"
	"  -h, --help            this help\n"
	"  -V, --version         version and libraries\n";

#define MAX_THREADS 1024
#define MAX_STEPS INT32_MAX     /* model_adamw_update counts steps in an int */

/* ------------------------------------------------------------ options */

/* The model sizes a flag may set, each an int field of struct model_config. */
enum { MF_LAYERS, MF_WIDTH, MF_EMB, MF_HEADS, MF_LOCAL, MF_HEAD_DIM, MF_WINDOW, MF_CHUNK,
	MF_FF, MF_GLU, MF_REVERSIBLE, MF_SHIFT, MF_POS, MF_COUNT };
static const struct {
	const char *flag;
	size_t off;
	int min, max;
} model_flags[MF_COUNT] = {
	{ "--layers", offsetof(struct model_config, n_layer), 0, 4096 },
	{ "--width", offsetof(struct model_config, d_model), 1, 65536 },
	{ "--emb", offsetof(struct model_config, emb_dim), 1, 65536 },
	{ "--heads", offsetof(struct model_config, n_head), 1, 65536 },
	{ "--local-heads", offsetof(struct model_config, n_local), 0, 65536 },
	{ "--head-dim", offsetof(struct model_config, d_head), 1, 65536 },
	{ "--window", offsetof(struct model_config, window), 1, 1 << 20 },
	{ "--chunk", offsetof(struct model_config, chunk), 1, 4096 },
	{ "--ff", offsetof(struct model_config, d_ff), 1, 262144 },
	{ "--glu", offsetof(struct model_config, ff_glu), 0, 1 },
	{ "--reversible", offsetof(struct model_config, reversible), 0, 1 },
	{ "--shift", offsetof(struct model_config, token_shift), 0, 1 },
	{ "--pos", offsetof(struct model_config, pos), 0, 1 },
};

/* Hyper-parameters and state of a run: the TRAIN section of a checkpoint. */
struct train {
	char preset[16];
	uint64_t step, steps, warmup, batch, context, accum, seed, threads;
	uint64_t ckpt_every, eval_every, eval_batches, random_data;
	double lr, min_lr, beta1, beta2, eps, weight_decay, clip;
	uint64_t epoch, cursor, data_seed, data_flows, data_tokens; /* data position */
	uint64_t rng;          /* the random-data generator */
	uint64_t tokens;       /* tokens trained on so far */
};

enum field_kind { TF_U64, TF_DBL };
static const struct train_field {
	const char *key;
	size_t off;
	enum field_kind kind;
} train_fields[] = {
#define U(f) { #f, offsetof(struct train, f), TF_U64 }
#define D(f) { #f, offsetof(struct train, f), TF_DBL }
	U(step), U(steps), U(batch), U(context), U(accum), U(seed), U(threads),
	D(lr), D(min_lr), U(warmup), D(beta1), D(beta2), D(eps), D(weight_decay), D(clip),
	U(ckpt_every), U(eval_every), U(eval_batches), U(random_data),
	U(epoch), U(cursor), U(data_seed), U(data_flows), U(data_tokens), U(rng), U(tokens),
#undef U
#undef D
};
#define N_TRAIN_FIELDS (sizeof train_fields / sizeof train_fields[0])

/* Training options that may be given: which were, by their option id. */
enum { O_PRESET = 256, O_CONTEXT, O_STEPS, O_BATCH, O_ACCUM, O_LR, O_MIN_LR, O_WARMUP,
	O_BETA1, O_BETA2, O_EPS, O_WD, O_CLIP, O_SEED, O_RANDOM, O_CKPT_EVERY, O_RESUME,
	O_STOP_AFTER, O_METRICS, O_EVAL_EVERY, O_EVAL_BATCHES, O_INFO, O_THREADS, O_END,
	O_MODEL = 400, O_NO = 500 };

struct options {
	struct train t;              /* the values given */
	int given[O_END];
	int mf_value[MF_COUNT], mf_given[MF_COUNT];
	const char *out, *resume, *metrics, *info, *shards;
	uint64_t stop_after;
	int quiet;
};

static const struct option longopts[] = {
	{ "preset", required_argument, NULL, O_PRESET },
	{ "context", required_argument, NULL, O_CONTEXT },
	{ "layers", required_argument, NULL, O_MODEL + MF_LAYERS },
	{ "width", required_argument, NULL, O_MODEL + MF_WIDTH },
	{ "emb", required_argument, NULL, O_MODEL + MF_EMB },
	{ "heads", required_argument, NULL, O_MODEL + MF_HEADS },
	{ "local-heads", required_argument, NULL, O_MODEL + MF_LOCAL },
	{ "head-dim", required_argument, NULL, O_MODEL + MF_HEAD_DIM },
	{ "window", required_argument, NULL, O_MODEL + MF_WINDOW },
	{ "chunk", required_argument, NULL, O_MODEL + MF_CHUNK },
	{ "ff", required_argument, NULL, O_MODEL + MF_FF },
	{ "glu", no_argument, NULL, O_MODEL + MF_GLU },
	{ "no-glu", no_argument, NULL, O_NO + MF_GLU },
	{ "reversible", no_argument, NULL, O_MODEL + MF_REVERSIBLE },
	{ "no-reversible", no_argument, NULL, O_NO + MF_REVERSIBLE },
	{ "shift", no_argument, NULL, O_MODEL + MF_SHIFT },
	{ "no-shift", no_argument, NULL, O_NO + MF_SHIFT },
	{ "pos", required_argument, NULL, O_MODEL + MF_POS },
	{ "steps", required_argument, NULL, O_STEPS },
	{ "batch", required_argument, NULL, O_BATCH },
	{ "accum", required_argument, NULL, O_ACCUM },
	{ "lr", required_argument, NULL, O_LR },
	{ "min-lr", required_argument, NULL, O_MIN_LR },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "beta1", required_argument, NULL, O_BETA1 },
	{ "beta2", required_argument, NULL, O_BETA2 },
	{ "eps", required_argument, NULL, O_EPS },
	{ "weight-decay", required_argument, NULL, O_WD },
	{ "clip", required_argument, NULL, O_CLIP },
	{ "seed", required_argument, NULL, O_SEED },
	{ "random-data", no_argument, NULL, O_RANDOM },
	{ "output", required_argument, NULL, 'o' },
	{ "ckpt-every", required_argument, NULL, O_CKPT_EVERY },
	{ "resume", required_argument, NULL, O_RESUME },
	{ "stop-after", required_argument, NULL, O_STOP_AFTER },
	{ "metrics", required_argument, NULL, O_METRICS },
	{ "eval-every", required_argument, NULL, O_EVAL_EVERY },
	{ "eval-batches", required_argument, NULL, O_EVAL_BATCHES },
	{ "info", required_argument, NULL, O_INFO },
	{ "threads", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static _Noreturn void version(void)
{
	static char blis[64];
	snprintf(blis, sizeof blis, "BLIS %s", bli_info_get_version_str());
	const char *libs[] = { blis, NULL };
	cli_version(libs);
}

static const char *long_name(int id)
{
	for (const struct option *o = longopts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

static uint64_t opt_num(int id, const char *arg, uint64_t min, uint64_t max)
{
	char flag[64];
	snprintf(flag, sizeof flag, "--%s", long_name(id));
	return opt_u64(usage, flag, arg, min, max);
}

static double opt_real(int id, const char *arg, double min, double max)
{
	char flag[64];
	snprintf(flag, sizeof flag, "--%s", long_name(id));
	return opt_double(usage, flag, arg, min, max);
}

static void set_model_flag(struct options *o, int mf, const char *arg, int value)
{
	o->mf_given[mf] = 1;
	if (mf == MF_POS) {
		if (strcmp(arg, "axial") && strcmp(arg, "learned"))
			cli_usage_error(usage, "--pos: '%s' is neither axial nor learned", arg);
		o->mf_value[mf] = strcmp(arg, "learned") == 0 ? POS_LEARNED : POS_AXIAL;
	} else if (arg) {
		o->mf_value[mf] = (int)opt_u64(usage, model_flags[mf].flag, arg,
			(uint64_t)model_flags[mf].min, (uint64_t)model_flags[mf].max);
	} else {
		o->mf_value[mf] = value;
	}
}

/* A training option's value into o->t. */
static void set_train_opt(struct options *o, int id, const char *arg)
{
	struct train *t = &o->t;
	o->given[id] = 1;
	switch (id) {
	case O_PRESET: snprintf(t->preset, sizeof t->preset, "%s", arg); break;
	case O_CONTEXT: t->context = opt_num(id, arg, 2, 1 << 20); break;
	case O_STEPS: t->steps = opt_num(id, arg, 0, MAX_STEPS); break;
	case O_BATCH: t->batch = opt_num(id, arg, 1, 1 << 16); break;
	case O_ACCUM: t->accum = opt_num(id, arg, 1, 1 << 16); break;
	case O_LR: t->lr = opt_real(id, arg, 0, 10); break;
	case O_MIN_LR: t->min_lr = opt_real(id, arg, 0, 10); break;
	case O_WARMUP: t->warmup = opt_num(id, arg, 0, MAX_STEPS); break;
	case O_BETA1: t->beta1 = opt_real(id, arg, 0, 0.999999); break;
	case O_BETA2: t->beta2 = opt_real(id, arg, 0, 0.999999); break;
	case O_EPS: t->eps = opt_real(id, arg, 0, 1); break;
	case O_WD: t->weight_decay = opt_real(id, arg, 0, 10); break;
	case O_CLIP: t->clip = opt_real(id, arg, 0, 1e9); break;
	case O_SEED: t->seed = opt_num(id, arg, 0, UINT64_MAX); break;
	case O_RANDOM: t->random_data = 1; break;
	case O_CKPT_EVERY: t->ckpt_every = opt_num(id, arg, 0, MAX_STEPS); break;
	case O_EVAL_EVERY: t->eval_every = opt_num(id, arg, 0, MAX_STEPS); break;
	case O_EVAL_BATCHES: t->eval_batches = opt_num(id, arg, 1, 1 << 20); break;
	case O_THREADS: t->threads = opt_num(id, arg, 1, MAX_THREADS); break;
	}
}

static void parse_options(int argc, char **argv, struct options *o)
{
	int c;
	memset(o, 0, sizeof *o);
	while ((c = getopt_long(argc, argv, "hj:o:qV", longopts, NULL)) != -1) {
		if (c >= O_NO && c < O_NO + MF_COUNT)
			set_model_flag(o, c - O_NO, NULL, 0);
		else if (c >= O_MODEL && c < O_MODEL + MF_COUNT)
			set_model_flag(o, c - O_MODEL, optarg, 1);
		else if (c == O_RESUME)
			o->resume = optarg;
		else if (c == O_METRICS)
			o->metrics = optarg;
		else if (c == O_INFO)
			o->info = optarg;
		else if (c == O_STOP_AFTER)
			o->stop_after = opt_num(c, optarg, 1, MAX_STEPS);
		else if (c >= O_PRESET && c < O_END)
			set_train_opt(o, c, optarg);
		else switch (c) {
		case 'j': set_train_opt(o, O_THREADS, optarg); break;
		case 'o': o->out = optarg; break;
		case 'q': o->quiet = 1; break;
		case 'h': cli_help(usage);
		case 'V': version();
		default: cli_usage_error(usage, "unknown option or missing argument");
		}
	}
	if (optind < argc)
		o->shards = argv[optind++];
	if (optind < argc)
		cli_usage_error(usage, "one shard directory, not '%s' too", argv[optind]);
}

/* ------------------------------------------------------------ the model config */

/* The config a run asks for: BASE (a preset or a checkpoint's config) with
 * the size flags given, and the position table fitted to the context T: an
 * axial table grows with T, a learned one has the base's rows. Exits 64
 * when the model cannot take T. */
static struct model_config make_config(const struct model_config *base, const char *what,
	const struct options *o, uint64_t T)
{
	struct model_config c = *base;
	for (int i = 0; i < MF_COUNT; i++)
		if (o->mf_given[i])
			*(int *)((char *)&c + model_flags[i].off) = o->mf_value[i];
	if (c.n_local > 0 && c.window > 0 && T % (uint64_t)c.window != 0)
		cli_usage_error(usage, "--context %" PRIu64 ": %s has local attention heads, whose "
			"blocks of %d tokens must tile the context: take a multiple of %d", T, what,
			c.window, c.window);
	if (c.pos == POS_LEARNED && T > (uint64_t)c.max_ctx)
		cli_usage_error(usage, "--context %" PRIu64 ": the learned position table of %s "
			"covers %d tokens (--pos axial grows with the context)", T, what, c.max_ctx);
	if (c.pos == POS_AXIAL)
		c.max_ctx = (int)T;
	const char *why = model_config_check(&c);
	if (why)
		cli_usage_error(usage, "%s with these sizes and --context %" PRIu64 ": %s", what, T,
			why);
	return c;
}

static struct model_config preset_config(const char *name)
{
	struct model_config c;
	if (model_config_preset(name, &c) < 0)
		cli_usage_error(usage, "--preset: '%s' is none of paper, small, tiny, bench", name);
	return c;
}

/* ------------------------------------------------------------ RNG */

/* splitmix64: small, well mixed, the same sequence on every machine */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A seed for one purpose, from the run's seed. */
static uint64_t derive_seed(uint64_t seed, uint64_t purpose)
{
	uint64_t s = seed ^ (purpose * 0xd1b54a32d192ed03ull);
	return rng_next(&s);
}

/* ------------------------------------------------------------ data */

/* Flows of a shard in the order of the current epoch: a permutation seeded
 * by (seed, epoch), or file order for validation. */
struct loader {
	struct shard sh;
	char *path;
	uint64_t *perm;       /* NULL: file order */
	uint64_t epoch, cursor, seed;
	int vocab, shuffle;
};

static void loader_permute(struct loader *l)
{
	uint64_t n = shard_count(&l->sh), s = derive_seed(l->seed, l->epoch + 1);
	for (uint64_t i = 0; i < n; i++)
		l->perm[i] = i;
	for (uint64_t i = n; i > 1; i--) {	/* Fisher-Yates */
		uint64_t j = rng_next(&s) % i, tmp = l->perm[i - 1];
		l->perm[i - 1] = l->perm[j];
		l->perm[j] = tmp;
	}
}

/* Opens DIR/NAME. Missing: 1 (or exit 66 when required); damaged, of
 * another tokenizer or too large a vocabulary: exit 65. */
static int loader_open(struct loader *l, const char *dir, const char *name, int required,
	int vocab)
{
	char msg[1024];
	memset(l, 0, sizeof *l);
	size_t n = strlen(dir) + strlen(name) + 2, dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	l->path = xmalloc(n);
	snprintf(l->path, n, "%.*s/%s", (int)dlen, dir, name);
	if (access(l->path, R_OK) < 0) {
		if (required || errno != ENOENT)
			err(EX_NOINPUT, "%s", l->path);
		return 1;
	}
	if (shard_open(l->path, &l->sh, msg, sizeof msg) < 0)
		errx(EX_DATAERR, "%s", msg);
	const struct shard_header *h = &l->sh.h;
	if (strcmp(h->tokenizer, TOKENIZER_NAME) != 0 || h->tokenizer_version != TOKENIZER_VERSION)
		errx(EX_DATAERR, "%s: tokens of tokenizer %s %u; the model reads %s %d", l->path,
			h->tokenizer, h->tokenizer_version, TOKENIZER_NAME, TOKENIZER_VERSION);
	if (h->vocab > (uint32_t)vocab)
		errx(EX_DATAERR, "%s: %u token ids, more than the model's vocabulary of %d", l->path,
			h->vocab, vocab);
	l->vocab = vocab;
	return 0;
}

static void loader_start(struct loader *l, int shuffle, uint64_t seed, uint64_t epoch,
	uint64_t cursor)
{
	l->shuffle = shuffle;
	l->seed = seed;
	l->epoch = epoch;
	l->cursor = cursor;
	if (shuffle) {
		l->perm = xcalloc(shard_count(&l->sh), sizeof *l->perm);
		loader_permute(l);
	}
}

static void loader_close(struct loader *l)
{
	if (l->path)
		shard_close(&l->sh);
	free(l->perm);
	free(l->path);
	memset(l, 0, sizeof *l);
}

/* Flows longer than T, which are cut to their first T tokens. */
static uint64_t count_long(const struct loader *l, uint64_t T)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < shard_count(&l->sh); i++)
		n += l->sh.offsets[i + 1] - l->sh.offsets[i] > T;
	return n;
}

/* One sequence seq (T): whole flows one after the other from the cursor
 * while they fit, then PAD. A flow that does not fit in what is left starts
 * the next sequence; one longer than T fills a sequence alone, cut. At the
 * end of the flows a shuffling loader starts the next epoch, the other pads. */
static void pack_sequence(struct loader *l, int *seq, int T, int pad)
{
	uint64_t n = shard_count(&l->sh);
	int pos = 0;
	while (pos < T) {
		if (l->cursor == n) {
			if (!l->shuffle)
				break;
			l->epoch++;
			l->cursor = 0;
			loader_permute(l);
		}
		uint64_t flow = l->perm ? l->perm[l->cursor] : l->cursor;
		const uint16_t *tok;
		size_t len;
		shard_flow(&l->sh, flow, &tok, &len, NULL);
		if (len > (size_t)(T - pos)) {
			if (pos > 0)
				break;
			len = (size_t)T;
		}
		for (size_t i = 0; i < len; i++) {
			if (tok[i] >= l->vocab)
				errx(EX_DATAERR, "%s: flow %" PRIu64 ": token %u at %zu is outside the "
					"vocabulary of %d", l->path, flow, tok[i], i, l->vocab);
			seq[pos + i] = tok[i];
		}
		pos += (int)len;
		l->cursor++;
	}
	for (; pos < T; pos++)
		seq[pos] = pad;
}

/* B sequences of T tokens and their targets, the next token of each (the
 * last position has none: PAD, which the loss leaves out). */
static void shard_batch(struct loader *l, int *tok, int *tgt, int B, int T, int pad)
{
	for (int b = 0; b < B; b++) {
		int *s = tok + (size_t)b * T, *y = tgt + (size_t)b * T;
		pack_sequence(l, s, T, pad);
		memcpy(y, s + 1, (size_t)(T - 1) * sizeof *y);
		y[T - 1] = pad;
	}
}

/* Random tokens: each sequence T + 1 uniform ids, inputs and targets
 * shifted by one. */
static void random_batch(uint64_t *rng, int *tok, int *tgt, int B, int T, int vocab)
{
	for (int b = 0; b < B; b++) {
		int prev = (int)(rng_next(rng) % (uint64_t)vocab);
		for (int t = 0; t < T; t++) {
			int next = (int)(rng_next(rng) % (uint64_t)vocab);
			tok[(size_t)b * T + t] = prev;
			tgt[(size_t)b * T + t] = next;
			prev = next;
		}
	}
}

/* ------------------------------------------------------------ the run */

struct run {
	struct options o;
	struct train t;
	struct model m;
	struct loader train, val;
	int *tok, *tgt;
	const char *out;
	int resumed;
	FILE *metrics;
	struct progress prog;
	double timed_s;           /* steps timed for tokens/s ... */
	uint64_t timed_tokens;    /* ... and their tokens */
	uint64_t run_steps;       /* steps of this invocation */
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* SIGINT and SIGTERM ask the loop to stop after the current step; a second
 * one kills at once (SA_RESETHAND). A signal the caller ignores (SIGINT in
 * a shell's background job) stays ignored. */
static void catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction sa, old;
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sa.sa_flags = SA_RESETHAND;
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[i], &sa, NULL);
	}
}

/* The learning rate of step s (from 1): linear warm-up to lr, then a cosine
 * down to min_lr at the last step. */
static double lr_at(const struct train *t, uint64_t s)
{
	if (s <= t->warmup)
		return t->lr * (double)s / (double)t->warmup;
	if (t->steps <= t->warmup)
		return t->lr;
	double p = (double)(s - t->warmup) / (double)(t->steps - t->warmup);
	if (p > 1)
		p = 1;
	return t->min_lr + 0.5 * (t->lr - t->min_lr) * (1.0 + cos(M_PI * p));
}

static void train_text(const struct train *t, struct ckpt_text *txt)
{
	txt->len = 0;
	ckpt_text_add(txt, "preset", "%s", t->preset);
	for (size_t i = 0; i < N_TRAIN_FIELDS; i++) {
		const char *p = (const char *)t + train_fields[i].off;
		char v[32];
		if (train_fields[i].kind == TF_DBL)
			ckpt_text_add(txt, train_fields[i].key, "%s",
				ckpt_real(v, sizeof v, *(const double *)p, 0));
		else
			ckpt_text_add(txt, train_fields[i].key, "%" PRIu64, *(const uint64_t *)p);
	}
}

static int read_train(struct ckpt *ck, struct train *t, char *err, size_t errlen)
{
	const struct ckpt_section *s;
	char msg[256];
	int rc = ckpt_verify(ck, CKPT_TRAIN, &s, err, errlen);
	if (rc)
		return rc;
	memset(t, 0, sizeof *t);
	if (ckpt_get_str(s, "preset", t->preset, sizeof t->preset, msg, sizeof msg) < 0)
		goto bad;
	for (size_t i = 0; i < N_TRAIN_FIELDS; i++) {
		char *p = (char *)t + train_fields[i].off;
		if (train_fields[i].kind == TF_DBL ?
			ckpt_get_double(s, train_fields[i].key, (double *)p, msg, sizeof msg) < 0 :
			ckpt_get_u64(s, train_fields[i].key, (uint64_t *)p, msg, sizeof msg) < 0)
			goto bad;
	}
	if (t->batch < 1 || t->batch > 1 << 16 || t->accum < 1 || t->accum > 1 << 16 ||
		t->context < 2 || t->context > 1 << 20 || t->steps > MAX_STEPS ||
		t->step > t->steps || t->threads < 1 || t->threads > MAX_THREADS ||
		(t->cursor > t->data_flows)) {
		snprintf(msg, sizeof msg, "section train: values out of range");
		goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: %s", ck->path, msg);
	return EX_DATAERR;
}

/* Writes the checkpoint (training state, model, parameters, AdamW moments)
 * atomically; SIGINT and SIGTERM wait until it is in place. */
static void save(struct run *r)
{
	struct ckpt_out o = { 0 };
	struct ckpt_text model_txt = { 0 }, train_txt = { 0 };
	sigset_t block, old;
	r->t.epoch = r->train.epoch;
	r->t.cursor = r->train.cursor;
	train_text(&r->t, &train_txt);
	ckpt_out_add(&o, CKPT_TRAIN, train_txt.buf, train_txt.len);
	ckpt_out_add_model(&o, &r->m, &model_txt);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	ckpt_write(&o, r->out);
	sigprocmask(SIG_SETMASK, &old, NULL);
	ckpt_text_free(&model_txt);
	ckpt_text_free(&train_txt);
}

/* The mean loss over --eval-batches batches of val.shard from its start
 * (the same batches every time), weighted by their non-PAD targets; NAN
 * without validation data. */
static double evaluate(struct run *r)
{
	struct loader *v = &r->val;
	int B = (int)r->t.batch, T = (int)r->t.context;
	double sum = 0;
	long long valid = 0;
	if (!v->path)
		return NAN;
	v->cursor = 0;
	for (uint64_t b = 0; b < r->t.eval_batches && v->cursor < shard_count(&v->sh); b++) {
		shard_batch(v, r->tok, r->tgt, B, T, r->m.c.pad_id);
		float loss = model_forward(&r->m, r->tok, r->tgt, B, T);
		sum += (double)loss * r->m.n_valid;
		valid += r->m.n_valid;
	}
	return valid ? sum / (double)valid : NAN;
}

/* One optimizer step: accum micro-batches, their mean gradient clipped,
 * AdamW. Returns the mean of the micro-batches' losses. */
static float train_step(struct run *r, float *grad_norm, double *lr)
{
	struct model *m = &r->m;
	int B = (int)r->t.batch, T = (int)r->t.context;
	double loss = 0;
	model_zero_grad(m);
	for (uint64_t a = 0; a < r->t.accum; a++) {
		if (r->t.random_data)
			random_batch(&r->t.rng, r->tok, r->tgt, B, T, m->c.vocab);
		else
			shard_batch(&r->train, r->tok, r->tgt, B, T, m->c.pad_id);
		loss += model_forward(m, r->tok, r->tgt, B, T);
		model_backward(m);
	}
	if (r->t.accum > 1) {
		float s = 1.0f / (float)r->t.accum;
		for (size_t i = 0; i < m->n_params; i++)
			m->grads_mem[i] *= s;
	}
	*grad_norm = model_clip_grad(m, (float)r->t.clip);
	*lr = lr_at(&r->t, r->t.step + 1);
	model_adamw_update(m, (float)*lr, (float)r->t.beta1, (float)r->t.beta2, (float)r->t.eps,
		(float)r->t.weight_decay, (int)(r->t.step + 1));
	r->t.step++;
	r->t.tokens += r->t.accum * (uint64_t)B * (uint64_t)T;
	return (float)(loss / (double)r->t.accum);
}

static void format_eta(double s, char *out, size_t n)
{
	long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
	if (t >= 3600)
		snprintf(out, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(out, n, "%lds", t);
}

static double tokens_per_s(const struct run *r)
{
	return r->timed_s > 0 ? (double)r->timed_tokens / r->timed_s : 0.0;
}

/* After a step: metrics line, progress, validation and checkpoint. */
static void after_step(struct run *r, float loss, float norm, double lr, double step_s)
{
	const struct train *t = &r->t;
	double val = NAN;
	if (t->eval_every && (t->step % t->eval_every == 0 || t->step == t->steps)) {
		val = evaluate(r);
		if (!isnan(val) && !r->o.quiet) {
			progress_done(&r->prog);
			fprintf(stderr, "%s: step %" PRIu64 ": val_loss %.4f\n", cli_progname(),
				t->step, val);
		}
	}
	double step_tok = (double)(t->accum * t->batch * t->context);
	if (r->metrics) {
		fprintf(r->metrics, "%" PRIu64 "\t%.9g\t%.9g\t%.9g\t%.1f\t", t->step, (double)loss,
			(double)(float)lr, (double)norm, step_s > 0 ? step_tok / step_s : 0.0);
		if (!isnan(val))
			fprintf(r->metrics, "%.9g", val);
		fputc('\n', r->metrics);
		if (fflush(r->metrics) != 0)
			err(EX_IOERR, "%s", r->o.metrics);
	}
	char eta[32];
	double rate = tokens_per_s(r);
	format_eta(rate > 0 ? (double)(t->steps - t->step) * step_tok / rate : 0, eta, sizeof eta);
	progress_tick(&r->prog, "step %" PRIu64 "/%" PRIu64 " loss %.4f lr %.2e %.0f tok/s ETA %s",
		t->step, t->steps, (double)loss, lr, rate, eta);
	if (r->out && t->ckpt_every && t->step % t->ckpt_every == 0 && t->step < t->steps)
		save(r);
}

/* Steps until the last, --stop-after or a signal. Returns the final loss
 * (NAN when no step ran). */
static float train_loop(struct run *r)
{
	float loss = NAN;
	while (r->t.step < r->t.steps && !stop_signal &&
		!(r->o.stop_after && r->run_steps >= r->o.stop_after)) {
		float norm;
		double lr, t0 = now_seconds();
		loss = train_step(r, &norm, &lr);
		double dt = now_seconds() - t0;
		/* The run's first step also allocates and first touches the
		 * activations: tokens/s leaves it out once a second one ran. */
		if (r->run_steps == 1)
			r->timed_s = 0, r->timed_tokens = 0;
		r->timed_s += dt;
		r->timed_tokens += r->t.accum * r->t.batch * r->t.context;
		r->run_steps++;
		after_step(r, loss, norm, lr, dt);
	}
	progress_done(&r->prog);
	return loss;
}

/* ------------------------------------------------------------ setup */

static void fresh_train(struct run *r)
{
	struct options *o = &r->o;
	struct train *t = &r->t;
	const struct train *g = &o->t;
	memset(t, 0, sizeof *t);
	snprintf(t->preset, sizeof t->preset, "%s", o->given[O_PRESET] ? g->preset : "small");
	struct model_config base = preset_config(t->preset);
	t->context = o->given[O_CONTEXT] ? g->context : (uint64_t)base.max_ctx;
	r->m.c = make_config(&base, t->preset, o, t->context);
	t->steps = o->given[O_STEPS] ? g->steps : 1000;
	t->batch = o->given[O_BATCH] ? g->batch : 4;
	t->accum = o->given[O_ACCUM] ? g->accum : 1;
	t->lr = o->given[O_LR] ? g->lr : strcmp(t->preset, "paper") == 0 ? 1e-4 : 3e-4;
	t->min_lr = o->given[O_MIN_LR] ? g->min_lr : t->lr / 10;
	t->warmup = o->given[O_WARMUP] ? g->warmup : t->steps / 10 < 2000 ? t->steps / 10 : 2000;
	t->beta1 = o->given[O_BETA1] ? g->beta1 : 0.9;
	t->beta2 = o->given[O_BETA2] ? g->beta2 : 0.95;
	t->eps = o->given[O_EPS] ? g->eps : 1e-8;
	t->weight_decay = o->given[O_WD] ? g->weight_decay : 0.1;
	t->clip = o->given[O_CLIP] ? g->clip : 1.0;
	t->seed = o->given[O_SEED] ? g->seed : 1;
	t->ckpt_every = o->given[O_CKPT_EVERY] ? g->ckpt_every : 1000;
	t->eval_every = o->given[O_EVAL_EVERY] ? g->eval_every : 1000;
	t->eval_batches = o->given[O_EVAL_BATCHES] ? g->eval_batches : 8;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	t->threads = o->given[O_THREADS] ? g->threads : cpus > 0 && cpus <= MAX_THREADS ? (uint64_t)cpus : 1;
	t->random_data = g->random_data;
	t->data_seed = derive_seed(t->seed, 1);
	t->rng = derive_seed(t->seed, 2);
}

/* A resumed run may not change what defines the run's model and data. */
static void check_fixed(const struct run *r, const struct model_config *saved)
{
	const struct options *o = &r->o;
	const struct train *t = &r->t;
	int sizes = o->given[O_PRESET] || o->given[O_CONTEXT];
	for (int i = 0; i < MF_COUNT; i++)
		sizes |= o->mf_given[i];
	if (sizes) {
		struct model_config base = o->given[O_PRESET] ? preset_config(o->t.preset) : *saved;
		uint64_t T = o->given[O_CONTEXT] ? o->t.context : t->context;
		if (T != t->context)
			errx(EX_USAGE, "%s: a run of context %" PRIu64 "; --context %" PRIu64 " conflicts",
				o->resume, t->context, T);
		struct model_config want = make_config(&base, o->given[O_PRESET] ? o->t.preset :
			"the checkpoint's model", o, T);
		const char *key = model_config_diff(&want, saved);
		char a[64], b[64];
		if (key) {
			model_config_value(saved, key, a, sizeof a);
			model_config_value(&want, key, b, sizeof b);
			errx(EX_USAGE, "%s: the model's %s is %s, the options ask for %s; a resumed run "
				"keeps its model", o->resume, key, a, b);
		}
	}
	static const struct { int id; size_t off; } fixed[] = {
		{ O_BATCH, offsetof(struct train, batch) }, { O_ACCUM, offsetof(struct train, accum) },
		{ O_SEED, offsetof(struct train, seed) },
		{ O_RANDOM, offsetof(struct train, random_data) },
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		uint64_t saved_v = *(const uint64_t *)((const char *)t + fixed[i].off);
		uint64_t want = *(const uint64_t *)((const char *)&o->t + fixed[i].off);
		if (o->given[fixed[i].id] && want != saved_v)
			errx(EX_USAGE, "%s: a run of --%s %" PRIu64 "; --%s %" PRIu64 " conflicts "
				"(a resumed run keeps its data order)", o->resume, long_name(fixed[i].id),
				saved_v, long_name(fixed[i].id), want);
	}
}

/* Options a resumed run may change (from its next step on). */
static void apply_overrides(struct run *r)
{
	static const struct { int id; size_t off; } changeable[] = {
		{ O_STEPS, offsetof(struct train, steps) }, { O_LR, offsetof(struct train, lr) },
		{ O_MIN_LR, offsetof(struct train, min_lr) },
		{ O_WARMUP, offsetof(struct train, warmup) },
		{ O_BETA1, offsetof(struct train, beta1) }, { O_BETA2, offsetof(struct train, beta2) },
		{ O_EPS, offsetof(struct train, eps) }, { O_WD, offsetof(struct train, weight_decay) },
		{ O_CLIP, offsetof(struct train, clip) },
		{ O_CKPT_EVERY, offsetof(struct train, ckpt_every) },
		{ O_EVAL_EVERY, offsetof(struct train, eval_every) },
		{ O_EVAL_BATCHES, offsetof(struct train, eval_batches) },
		{ O_THREADS, offsetof(struct train, threads) },
	};
	for (size_t i = 0; i < sizeof changeable / sizeof changeable[0]; i++)
		if (r->o.given[changeable[i].id])	/* every field is 8 bytes */
			memcpy((char *)&r->t + changeable[i].off, (char *)&r->o.t + changeable[i].off, 8);
	if (r->t.step > r->t.steps)
		errx(EX_USAGE, "%s: already at step %" PRIu64 "; --steps %" PRIu64 " is behind it",
			r->o.resume, r->t.step, r->t.steps);
}

static void resume_train(struct run *r)
{
	struct ckpt ck;
	char err[1024];
	int rc = ckpt_open(r->o.resume, &ck, 1, err, sizeof err);
	struct model_config saved;
	if (rc || (rc = ckpt_model_config(&ck, &saved, err, sizeof err)) ||
		(rc = read_train(&ck, &r->t, err, sizeof err)))
		errx(rc, "%s", err);
	if (r->t.context > (uint64_t)saved.max_ctx)
		errx(EX_DATAERR, "%s: a run of context %" PRIu64 ", beyond the model's %d", r->o.resume,
			r->t.context, saved.max_ctx);
	check_fixed(r, &saved);
	apply_overrides(r);
	if ((rc = ckpt_load_model(&ck, &r->m, 1, err, sizeof err)))
		errx(rc, "%s", err);
	ckpt_close(&ck);
	r->resumed = 1;
}

/* The output's directory must take new files before any step is spent. */
static void check_output(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = '\0';
	if (access(slash ? dir : ".", W_OK | X_OK) < 0)
		err(EX_CANTCREAT, "%s", path);
	free(dir);
}

static void open_data(struct run *r)
{
	struct train *t = &r->t;
	if (t->random_data) {
		if (r->o.shards)
			cli_usage_error(usage, "--random-data trains on no shards ('%s')", r->o.shards);
		return;
	}
	if (!r->o.shards)
		cli_usage_error(usage, "no shard directory (or --random-data)");
	loader_open(&r->train, r->o.shards, "train.shard", 1, r->m.c.vocab);
	const struct shard_header *h = &r->train.sh.h;
	if (h->n_flows == 0)
		errx(EX_DATAERR, "%s: no flows to train on", r->train.path);
	if (r->resumed && (h->n_flows != t->data_flows || h->n_tokens != t->data_tokens))
		errx(EX_DATAERR, "%s: %" PRIu64 " flows of %" PRIu64 " tokens; %s was trained on %"
			PRIu64 " flows of %" PRIu64 " tokens, and its data position applies to those only",
			r->train.path, h->n_flows, h->n_tokens, r->o.resume, t->data_flows, t->data_tokens);
	t->data_flows = h->n_flows;
	t->data_tokens = h->n_tokens;
	loader_start(&r->train, 1, t->data_seed, t->epoch, t->cursor);
	uint64_t cut = count_long(&r->train, t->context);
	if (cut && !r->o.quiet)
		warnx("%s: %" PRIu64 " of %" PRIu64 " flows are longer than the context of %" PRIu64
			" tokens and are cut to it", r->train.path, cut, h->n_flows, t->context);
	if (!t->eval_every)
		return;
	if (loader_open(&r->val, r->o.shards, "val.shard", 0, r->m.c.vocab)) {
		if (!r->o.quiet)
			warnx("%s: missing: no validation", r->val.path);
		loader_close(&r->val);
	} else if (shard_count(&r->val.sh) == 0) {
		if (!r->o.quiet)
			warnx("%s: no flows: no validation", r->val.path);
		loader_close(&r->val);
	} else {
		loader_start(&r->val, 0, 0, 0, 0);
	}
}

static void open_metrics(struct run *r)
{
	const char *path = r->o.metrics;
	if (!path)
		return;
	if (strcmp(path, "-") == 0) {
		r->metrics = stdout;
	} else {
		r->metrics = fopen(path, r->resumed ? "a" : "w");
		if (!r->metrics)
			err(EX_CANTCREAT, "%s", path);
	}
	struct stat st;
	if (r->metrics == stdout || (fstat(fileno(r->metrics), &st) == 0 && st.st_size == 0))
		fputs("step\tloss\tlr\tgrad_norm\ttokens_per_s\tval_loss\n", r->metrics);
}

static void summary(const struct run *r)
{
	const struct train *t = &r->t;
	if (r->o.quiet)
		return;
	fprintf(stderr, "%s: %s model, %zu parameters, context %" PRIu64 ", batch %" PRIu64
		" x %" PRIu64 ", %" PRIu64 " thread%s; ", cli_progname(), t->preset,
		model_num_params(&r->m), t->context, t->batch, t->accum, t->threads,
		t->threads == 1 ? "" : "s");
	if (t->random_data)
		fprintf(stderr, "random tokens");
	else
		fprintf(stderr, "%s: %" PRIu64 " flows, %" PRIu64 " tokens", r->train.path,
			t->data_flows, t->data_tokens);
	fprintf(stderr, "; %s step %" PRIu64 " of %" PRIu64 "\n", r->resumed ? "resuming at" :
		"from", t->step, t->steps);
}

static void setup(struct run *r)
{
	struct options *o = &r->o;
	if (o->resume) {
		resume_train(r);
	} else {
		fresh_train(r);
		if (!o->out && !r->t.random_data)
			cli_usage_error(usage, "no -o FILE to save the model in");
	}
	r->out = o->out ? o->out : o->resume;
	if (r->out && strcmp(r->out, "-") == 0)
		cli_usage_error(usage, "-o -: a checkpoint is a file, rewritten as the run goes");
	if (r->out)
		check_output(r->out);
	model_set_threads((int)r->t.threads);
	open_data(r);
	struct model_config c = r->m.c;	/* model_init clears *m first */
	if (!r->resumed && model_init(&r->m, &c, r->t.seed) < 0)
		errx(EX_SOFTWARE, "model_init refused a checked config");
	size_t n = (size_t)(r->t.batch * r->t.context);
	r->tok = xcalloc(n, sizeof *r->tok);
	r->tgt = xcalloc(n, sizeof *r->tgt);
	open_metrics(r);
	progress_init(&r->prog, o->quiet);
	summary(r);
}

/* ------------------------------------------------------------ --info */

static int info(const char *path)
{
	struct ckpt ck;
	char err[1024];
	int rc = ckpt_open(path, &ck, 1, err, sizeof err);
	if (rc)
		errx(rc, "%s", err);
	printf("file %s\nversion %u\nsize %zu\nsections %d\n", path, ck.version, ck.map_len, ck.n);
	for (int i = 0; i < ck.n; i++)
		printf("section %s type %u offset %" PRIu64 " size %" PRIu64 " crc32 %08x\n",
			ck.sec[i].name, ck.sec[i].type, ck.sec[i].offset, ck.sec[i].size, ck.sec[i].crc);
	for (uint32_t type = CKPT_MODEL; type <= CKPT_TRAIN; type++) {
		const struct ckpt_section *s = ckpt_find(&ck, type);
		if (s) {
			printf("[%s]\n", s->name);
			fwrite(s->data, 1, s->size, stdout);
		}
	}
	const struct ckpt_section *labels = ckpt_find(&ck, CKPT_LABELS);
	if (labels && labels->size >= 4) {
		const uint8_t *p = labels->data;
		printf("[labels]\nn_labels %u\n", (unsigned)(p[0] | p[1] << 8 | p[2] << 16 |
			(unsigned)p[3] << 24));
	}
	ckpt_close(&ck);
	cli_close_out(stdout, "stdout");
	return 0;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	static struct run run;
	struct run *r = &run;
	cli_init(argc, argv);
	catch_signals();
	parse_options(argc, argv, &r->o);
	if (r->o.info)
		return info(r->o.info);
	setup(r);
	uint64_t start = r->t.step;
	float loss = train_loop(r);
	int nothing_new = r->resumed && r->t.step == start && r->out == r->o.resume;
	if (r->out && !nothing_new)
		save(r);
	if (r->metrics && r->metrics != stdout && fclose(r->metrics) != 0)
		err(EX_IOERR, "%s", r->o.metrics);
	if (r->metrics == stdout)
		cli_close_out(stdout, "stdout");
	if (!r->o.quiet) {
		fprintf(stderr, "%s: step %" PRIu64 " of %" PRIu64, cli_progname(), r->t.step,
			r->t.steps);
		if (!isnan(loss))
			fprintf(stderr, ", loss %.4f", (double)loss);
		if (stop_signal)
			fprintf(stderr, ", stopped by %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
		if (r->out)
			fprintf(stderr, "; checkpoint %s", r->out);
		fputc('\n', stderr);
	}
	fprintf(stderr, "tokens/s: %.1f\n", tokens_per_s(r));
	loader_close(&r->train);
	loader_close(&r->val);
	model_free(&r->m);
	free(r->tok);
	free(r->tgt);
	return stop_signal == SIGINT ? 128 + SIGINT : 0;
}
