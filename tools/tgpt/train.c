/* train.c: tgpt-train: trains the TrafficGPT model (model.h) on the shards of
 * tokshard(1) with next-token cross-entropy and AdamW (warm-up, cosine decay,
 * clipping, gradient accumulation), and writes resumable checkpoints
 * (tgpt-ckpt(5)): a resumed run continues with the very next batch and gives
 * the same bits as an uninterrupted one. With --labels it fine-tunes a
 * classifier instead (paper section 2; the input and label layout are
 * classify.h's): balanced batches, validation accuracy and macro-F1, and the
 * best model kept. With --conditional it pre-trains a class-conditional
 * model: every flow led by its label's token (conditional.h).
 * Built with MPI (dist.h) it trains data-parallel: every
 * rank builds the same batches and computes on its share of their rows, the
 * gradients are summed over the ranks, and rank 0 writes what is written. */
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

#include "bytes.h"
#include "cli.h"
#include "record.h"
#include "ckpt.h"
#include "classify.h"
#include "conditional.h"
#include "dist.h"
#include "model.h"
#include "shard.h"

static const char usage[] =
	"usage: tgpt-train [-q] [-j N] [--preset NAME] [--context T] [SIZES] [TRAINING]\n"
	"                  [-o FILE] [--metrics FILE] SHARDS | --random-data\n"
	"       tgpt-train --resume FILE [-q] [-j N] [-o FILE] [--metrics FILE]\n"
	"                  [--steps N] [SHARDS]\n"
	"       tgpt-train --conditional [--label-tokens K] [--finetune FILE | --preset NAME\n"
	"                  [SIZES]] [TRAINING] -o FILE SHARDS\n"
	"       tgpt-train --labels [--finetune FILE | --preset NAME [SIZES]]\n"
	"                  [--window-tokens W] [--balance MODE] [TRAINING] -o FILE SHARDS\n"
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
	"      --attn-dropout P  dropout on the attention output (default 0)\n"
	"      --resid-dropout P dropout on each block's output before the residual\n"
	"                        stream (default 0)\n"
	"      --dropout P       both (the paper: 0.1); never in validation\n"
	"      --seed N          seed of the initialisation and data order (default 1)\n"
	"      --random-data     random tokens, no shards (for benchmarks)\n"
	"      --finetune FILE   start from the model and parameters in FILE (fresh\n"
	"                        optimizer and schedule)\n"
	"Class-conditional pre-training (tgpt-infer generate --label X then generates\n"
	"flows of label X):\n"
	"      --conditional     every flow led by its label's token (flows without one:\n"
	"                        by the token of no label); the vocabulary grows to hold\n"
	"                        the label tokens, ids from 260 on\n"
	"Classification (the label is the token the model predicts after CLS and the\n"
	"first W tokens of a flow):\n"
	"      --labels          fine-tune a classifier on the shards' labels (without\n"
	"                        --finetune: from random parameters)\n"
	"      --window-tokens W flow tokens after CLS (default 256; also --ft-window)\n"
	"      --label-tokens K  tokens per label: 1 (up to 256 labels) or 2 (default:\n"
	"                        as few as the labels need; also for --conditional)\n"
	"      --balance MODE    sample (default: every class as often), weight (loss\n"
	"                        weighted by class) or none\n"
	"Output:\n"
	"  -o, --output FILE     the checkpoint (default: the --resume FILE); a classifier\n"
	"                        keeps the parameters of its best validation macro-F1\n"
	"      --ckpt-every N    also every N steps (default 1000, 0: at the end)\n"
	"      --resume FILE     continue the run saved in FILE\n"
	"      --stop-after N    stop (and save) after N steps of this invocation\n"
	"      --metrics FILE    TSV lines: step loss lr grad_norm tokens_per_s val_loss\n"
	"                        (a classifier: and val_acc val_f1; '-' = stdout;\n"
	"                        appended to on --resume)\n"
	"      --eval-every N    validation every N steps (default 1000, 100 for a\n"
	"                        classifier, 0 = never)\n"
	"      --eval-batches N  batches of val.shard per validation (default 8; a\n"
	"                        classifier: all of its labelled flows)\n"
	"      --info FILE       check a checkpoint and print its contents as text\n"
	"  -j, --threads N       threads (default: the number of CPUs)\n"
	"  -q, --quiet           no progress or summary (still the tokens/s line)\n"
	"  -h, --help            this help\n"
	"  -V, --version         version and libraries\n";

#define MAX_THREADS 1024
#define MAX_STEPS INT32_MAX     /* model_adamw_update counts steps in an int */
#define MAX_WINDOW (1 << 20)    /* --window-tokens */
#define DEFAULT_WINDOW 256      /* the paper's fine-tuning window (its Table I) */

/* The index of name in names (NULL-terminated), or -1. */
static int enum_index(const char *const *names, const char *name)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

static int enum_value(const char *use, const char *flag, const char *const *names, const char *arg)
{
	int v = enum_index(names, arg);
	if (v < 0)
		cli_usage_error(use, "%s: '%s' is none of %s, %s, %s", flag, arg, names[0], names[1],
			names[2]);
	return v;
}

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

enum train_mode { MODE_PRETRAIN, MODE_FINETUNE };
static const char *const mode_names[] = { "pretrain", "finetune", NULL };
enum balance { BAL_NONE, BAL_WEIGHT, BAL_SAMPLE };
static const char *const balance_names[] = { "none", "weight", "sample", NULL };

/* Hyper-parameters and state of a run: the TRAIN section of a checkpoint. */
struct train {
	char preset[16];
	uint64_t step, steps, warmup, batch, context, accum, seed, threads;
	uint64_t ckpt_every, eval_every, eval_batches, random_data;
	double lr, min_lr, beta1, beta2, eps, weight_decay, clip;
	uint64_t epoch, cursor, data_seed, data_flows, data_tokens; /* data position */
	uint64_t rng;          /* the random-data generator; the class sampler */
	uint64_t tokens;       /* tokens trained on so far */
	/* a classifier (mode finetune): context is clf_row_len */
	uint64_t mode, window_tokens, label_tokens, balance;
	uint64_t best_step;    /* the step of the best validation macro-F1, 0: none */
	double best_val_f1, best_val_acc;
	double attn_dropout, resid_dropout;
};

enum field_kind { TF_U64, TF_DBL, TF_ENUM };
static const struct train_field {
	const char *key;
	size_t off;
	enum field_kind kind;
	const char *const *names;  /* TF_ENUM: the values' names */
	int optional;              /* absent from older checkpoints: 0; 2: a classifier's only;
	                              3: written only when not 0 */
} train_fields[] = {
#define U(f) { #f, offsetof(struct train, f), TF_U64, NULL, 0 }
#define D(f) { #f, offsetof(struct train, f), TF_DBL, NULL, 0 }
#define OU(f) { #f, offsetof(struct train, f), TF_U64, NULL, 2 }
#define OD(f) { #f, offsetof(struct train, f), TF_DBL, NULL, 2 }
#define OE(f, names, opt) { #f, offsetof(struct train, f), TF_ENUM, names, opt }
#define ND(f) { #f, offsetof(struct train, f), TF_DBL, NULL, 3 }
	U(step), U(steps), U(batch), U(context), U(accum), U(seed), U(threads),
	D(lr), D(min_lr), U(warmup), D(beta1), D(beta2), D(eps), D(weight_decay), D(clip),
	U(ckpt_every), U(eval_every), U(eval_batches), U(random_data),
	U(epoch), U(cursor), U(data_seed), U(data_flows), U(data_tokens), U(rng), U(tokens),
	OE(mode, mode_names, 1), OU(window_tokens), OU(label_tokens), OE(balance, balance_names, 2),
	OU(best_step), OD(best_val_f1), OD(best_val_acc), ND(attn_dropout), ND(resid_dropout),
#undef U
#undef D
#undef OU
#undef OD
#undef OE
#undef ND
};
#define N_TRAIN_FIELDS (sizeof train_fields / sizeof train_fields[0])

/* Training options that may be given: which were, by their option id. */
enum { O_PRESET = 256, O_CONTEXT, O_STEPS, O_BATCH, O_ACCUM, O_LR, O_MIN_LR, O_WARMUP,
	O_BETA1, O_BETA2, O_EPS, O_WD, O_CLIP, O_SEED, O_RANDOM, O_CKPT_EVERY, O_RESUME,
	O_STOP_AFTER, O_METRICS, O_EVAL_EVERY, O_EVAL_BATCHES, O_INFO, O_THREADS,
	O_LABELS, O_FINETUNE, O_WINDOW_TOKENS, O_LABEL_TOKENS, O_BALANCE, O_CONDITIONAL,
	O_ATTN_DROPOUT, O_RESID_DROPOUT, O_DROPOUT, O_END,
	O_MODEL = 400, O_NO = 500 };

struct options {
	struct train t;              /* the values given */
	int given[O_END];
	int mf_value[MF_COUNT], mf_given[MF_COUNT];
	const char *out, *resume, *metrics, *info, *shards, *finetune;
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
	{ "attn-dropout", required_argument, NULL, O_ATTN_DROPOUT },
	{ "resid-dropout", required_argument, NULL, O_RESID_DROPOUT },
	{ "dropout", required_argument, NULL, O_DROPOUT },
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
	{ "labels", no_argument, NULL, O_LABELS },
	{ "finetune", required_argument, NULL, O_FINETUNE },
	{ "window-tokens", required_argument, NULL, O_WINDOW_TOKENS },
	{ "ft-window", required_argument, NULL, O_WINDOW_TOKENS },
	{ "label-tokens", required_argument, NULL, O_LABEL_TOKENS },
	{ "balance", required_argument, NULL, O_BALANCE },
	{ "conditional", no_argument, NULL, O_CONDITIONAL },
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
	const char *libs[] = { blis, dist_library(), NULL };	/* MPI: the build over ranks */
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
	case O_ATTN_DROPOUT: t->attn_dropout = opt_real(id, arg, 0, 0.9); break;
	case O_RESID_DROPOUT: t->resid_dropout = opt_real(id, arg, 0, 0.9); break;
	case O_DROPOUT:	/* both, as if each were given */
		t->attn_dropout = t->resid_dropout = opt_real(id, arg, 0, 0.9);
		o->given[O_ATTN_DROPOUT] = o->given[O_RESID_DROPOUT] = 1;
		break;
	case O_SEED: t->seed = opt_num(id, arg, 0, UINT64_MAX); break;
	case O_RANDOM: t->random_data = 1; break;
	case O_CKPT_EVERY: t->ckpt_every = opt_num(id, arg, 0, MAX_STEPS); break;
	case O_EVAL_EVERY: t->eval_every = opt_num(id, arg, 0, MAX_STEPS); break;
	case O_EVAL_BATCHES: t->eval_batches = opt_num(id, arg, 1, 1 << 20); break;
	case O_THREADS: t->threads = opt_num(id, arg, 1, MAX_THREADS); break;
	case O_LABELS: t->mode = MODE_FINETUNE; break;
	case O_CONDITIONAL: break;	/* o->given[O_CONDITIONAL] */
	case O_WINDOW_TOKENS: t->window_tokens = opt_num(id, arg, 1, MAX_WINDOW); break;
	case O_LABEL_TOKENS: t->label_tokens = opt_num(id, arg, 1, 2); break;
	case O_BALANCE: t->balance = (uint64_t)enum_value(usage, "--balance", balance_names, arg);
		break;
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
		else if (c == O_FINETUNE)
			o->finetune = optarg, o->given[c] = 1;
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

/* The smallest table an axial classifier needs for inputs of T tokens: the
 * local blocks must tile it and it covers at least one axial row. */
static int classifier_ctx(const struct model_config *c, uint64_t T)
{
	uint64_t x = T > (uint64_t)c->axial_w ? T : (uint64_t)c->axial_w;
	if (c->n_local > 0 && c->window > 0)
		x = (x + (uint64_t)c->window - 1) / (uint64_t)c->window * (uint64_t)c->window;
	return x > (uint64_t)MAX_WINDOW * 2 ? MAX_WINDOW * 2 : (int)x;
}

/* The config a run asks for: BASE (a preset or a checkpoint's config) with
 * the size flags given, and the position table fitted to the context T: an
 * axial table grows with T, a learned one has the base's rows. Pre-training
 * packs sequences of T tokens, which local blocks must tile; a classifier
 * of window W (0: pre-training) has inputs of up to T tokens. Exits 64
 * when the model cannot take T. */
static struct model_config make_config(const struct model_config *base, const char *what,
	const struct options *o, uint64_t T, uint64_t W)
{
	struct model_config c = *base;
	int classify = W > 0;
	const char *flag = classify ? "--window-tokens" : "--context";
	uint64_t shown = classify ? W : T;
	for (int i = 0; i < MF_COUNT; i++)
		if (o->mf_given[i])
			*(int *)((char *)&c + model_flags[i].off) = o->mf_value[i];
	if (!classify && c.n_local > 0 && c.window > 0 && T % (uint64_t)c.window != 0)
		cli_usage_error(usage, "--context %" PRIu64 ": %s has local attention heads, whose "
			"blocks of %d tokens must tile the context: take a multiple of %d", T, what,
			c.window, c.window);
	if (c.pos == POS_LEARNED && T > (uint64_t)c.max_ctx)
		cli_usage_error(usage, "%s %" PRIu64 ": the learned position table of %s covers %d "
			"tokens, the sequences take %" PRIu64 " (--pos axial grows with them)", flag,
			shown, what, c.max_ctx, T);
	if (c.pos == POS_AXIAL)
		c.max_ctx = classify ? classifier_ctx(&c, T) : (int)T;
	const char *why = model_config_check(&c);
	if (why)
		cli_usage_error(usage, "%s with these sizes and %s %" PRIu64 ": %s", what, flag,
			shown, why);
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
	const struct ckpt_labels *cond; /* a conditional model's labels, which lead flows */
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

/* Flows of a class-conditional model: each led by its label's tokens. The
 * flows themselves hold tokenizer ids only; the ids past them are labels. */
static void loader_condition(struct loader *l, const struct ckpt_labels *map)
{
	l->cond = map;
	l->vocab = COND_TOKEN_BASE;
}

static void loader_close(struct loader *l)
{
	if (l->path)
		shard_close(&l->sh);
	free(l->perm);
	free(l->path);
	memset(l, 0, sizeof *l);
}

/* Flows longer than T (less their label tokens), which are cut to fit. */
static uint64_t count_long(const struct loader *l, uint64_t T)
{
	uint64_t n = 0, room = T - (l->cond ? l->cond->k : 0);
	for (uint64_t i = 0; i < shard_count(&l->sh); i++)
		n += l->sh.offsets[i + 1] - l->sh.offsets[i] > room;
	return n;
}

/* One sequence seq (T): whole flows one after the other from the cursor
 * while they fit (each led by its label's tokens for a conditional model),
 * then PAD. A flow that does not fit in what is left starts the next
 * sequence; one longer than T fills a sequence alone, cut. At the end of
 * the flows a shuffling loader starts the next epoch, the other pads. */
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
		uint16_t id;
		shard_flow(&l->sh, flow, &tok, &len, &id);
		for (size_t i = 0; i < len && i < (size_t)T; i++)
			if (tok[i] >= l->vocab)
				errx(EX_DATAERR, "%s: flow %" PRIu64 ": token %u at %zu is outside the "
					"vocabulary of %d", l->path, flow, tok[i], i, l->vocab);
		int next = cond_put_flow(l->cond, l->cond ? cond_entry(l->cond, id) : 0, tok, len,
			seq, pos, T);
		if (next < 0)
			break;
		pos = next;
		l->cursor++;
	}
	for (; pos < T; pos++)
		seq[pos] = pad;
}

/* B sequences of T tokens and their targets, the next token of each (the
 * last position has none: PAD, which the loss leaves out; nor have the
 * positions before a label token). */
static void shard_batch(struct loader *l, int *tok, int *tgt, int B, int T, int pad)
{
	for (int b = 0; b < B; b++) {
		int *s = tok + (size_t)b * T, *y = tgt + (size_t)b * T;
		pack_sequence(l, s, T, pad);
		memcpy(y, s + 1, (size_t)(T - 1) * sizeof *y);
		y[T - 1] = pad;
		if (l->cond)
			cond_mask_targets(y, (size_t)T, pad);
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

/* ------------------------------------------------------------ classifier data */

/* The labelled flows of train.shard by label (each label's in file order),
 * the labels that have any, and the class weights of --balance weight. */
struct labelled {
	uint64_t n;
	uint64_t *flows;       /* (n) */
	uint64_t *start;       /* (labels + 1): label c's are flows[start[c] .. start[c + 1]) */
	uint32_t n_present;
	uint32_t *present;     /* (n_present) the labels with flows */
	double *weight;        /* (labels) n / (n_present * flows of the label) */
};

static uint64_t labelled_count(const struct shard *sh)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < shard_count(sh); i++)
		n += sh->label_ids[i] != SHARD_NO_LABEL;
	return n;
}

static void labelled_index(struct labelled *lab, const struct shard *sh)
{
	uint32_t nl = sh->h.n_labels;
	uint64_t nf = shard_count(sh);
	lab->start = xcalloc((size_t)nl + 1, sizeof *lab->start);
	for (uint64_t i = 0; i < nf; i++)
		if (sh->label_ids[i] != SHARD_NO_LABEL)
			lab->start[sh->label_ids[i] + 1]++;
	for (uint32_t c = 0; c < nl; c++)
		lab->start[c + 1] += lab->start[c];
	lab->n = lab->start[nl];
	lab->flows = xcalloc(lab->n + 1, sizeof *lab->flows);
	uint64_t *fill = xcalloc((size_t)nl + 1, sizeof *fill);
	memcpy(fill, lab->start, ((size_t)nl + 1) * sizeof *fill);
	for (uint64_t i = 0; i < nf; i++)
		if (sh->label_ids[i] != SHARD_NO_LABEL)
			lab->flows[fill[sh->label_ids[i]]++] = i;
	free(fill);
	lab->present = xcalloc((size_t)nl + 1, sizeof *lab->present);
	lab->weight = xcalloc((size_t)nl + 1, sizeof *lab->weight);
	for (uint32_t c = 0; c < nl; c++)
		if (lab->start[c + 1] > lab->start[c])
			lab->present[lab->n_present++] = c;
	for (uint32_t c = 0; c < nl; c++) {
		uint64_t k = lab->start[c + 1] - lab->start[c];
		lab->weight[c] = k ? (double)lab->n / ((double)lab->n_present * (double)k) : 0.0;
	}
}

static void labelled_free(struct labelled *lab)
{
	free(lab->flows);
	free(lab->start);
	free(lab->present);
	free(lab->weight);
	memset(lab, 0, sizeof *lab);
}

/* The label map of a new classifier: the shard's label table, label i
 * predicted as the tokens of clf_assign_tokens, with its training flows. */
static void labels_from_shard(struct ckpt_labels *map, const struct shard *sh,
	const struct labelled *lab, uint32_t k, uint32_t window)
{
	memset(map, 0, sizeof *map);
	map->n = sh->h.n_labels;
	map->k = k;
	map->window = window;
	map->name = xcalloc((size_t)map->n + 1, sizeof *map->name);
	map->count = xcalloc((size_t)map->n + 1, sizeof *map->count);
	for (uint32_t i = 0; i < map->n; i++) {
		map->name[i] = xstrdup(shard_label(sh, (uint16_t)i));
		map->count[i] = lab->start[i + 1] - lab->start[i];
	}
	clf_assign_tokens(map, 0);
}

/* A shard's label table must be the model's: the same labels in the same
 * order (tokshard writes one table into the three shards of a run); a
 * conditional model's map has one more, the "" of flows without a label. */
static void check_same_labels(const struct ckpt_labels *map, const struct shard *sh,
	const char *path, const char *whose)
{
	uint32_t n = map->n - (map->conditional ? 1 : 0);
	if (sh->h.n_labels != n)
		errx(EX_DATAERR, "%s: %u labels; %s has %u", path, sh->h.n_labels, whose, n);
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(shard_label(sh, (uint16_t)i), map->name[i]) != 0)
			errx(EX_DATAERR, "%s: label %u is '%s'; %s has '%s' there", path, i,
				shard_label(sh, (uint16_t)i), whose, map->name[i]);
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
	int loaded;               /* the model came from --finetune FILE */
	int conditional;          /* a class-conditional model (conditional.h), r->map its labels */
	FILE *metrics;
	struct progress prog;
	double timed_s;           /* steps timed for tokens/s ... */
	uint64_t timed_tokens;    /* ... and their tokens */
	uint64_t run_steps;       /* steps of this invocation */
	uint64_t step_passes;     /* training passes so far in this step (dropout) */
	/* a classifier (t.mode MODE_FINETUNE) */
	int classify;
	struct ckpt_labels map;   /* its labels and their tokens (also a conditional model's) */
	struct labelled lab;      /* the labelled flows of train.shard */
	struct clf clf;           /* validation, as tgpt-infer classifies */
	struct clf_tally tally;
	float *probs;             /* (batch, labels) */
	const uint16_t **bflow;   /* (batch) the flows of a batch ... */
	size_t *blen;             /* ... their lengths ... */
	uint32_t *blab;           /* ... and labels */
	float *best;              /* the parameters of t.best_step */
	double val_acc, val_f1;   /* of the last validation */
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
		if (train_fields[i].optional == 2 && t->mode != MODE_FINETUNE)
			continue;
		if (train_fields[i].optional == 3 && *(const double *)p == 0)
			continue;	/* so runs without it write what they did before */
		if (train_fields[i].kind == TF_DBL)
			ckpt_text_add(txt, train_fields[i].key, "%s",
				ckpt_real(v, sizeof v, *(const double *)p, 0));
		else if (train_fields[i].kind == TF_ENUM)
			ckpt_text_add(txt, train_fields[i].key, "%s",
				train_fields[i].names[*(const uint64_t *)p]);
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
		const struct train_field *f = &train_fields[i];
		char *p = (char *)t + f->off, name[32];
		size_t len;
		if (f->optional && !ckpt_text_get(s, f->key, &len))
			continue;	/* a checkpoint of an older build: 0 */
		if (f->kind == TF_ENUM) {
			int v;
			if (ckpt_get_str(s, f->key, name, sizeof name, msg, sizeof msg) < 0)
				goto bad;
			if ((v = enum_index(f->names, name)) < 0) {
				snprintf(msg, sizeof msg, "section train: %s '%s' is unknown", f->key, name);
				goto bad;
			}
			*(uint64_t *)p = (uint64_t)v;
		} else if (f->kind == TF_DBL ?
			ckpt_get_double(s, f->key, (double *)p, msg, sizeof msg) < 0 :
			ckpt_get_u64(s, f->key, (uint64_t *)p, msg, sizeof msg) < 0) {
			goto bad;
		}
	}
	if (t->batch < 1 || t->batch > 1 << 16 || t->accum < 1 || t->accum > 1 << 16 ||
		t->context < 2 || t->context > 1 << 20 || t->steps > MAX_STEPS ||
		t->step > t->steps || t->threads < 1 || t->threads > MAX_THREADS ||
		(t->cursor > t->data_flows) || t->best_step > t->step ||
		(t->mode == MODE_FINETUNE && (t->window_tokens < 1 || t->window_tokens > MAX_WINDOW ||
		t->label_tokens < 1 || t->label_tokens > 2 ||
		t->context != t->window_tokens + t->label_tokens)) ||
		!(t->attn_dropout >= 0 && t->attn_dropout <= 0.9) ||
		!(t->resid_dropout >= 0 && t->resid_dropout <= 0.9)) {
		snprintf(msg, sizeof msg, "section train: values out of range");
		goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: %s", ck->path, msg);
	return EX_DATAERR;
}

/* ------------------------------------------------------------ ranks */

/* This rank's rows of a batch of B, [*lo, *lo + n): the ranks' shares in
 * rank order (B >= ranks, checked by setup). */
static int rank_rows(int B, int *lo)
{
	int k = dist_rank(), R = dist_size();
	*lo = (int)((long long)B * k / R);
	return (int)((long long)B * (k + 1) / R) - *lo;
}

/* Forward and backward of this rank's rows of a batch (tok, tgt: B rows of
 * T, which every rank built alike), its loss normalised by the targets of
 * the whole batch: the ranks' gradients then add up to the batch's gradient
 * on one process. Returns this rank's share of the batch's loss (the loss
 * itself on one process). */
static double batch_pass(struct model *m, const int *tok, const int *tgt, int B, int T)
{
	if (dist_size() == 1) {
		float loss = model_forward(m, tok, tgt, B, T);
		model_backward(m);
		return loss;
	}
	int lo, n = rank_rows(B, &lo);
	long long total = 0;
	for (size_t i = 0; i < (size_t)B * (size_t)T; i++)
		total += tgt[i] != m->c.pad_id;
	if (n == 0 || total == 0)
		return 0;
	m->drop.row0 = (uint64_t)lo;	/* the masks of these rows in the whole batch */
	float loss = model_forward(m, tok + (size_t)lo * T, tgt + (size_t)lo * T, n, T);
	double share = (double)loss * m->n_valid / (double)total;
	m->n_valid = (int)total;	/* model_backward scales by 1 / n_valid */
	model_backward(m);
	return share;
}

/* Every rank must hold the same parameters (the same seed or checkpoint,
 * the same summed gradients) and data: else the run is not one. */
static void check_ranks_agree(const struct run *r)
{
	if (dist_size() == 1)
		return;
	uint64_t h = crc32_update(0, r->m.params_mem, r->m.n_params * sizeof(float));
	uint64_t w[3] = { h, r->t.data_flows, r->t.data_tokens };
	if (!dist_same(hash_words(w, 3)))
		errx(EX_SOFTWARE, "step %" PRIu64 ": the ranks' parameters or shards differ (the "
			"same shards and --resume or --finetune file on every host?)", r->t.step);
}

/* Writes the checkpoint (training state, model, parameters, AdamW moments)
 * atomically; SIGINT and SIGTERM wait until it is in place. Rank 0 writes,
 * once the ranks agree on the parameters. */
static void save(struct run *r)
{
	struct ckpt_out o = { 0 };
	struct ckpt_text model_txt = { 0 }, train_txt = { 0 };
	sigset_t block, old;
	check_ranks_agree(r);
	if (dist_rank() != 0)
		return;
	r->t.epoch = r->train.epoch;
	r->t.cursor = r->train.cursor;
	train_text(&r->t, &train_txt);
	ckpt_out_add(&o, CKPT_TRAIN, train_txt.buf, train_txt.len);
	if (r->classify) {
		/* PARAMS: the best parameters so far; LAST: the step's, to resume from */
		ckpt_out_add_model_with(&o, &r->m, &model_txt, &r->map,
			r->best && r->t.best_step != r->t.step ? r->best : NULL);
	} else {
		ckpt_out_add_model_with(&o, &r->m, &model_txt, r->conditional ? &r->map : NULL,
			NULL);
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	ckpt_write(&o, r->out);
	sigprocmask(SIG_SETMASK, &old, NULL);
	ckpt_text_free(&model_txt);
	ckpt_text_free(&train_txt);
	ckpt_out_free(&o);
}

/* The mean loss over --eval-batches batches of val.shard from its start
 * (the same batches every time), weighted by their non-PAD targets (each
 * rank takes its rows of every batch); NAN without validation data. */
static double evaluate(struct run *r)
{
	struct loader *v = &r->val;
	int B = (int)r->t.batch, T = (int)r->t.context, lo, n = rank_rows(B, &lo);
	double sum[2] = { 0, 0 };	/* loss * targets, targets */
	if (!v->path)
		return NAN;
	v->cursor = 0;
	for (uint64_t b = 0; b < r->t.eval_batches && v->cursor < shard_count(&v->sh); b++) {
		shard_batch(v, r->tok, r->tgt, B, T, r->m.c.pad_id);
		float loss = model_forward(&r->m, r->tok + (size_t)lo * T, r->tgt + (size_t)lo * T,
			n, T);
		sum[0] += (double)loss * r->m.n_valid;
		sum[1] += r->m.n_valid;
	}
	dist_sum_doubles(sum, 2);
	return sum[1] ? sum[0] / sum[1] : NAN;
}

/* ------------------------------------------------------------ classifier steps */

/* The flow tokens a classifier reads must be in the model's vocabulary. */
static void check_prefix(const struct loader *l, uint64_t flow, const uint16_t *tok, size_t len,
	uint64_t window)
{
	for (size_t i = 0; i < len && i < window; i++)
		if (tok[i] >= l->vocab)
			errx(EX_DATAERR, "%s: flow %" PRIu64 ": token %u at %zu is outside the "
				"vocabulary of %d", l->path, flow, tok[i], i, l->vocab);
}

/* The next labelled flow of the shuffled epoch (unlabelled ones skipped). */
static uint64_t next_labelled(struct loader *l)
{
	uint64_t n = shard_count(&l->sh);
	for (;;) {
		if (l->cursor == n) {
			l->epoch++;
			l->cursor = 0;
			loader_permute(l);
		}
		uint64_t flow = l->perm[l->cursor++];
		if (l->sh.label_ids[flow] != SHARD_NO_LABEL)
			return flow;
	}
}

/* The B flows of a classifier micro-batch into r->bflow, blen, blab:
 * --balance sample draws a label uniformly among those with training flows,
 * then one of its flows (both from the run's generator); the others take
 * the labelled flows of the shuffled epoch in turn. */
static void pick_flows(struct run *r, int B)
{
	struct loader *l = &r->train;
	const struct labelled *lab = &r->lab;
	for (int b = 0; b < B; b++) {
		uint64_t flow;
		uint16_t id;
		if (r->t.balance == BAL_SAMPLE) {
			uint32_t c = lab->present[rng_next(&r->t.rng) % lab->n_present];
			uint64_t k = lab->start[c + 1] - lab->start[c];
			flow = lab->flows[lab->start[c] + rng_next(&r->t.rng) % k];
		} else {
			flow = next_labelled(l);
		}
		shard_flow(&l->sh, flow, &r->bflow[b], &r->blen[b], &id);
		r->blab[b] = id;
		check_prefix(l, flow, r->bflow[b], r->blen[b], r->t.window_tokens);
	}
}

static void scale_grads(struct model *m, float f)
{
	for (size_t i = 0; i < m->n_params; i++)
		m->grads_mem[i] *= f;
}

struct row_order {
	uint32_t label;
	int row;
};

static int by_label(const void *a, const void *b)
{
	const struct row_order *x = a, *y = b;
	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

/* Dropout for the next training pass (one per micro-batch, or per label
 * group of --balance weight): the run's rates, a mask seed of its own, and
 * the pass's place in the run, so a resumed run draws the same masks.
 * train_step turns it off after its passes: validation runs without. */
static void dropout_on(struct run *r)
{
	r->m.drop = (struct model_dropout){
		.attn = (float)r->t.attn_dropout, .resid = (float)r->t.resid_dropout,
		.seed = derive_seed(r->t.seed, 3), .pass = r->t.step << 32 | r->step_passes++,
	};
}

/* Forward and backward of B classifier rows (r->bflow ...); returns the
 * loss and adds the tokens the pass took to *tokens. */
static float classifier_pass(struct run *r, const uint16_t *const *flow, const size_t *len,
	const uint32_t *label, int B, uint64_t *tokens)
{
	struct model *m = &r->m;
	int T = clf_batch(&r->map, m->c.pad_id, flow, len, label, B, r->tok, r->tgt);
	dropout_on(r);
	double loss = batch_pass(m, r->tok, r->tgt, B, T);
	*tokens += (uint64_t)B * (uint64_t)T;
	return (float)loss;
}

/* One micro-batch of a classifier: forward and backward, its gradient added
 * (grads_zero: the gradients are still all zero); returns its loss.
 * --balance weight makes the loss the weighted mean sum_i w_c(i) l_i /
 * sum_i w_c(i) (w_c = labelled flows / (labels present * flows of c), as
 * PyTorch's CrossEntropyLoss(weight)): the rows of each label go through a
 * pass of their own, whose mean gradient g_c enters with the weight
 * a_c = w_c n_c / sum_i w_c(i). The model adds gradients, so the sum
 * G + sum_c a_c g_c is built by scaling what is there by a_prev / a_c
 * before each pass and by the last a_c after. */
static double classifier_micro(struct run *r, int grads_zero, uint64_t *tokens)
{
	int B = (int)r->t.batch;
	pick_flows(r, B);
	if (r->t.balance != BAL_WEIGHT)
		return classifier_pass(r, r->bflow, r->blen, r->blab, B, tokens);
	struct row_order *ord = xcalloc((size_t)B, sizeof *ord);
	const uint16_t **flow = xcalloc((size_t)B, sizeof *flow);
	size_t *len = xcalloc((size_t)B, sizeof *len);
	uint32_t *label = xcalloc((size_t)B, sizeof *label);
	double wsum = 0, loss = 0, prev = 1;
	for (int b = 0; b < B; b++) {
		ord[b] = (struct row_order){ r->blab[b], b };
		wsum += r->lab.weight[r->blab[b]];
	}
	qsort(ord, (size_t)B, sizeof *ord, by_label);
	for (int b = 0; b < B; b++) {
		flow[b] = r->bflow[ord[b].row];
		len[b] = r->blen[ord[b].row];
		label[b] = ord[b].label;
	}
	for (int g = 0, end; g < B; g = end) {
		for (end = g + 1; end < B && label[end] == label[g]; end++)
			;
		double a = r->lab.weight[label[g]] * (end - g) / wsum;
		if (!(grads_zero && g == 0))
			scale_grads(&r->m, (float)(prev / a));
		loss += a * classifier_pass(r, flow + g, len + g, label + g, end - g, tokens);
		prev = a;
	}
	scale_grads(&r->m, (float)prev);
	free(ord);
	free(flow);
	free(len);
	free(label);
	return loss;
}

/* The classes of n flows (r->bflow ...) with the loss of their labels,
 * tallied into r->tally; returns the summed loss. */
static double classify_chunk(struct run *r, int n)
{
	uint32_t nl = r->map.n;
	double loss = clf_predict(&r->clf, r->bflow, r->blen, r->blab, n, r->probs);
	for (int f = 0; f < n; f++)
		clf_tally_add(&r->tally, r->blab[f], clf_argmax(r->probs + (size_t)f * nl, nl));
	return loss;
}

/* Validation of a classifier: the labelled flows of val.shard in file order
 * (the first eval_batches * batch of them; all with eval_batches 0),
 * classified as tgpt-infer does (classify.h). Returns the mean loss of
 * their label tokens and sets r->val_acc and r->val_f1; NAN without
 * validation data. */
static double evaluate_classifier(struct run *r)
{
	struct loader *v = &r->val;
	uint64_t limit = r->t.eval_batches ? r->t.eval_batches * r->t.batch : UINT64_MAX, seen = 0;
	int n = 0;
	double loss = 0;
	r->val_acc = r->val_f1 = NAN;
	if (!v->path)
		return NAN;
	clf_tally_reset(&r->tally);
	for (uint64_t i = 0; i < shard_count(&v->sh) && seen < limit; i++) {
		uint16_t id;
		shard_flow(&v->sh, i, &r->bflow[n], &r->blen[n], &id);
		if (id == SHARD_NO_LABEL)
			continue;
		check_prefix(v, i, r->bflow[n], r->blen[n], r->t.window_tokens);
		r->blab[n++] = id;
		seen++;
		if (n == (int)r->t.batch) {
			loss += classify_chunk(r, n);
			n = 0;
		}
	}
	if (n)
		loss += classify_chunk(r, n);
	r->val_acc = clf_accuracy(&r->tally);
	r->val_f1 = clf_macro_f1(&r->tally, NULL);
	return seen ? loss / (double)(seen * r->t.label_tokens) : NAN;
}

/* A validation macro-F1 above the best so far (the first one counts; ties
 * keep the earlier step) makes the parameters the best. Returns 1 then. */
static int keep_best(struct run *r)
{
	struct train *t = &r->t;
	if (isnan(r->val_f1) || (t->best_step && !(r->val_f1 > t->best_val_f1)))
		return 0;
	t->best_step = t->step;
	t->best_val_f1 = r->val_f1;
	t->best_val_acc = r->val_acc;
	if (!r->best)
		r->best = xmalloc(r->m.n_params * sizeof *r->best);
	memcpy(r->best, r->m.params_mem, r->m.n_params * sizeof *r->best);
	return 1;
}

/* ------------------------------------------------------------ steps */

/* One optimizer step: accum micro-batches (each rank its rows of them),
 * their mean gradient (summed over the ranks) clipped, AdamW. Returns the
 * mean of the micro-batches' losses; *tokens gets the tokens it took. */
static float train_step(struct run *r, float *grad_norm, double *lr, uint64_t *tokens)
{
	struct model *m = &r->m;
	int B = (int)r->t.batch, T = (int)r->t.context;
	double loss = 0;
	*tokens = 0;
	r->step_passes = 0;
	model_zero_grad(m);
	for (uint64_t a = 0; a < r->t.accum; a++) {
		if (r->classify) {
			loss += classifier_micro(r, a == 0, tokens);
			continue;
		}
		if (r->t.random_data)
			random_batch(&r->t.rng, r->tok, r->tgt, B, T, m->c.vocab);
		else
			shard_batch(&r->train, r->tok, r->tgt, B, T, m->c.pad_id);
		dropout_on(r);
		loss += batch_pass(m, r->tok, r->tgt, B, T);
		*tokens += (uint64_t)B * (uint64_t)T;
	}
	m->drop = (struct model_dropout){ 0 };
	if (dist_size() > 1) {	/* the ranks' shares: the same sums everywhere */
		dist_sum_floats(m->grads_mem, m->n_params);
		dist_sum_doubles(&loss, 1);
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
	r->t.tokens += *tokens;
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

/* Validation (and, for a classifier, the best parameters); prints it. */
static double validate(struct run *r)
{
	const struct train *t = &r->t;
	if (r->classify && dist_rank() != 0)
		return NAN;	/* rank 0 keeps the best parameters and saves them */
	double val = r->classify ? evaluate_classifier(r) : evaluate(r);
	int best = r->classify && keep_best(r);
	if (isnan(val) || r->o.quiet)
		return val;
	progress_done(&r->prog);
	fprintf(stderr, "%s: step %" PRIu64 ": val_loss %.4f", cli_progname(), t->step, val);
	if (r->classify)
		fprintf(stderr, " val_acc %.4f val_f1 %.4f%s", r->val_acc, r->val_f1,
			best ? " (best)" : "");
	fputc('\n', stderr);
	return val;
}

/* A metrics value: the shortest form that reads back the same, or empty. */
static void metric(FILE *f, double v, int tab)
{
	if (tab)
		fputc('\t', f);
	if (!isnan(v))
		fprintf(f, "%.9g", v);
}

/* After a step: metrics line, progress, validation and checkpoint. */
static void after_step(struct run *r, float loss, float norm, double lr, double step_s,
	uint64_t step_tokens)
{
	const struct train *t = &r->t;
	double val = NAN;
	r->val_acc = r->val_f1 = NAN;
	if (t->eval_every && (t->step % t->eval_every == 0 || t->step == t->steps))
		val = validate(r);
	double step_tok = (double)step_tokens;
	if (r->metrics) {
		fprintf(r->metrics, "%" PRIu64 "\t%.9g\t%.9g\t%.9g\t%.1f\t", t->step, (double)loss,
			(double)(float)lr, (double)norm, step_s > 0 ? step_tok / step_s : 0.0);
		metric(r->metrics, val, 0);
		if (r->classify) {
			metric(r->metrics, r->val_acc, 1);
			metric(r->metrics, r->val_f1, 1);
		}
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
	while (r->t.step < r->t.steps && !dist_any(stop_signal) &&
		!(r->o.stop_after && r->run_steps >= r->o.stop_after)) {
		float norm;
		uint64_t tokens;
		double lr, t0 = now_seconds();
		loss = train_step(r, &norm, &lr, &tokens);
		double dt = now_seconds() - t0;
		/* The run's first step also allocates and first touches the
		 * activations: tokens/s leaves it out once a second one ran. */
		if (r->run_steps == 1)
			r->timed_s = 0, r->timed_tokens = 0;
		r->timed_s += dt;
		r->timed_tokens += tokens;
		r->run_steps++;
		after_step(r, loss, norm, lr, dt, tokens);
	}
	progress_done(&r->prog);
	return loss;
}

/* ------------------------------------------------------------ setup */

/* --finetune FILE: the model and parameters of FILE into r->m (its TRAIN
 * preset, for people, into r->t.preset); *base gets its config. A
 * class-conditional FILE goes on with --conditional (its labels into r->map)
 * or becomes a classifier (--labels). */
static void load_pretrained(struct run *r, struct model_config *base)
{
	struct ckpt ck;
	const struct ckpt_section *s;
	struct ckpt_labels map;
	char err[1024], msg[256];
	const char *path = r->o.finetune;
	int rc = ckpt_open(path, &ck, 0, err, sizeof err);
	if (rc || (rc = ckpt_load_model(&ck, &r->m, 0, err, sizeof err)) ||
		(rc = ckpt_read_labels(&ck, &map, err, sizeof err)))
		errx(rc, "%s", err);
	if (map.conditional && r->o.given[O_CONDITIONAL])
		r->map = map;
	else if (map.conditional && r->o.t.mode != MODE_FINETUNE)
		cli_usage_error(usage, "--finetune %s: a class-conditional model: go on with "
			"--conditional (or fine-tune a classifier with --labels)", path);
	else
		ckpt_labels_free(&map);
	if (!ckpt_find(&ck, CKPT_TRAIN) || ckpt_verify(&ck, CKPT_TRAIN, &s, err, sizeof err) ||
		ckpt_get_str(s, "preset", r->t.preset, sizeof r->t.preset, msg, sizeof msg) < 0)
		snprintf(r->t.preset, sizeof r->t.preset, "checkpoint");
	ckpt_close(&ck);
	*base = r->m.c;
	r->loaded = 1;
}

/* A pre-training context T for the model of --finetune FILE, whose
 * position table is fixed. */
static void check_loaded_context(const struct run *r, uint64_t T)
{
	const struct model_config *c = &r->m.c;
	if (T > (uint64_t)c->max_ctx)
		cli_usage_error(usage, "--context %" PRIu64 ": the model of %s covers %d tokens",
			T, r->o.finetune, c->max_ctx);
	if (c->n_local > 0 && T % (uint64_t)c->window != 0)
		cli_usage_error(usage, "--context %" PRIu64 ": the model of %s has local attention "
			"heads, whose blocks of %d tokens must tile the context", T, r->o.finetune,
			c->window);
}

/* Tokens per label for n labels (and, with_unlabelled, the label of flows
 * without one): --label-tokens, else as few as they need. Exits 65 when one
 * token cannot name them all. */
static uint32_t label_token_count(const struct run *r, uint32_t n, int with_unlabelled)
{
	const struct options *o = &r->o;
	uint32_t entries = n + (with_unlabelled ? 1 : 0);
	uint32_t k = o->given[O_LABEL_TOKENS] ? (uint32_t)o->t.label_tokens : clf_tokens_for(entries);
	if (k == 1 && entries > CLF_ONE_TOKEN_MAX)
		errx(EX_DATAERR, "%s: %u labels%s; one label token names at most %d: "
			"--label-tokens 2 names labels by two tokens", r->train.path, n,
			with_unlabelled ? " and the one of flows without a label" : "", CLF_ONE_TOKEN_MAX);
	return k;
}

/* A new class-conditional run: the label map of train.shard (conditional.h),
 * its flows led by their labels' tokens, and the vocabulary they need (into
 * base->vocab: the preset's, or more). A model of --finetune FILE keeps its
 * vocabulary, which must hold the tokens, and when FILE is conditional its
 * labels, which must be the shard's. Exits 65 when the shard has no
 * labelled flows. */
static void open_conditional(struct run *r, struct model_config *base)
{
	const struct options *o = &r->o;
	if (!o->shards)
		cli_usage_error(usage, "no shard directory");
	loader_open(&r->train, o->shards, "train.shard", 1, base->vocab);
	const struct shard *sh = &r->train.sh;
	uint32_t n = sh->h.n_labels;
	uint64_t labelled = labelled_count(sh);
	if (n == 0 || labelled == 0)
		errx(EX_DATAERR, "%s: no labelled flows (%" PRIu64 " flows, %u labels): "
			"--conditional trains on the labels of pcap2flow -l or --labels, or flow2tok -l",
			r->train.path, shard_count(sh), n);
	for (uint32_t i = 0; i < n; i++)
		if (!*shard_label(sh, (uint16_t)i))
			errx(EX_DATAERR, "%s: label %u is empty, the name of flows without a label",
				r->train.path, i);
	labelled_index(&r->lab, sh);
	const char **name = xcalloc((size_t)n + 1, sizeof *name);
	uint64_t *count = xcalloc((size_t)n + 1, sizeof *count);
	for (uint32_t i = 0; i < n; i++) {
		name[i] = shard_label(sh, (uint16_t)i);
		count[i] = r->lab.start[i + 1] - r->lab.start[i];
	}
	if (r->map.conditional) {	/* --finetune of a conditional model */
		char why[256];
		if (cond_check(&r->map, r->m.c.vocab, why, sizeof why) < 0)
			errx(EX_DATAERR, "%s: %s", o->finetune, why);
		check_same_labels(&r->map, sh, r->train.path, o->finetune);
		if (o->given[O_LABEL_TOKENS] && o->t.label_tokens != r->map.k)
			cli_usage_error(usage, "--label-tokens %" PRIu64 ": the model of %s names labels "
				"by %u", o->t.label_tokens, o->finetune, r->map.k);
		memcpy(r->map.count, count, n * sizeof *count);
		r->map.count[n] = shard_count(sh) - labelled;
	} else {
		cond_map_init(&r->map, n, name, count, shard_count(sh) - labelled,
			label_token_count(r, n, 1));
	}
	free(name);
	free(count);
	labelled_free(&r->lab);
	int need = cond_vocab(&r->map);
	if (r->loaded && r->m.c.vocab < need)
		errx(EX_DATAERR, "%s: a vocabulary of %d tokens; the label tokens of the %u labels of "
			"%s need %d", o->finetune, r->m.c.vocab, n, r->train.path, need);
	if (base->vocab < need)
		base->vocab = need;
	r->conditional = 1;
	loader_condition(&r->train, &r->map);
}

/* A new classifier: the labelled flows of train.shard, the label map and the
 * input length (r->t.context). Exits 65 when the shard has no labelled
 * flows or more labels than --label-tokens can name. */
static void open_labels(struct run *r, int vocab)
{
	struct train *t = &r->t;
	const struct options *o = &r->o;
	if (!o->shards)
		cli_usage_error(usage, "no shard directory");
	loader_open(&r->train, o->shards, "train.shard", 1, vocab);
	const struct shard *sh = &r->train.sh;
	uint32_t n = sh->h.n_labels;
	uint64_t labelled = labelled_count(sh);
	if (n == 0 || labelled == 0)
		errx(EX_DATAERR, "%s: no labelled flows (%" PRIu64 " flows, %u labels): --labels "
			"trains on the labels of pcap2flow -l or --labels, or flow2tok -l", r->train.path,
			shard_count(sh), n);
	uint32_t k = label_token_count(r, n, 0);
	labelled_index(&r->lab, sh);
	labels_from_shard(&r->map, sh, &r->lab, k, (uint32_t)t->window_tokens);
	t->label_tokens = k;
	t->context = (uint64_t)clf_row_len(&r->map);
	if (r->lab.n_present < 2 && !o->quiet)
		warnx("%s: only one label has flows: the classifier learns nothing but it",
			r->train.path);
}

/* Options that only a run of one kind takes. */
static void check_fresh_options(const struct options *o)
{
	static const int classifier_only[] = { O_WINDOW_TOKENS, O_LABEL_TOKENS, O_BALANCE };
	int sizes = o->given[O_PRESET];
	for (int i = 0; i < MF_COUNT; i++)
		sizes |= o->mf_given[i];
	for (size_t i = 0; i < sizeof classifier_only / sizeof classifier_only[0]; i++)
		if (o->given[classifier_only[i]] && o->t.mode != MODE_FINETUNE &&
			!(classifier_only[i] == O_LABEL_TOKENS && o->given[O_CONDITIONAL]))
			cli_usage_error(usage, "--%s is an option of --labels%s",
				long_name(classifier_only[i]), classifier_only[i] == O_LABEL_TOKENS ?
				" or --conditional" : "");
	if (o->finetune && sizes)
		cli_usage_error(usage, "--finetune %s keeps its model: no --preset or sizes",
			o->finetune);
	if (o->t.mode == MODE_FINETUNE && o->given[O_CONTEXT])
		cli_usage_error(usage, "--labels: a classifier's inputs are --window-tokens long, "
			"not --context");
	if (o->t.random_data && (o->finetune || o->t.mode == MODE_FINETUNE))
		cli_usage_error(usage, "--random-data trains no classifier and starts from no "
			"checkpoint");
	if (o->given[O_CONDITIONAL] && (o->t.mode == MODE_FINETUNE || o->t.random_data))
		cli_usage_error(usage, "--conditional pre-trains a generator on the shards' labels: "
			"not with %s", o->t.random_data ? "--random-data" : "--labels");
}

static void fresh_train(struct run *r)
{
	struct options *o = &r->o;
	struct train *t = &r->t;
	const struct train *g = &o->t;
	struct model_config base;
	check_fresh_options(o);
	memset(t, 0, sizeof *t);
	if (o->finetune) {
		load_pretrained(r, &base);
	} else {
		snprintf(t->preset, sizeof t->preset, "%s", o->given[O_PRESET] ? g->preset : "small");
		base = preset_config(t->preset);
	}
	t->mode = g->mode;
	r->classify = t->mode == MODE_FINETUNE;
	if (r->classify) {
		t->window_tokens = o->given[O_WINDOW_TOKENS] ? g->window_tokens : DEFAULT_WINDOW;
		t->balance = o->given[O_BALANCE] ? g->balance : BAL_SAMPLE;
		open_labels(r, base.vocab);
		if (!r->loaded)
			r->m.c = make_config(&base, t->preset, o, t->context, t->window_tokens);
		else if (t->context > (uint64_t)r->m.c.max_ctx)
			cli_usage_error(usage, "--window-tokens %" PRIu64 ": inputs of %" PRIu64 " tokens "
				"(CLS, the window%s) are beyond the %d the model of %s covers",
				t->window_tokens, t->context, t->label_tokens == 2 ?
				", a first label token" : "", r->m.c.max_ctx, o->finetune);
	} else {
		t->context = o->given[O_CONTEXT] ? g->context : (uint64_t)base.max_ctx;
		if (o->given[O_CONDITIONAL]) {
			open_conditional(r, &base);
			if (t->context <= r->map.k)
				cli_usage_error(usage, "--context %" PRIu64 ": no room after %u label "
					"token%s", t->context, r->map.k, r->map.k == 1 ? "" : "s");
		}
		if (r->loaded)
			check_loaded_context(r, t->context);
		else
			r->m.c = make_config(&base, t->preset, o, t->context, 0);
	}
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
	t->attn_dropout = o->given[O_ATTN_DROPOUT] ? g->attn_dropout : 0.0;
	t->resid_dropout = o->given[O_RESID_DROPOUT] ? g->resid_dropout : 0.0;
	t->seed = o->given[O_SEED] ? g->seed : 1;
	t->ckpt_every = o->given[O_CKPT_EVERY] ? g->ckpt_every : 1000;
	t->eval_every = o->given[O_EVAL_EVERY] ? g->eval_every : r->classify ? 100 : 1000;
	t->eval_batches = o->given[O_EVAL_BATCHES] ? g->eval_batches : r->classify ? 0 : 8;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN) / dist_local_size();	/* ranks share them */
	t->threads = o->given[O_THREADS] ? g->threads : cpus > 0 && cpus <= MAX_THREADS ? (uint64_t)cpus : 1;
	t->random_data = g->random_data;
	t->data_seed = derive_seed(t->seed, 1);
	t->rng = derive_seed(t->seed, 2);
}

/* A resumed classifier keeps its model: a size given again must be the
 * checkpoint's (its inputs fix the position table, so there is no
 * --context to compare). */
static void check_fixed_classifier(const struct run *r, const struct model_config *saved)
{
	const struct options *o = &r->o;
	if (o->given[O_CONTEXT])
		errx(EX_USAGE, "%s: a classifier's run: its inputs are --window-tokens long, not "
			"--context", o->resume);
	if (o->given[O_PRESET] && strcmp(o->t.preset, r->t.preset) != 0)
		errx(EX_USAGE, "%s: a run of preset %s; --preset %s conflicts", o->resume,
			r->t.preset, o->t.preset);
	for (int i = 0; i < MF_COUNT; i++) {
		int have = *(const int *)((const char *)saved + model_flags[i].off);
		if (o->mf_given[i] && o->mf_value[i] != have)
			errx(EX_USAGE, "%s: the model's %s is %d, the options ask for %d; a resumed run "
				"keeps its model", o->resume, model_flags[i].flag + 2, have,
				o->mf_value[i]);
	}
}

/* A resumed run may not change what defines the run's model and data. */
static void check_fixed(const struct run *r, const struct model_config *saved)
{
	const struct options *o = &r->o;
	const struct train *t = &r->t;
	int sizes = o->given[O_PRESET] || o->given[O_CONTEXT];
	for (int i = 0; i < MF_COUNT; i++)
		sizes |= o->mf_given[i];
	if (o->finetune)
		cli_usage_error(usage, "--finetune starts a run from a model; --resume continues "
			"one");
	if (o->given[O_LABELS] && t->mode != MODE_FINETUNE)
		errx(EX_USAGE, "%s: a pre-training run; --labels conflicts (a classifier starts "
			"from it with --finetune %s --labels)", o->resume, o->resume);
	static const int classifier_only[] = { O_WINDOW_TOKENS, O_LABEL_TOKENS, O_BALANCE };
	for (size_t i = 0; i < sizeof classifier_only / sizeof classifier_only[0]; i++)
		if (o->given[classifier_only[i]] && t->mode != MODE_FINETUNE)
			errx(EX_USAGE, "%s: a pre-training run; --%s is an option of --labels", o->resume,
				long_name(classifier_only[i]));
	if (o->given[O_BALANCE] && o->t.balance != t->balance)
		errx(EX_USAGE, "%s: a run of --balance %s; --balance %s conflicts", o->resume,
			balance_names[t->balance], balance_names[o->t.balance]);
	if (t->mode == MODE_FINETUNE)
		check_fixed_classifier(r, saved);
	else if (sizes) {
		struct model_config base = o->given[O_PRESET] ? preset_config(o->t.preset) : *saved;
		uint64_t T = o->given[O_CONTEXT] ? o->t.context : t->context;
		if (T != t->context)
			errx(EX_USAGE, "%s: a run of context %" PRIu64 "; --context %" PRIu64 " conflicts",
				o->resume, t->context, T);
		struct model_config want = make_config(&base, o->given[O_PRESET] ? o->t.preset :
			"the checkpoint's model", o, T, 0);
		if (saved->vocab > want.vocab)	/* grown for a conditional model's labels */
			want.vocab = saved->vocab;
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
		{ O_WINDOW_TOKENS, offsetof(struct train, window_tokens) },
		{ O_LABEL_TOKENS, offsetof(struct train, label_tokens) },
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
		{ O_ATTN_DROPOUT, offsetof(struct train, attn_dropout) },
		{ O_RESID_DROPOUT, offsetof(struct train, resid_dropout) },
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

/* A resumed classifier: its label map, and its parameters as they were
 * at its last step (LAST, when PARAMS holds the best step's). */
static int resume_classifier(struct run *r, struct ckpt *ck, char *err, size_t errlen)
{
	struct train *t = &r->t;
	size_t n = r->m.n_params;
	int rc = ckpt_read_labels(ck, &r->map, err, errlen);
	if (rc)
		return rc;
	if (r->map.n == 0 || r->map.k != t->label_tokens || r->map.window != t->window_tokens) {
		snprintf(err, errlen, "%s: section labels does not match the fine-tuning run of "
			"section train", ck->path);
		return EX_DATAERR;
	}
	r->classify = 1;
	if (t->best_step) {
		r->best = xmalloc(n * sizeof *r->best);
		memcpy(r->best, r->m.params_mem, n * sizeof *r->best);
	}
	if (ckpt_find(ck, CKPT_LAST))
		return ckpt_load_floats(ck, CKPT_LAST, n, &r->m.params_mem, err, errlen);
	return 0;
}

/* A resumed pre-training run: class-conditional when its checkpoint says
 * so (its labels into r->map); --conditional must find it so. */
static int resume_pretraining(struct run *r, struct ckpt *ck, char *err, size_t errlen)
{
	int rc = ckpt_read_labels(ck, &r->map, err, errlen);
	if (rc)
		return rc;
	r->conditional = r->map.conditional != 0;
	if (r->o.given[O_CONDITIONAL] && !r->conditional)
		errx(EX_USAGE, "%s: a run without --conditional; a resumed run keeps its model",
			ck->path);
	char why[256];
	if (r->conditional && cond_check(&r->map, r->m.c.vocab, why, sizeof why) < 0)
		errx(EX_DATAERR, "%s: %s", ck->path, why);
	if (!r->conditional)
		ckpt_labels_free(&r->map);
	return 0;
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
	if ((rc = ckpt_load_model(&ck, &r->m, 1, err, sizeof err)) ||
		(r->t.mode == MODE_FINETUNE ? (rc = resume_classifier(r, &ck, err, sizeof err)) :
		(rc = resume_pretraining(r, &ck, err, sizeof err))))
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

/* val.shard, when there is one with flows to validate on (labelled ones
 * for a classifier); else a warning and no validation. */
static void open_val(struct run *r)
{
	const char *none = NULL;
	if (loader_open(&r->val, r->o.shards, "val.shard", 0, r->m.c.vocab))
		none = "missing";
	else if (shard_count(&r->val.sh) == 0)
		none = "no flows";
	else if (r->classify) {
		check_same_labels(&r->map, &r->val.sh, r->val.path, r->train.path);
		if (labelled_count(&r->val.sh) == 0)
			none = "no labelled flows";
	} else if (r->conditional) {
		check_same_labels(&r->map, &r->val.sh, r->val.path, r->train.path);
		loader_condition(&r->val, &r->map);
	}
	if (!none) {
		loader_start(&r->val, 0, 0, 0, 0);
		return;
	}
	if (!r->o.quiet)
		warnx("%s: %s: no validation", r->val.path, none);
	loader_close(&r->val);
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
	if (!r->train.path)
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
	if (r->classify && r->resumed) {
		check_same_labels(&r->map, &r->train.sh, r->train.path, r->o.resume);
		labelled_index(&r->lab, &r->train.sh);
	}
	if (r->conditional && r->resumed) {
		check_same_labels(&r->map, &r->train.sh, r->train.path, r->o.resume);
		loader_condition(&r->train, &r->map);
	}
	uint64_t cut = r->classify ? 0 : count_long(&r->train, t->context);
	if (cut && !r->o.quiet)
		warnx("%s: %" PRIu64 " of %" PRIu64 " flows are longer than the context of %" PRIu64
			" tokens and are cut to it", r->train.path, cut, h->n_flows, t->context);
	if (t->eval_every)
		open_val(r);
}

/* The classifier's validation: the predictor (with no more input rows per
 * forward pass than a training micro-batch, as far as one flow allows) and
 * its buffers. */
static void setup_classifier(struct run *r)
{
	char err[256];
	size_t B = (size_t)r->t.batch;
	int rows = clf_rows_per_flow(&r->map), per_pass = (int)B / rows;
	if (clf_init(&r->clf, &r->m, &r->map, per_pass > 0 ? per_pass : 1, err, sizeof err) < 0)
		errx(EX_DATAERR, "%s: %s", r->o.finetune ? r->o.finetune : r->o.resume ?
			r->o.resume : "the model", err);
	clf_tally_init(&r->tally, r->map.n);
	r->probs = xcalloc(B * r->map.n, sizeof *r->probs);
	r->bflow = xcalloc(B, sizeof *r->bflow);
	r->blen = xcalloc(B, sizeof *r->blen);
	r->blab = xcalloc(B, sizeof *r->blab);
}

static void open_metrics(struct run *r)
{
	const char *path = r->o.metrics;
	if (!path || dist_rank() != 0)
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
		fprintf(r->metrics, "step\tloss\tlr\tgrad_norm\ttokens_per_s\tval_loss%s\n",
			r->classify ? "\tval_acc\tval_f1" : "");
}

static void summary(const struct run *r)
{
	const struct train *t = &r->t;
	if (r->o.quiet)
		return;
	fprintf(stderr, "%s: %s model%s%s, %zu parameters, ", cli_progname(), t->preset,
		r->loaded ? " from " : "", r->loaded ? r->o.finetune : "", model_num_params(&r->m));
	if (r->classify)
		fprintf(stderr, "classifier of %u labels (%" PRIu64 " token%s each), window %" PRIu64
			", balance %s", r->map.n, t->label_tokens, t->label_tokens == 1 ? "" : "s",
			t->window_tokens, balance_names[t->balance]);
	else
		fprintf(stderr, "context %" PRIu64, t->context);
	if (r->conditional)
		fprintf(stderr, ", class-conditional on %u labels (%u token%s each)", r->map.n - 1,
			r->map.k, r->map.k == 1 ? "" : "s");
	fprintf(stderr, ", batch %" PRIu64 " x %" PRIu64, t->batch, t->accum);
	if (t->attn_dropout > 0 || t->resid_dropout > 0)
		fprintf(stderr, ", dropout %g (attention) %g (residual)", t->attn_dropout,
			t->resid_dropout);
	fprintf(stderr, ", %" PRIu64 " thread%s", t->threads, t->threads == 1 ? "" : "s");
	if (dist_size() > 1)
		fprintf(stderr, " on each of %d ranks", dist_size());
	fprintf(stderr, "; ");
	if (t->random_data)
		fprintf(stderr, "random tokens");
	else if (r->classify)
		fprintf(stderr, "%s: %" PRIu64 " labelled flows of %" PRIu64, r->train.path,
			r->lab.n, t->data_flows);
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
	if (r->out && dist_rank() == 0)
		check_output(r->out);
	if (r->t.batch < (uint64_t)dist_size())
		errx(EX_USAGE, "--batch %" PRIu64 ": fewer sequences than the %d ranks that share "
			"every batch", r->t.batch, dist_size());
	model_set_threads((int)r->t.threads);
	open_data(r);
	struct model_config c = r->m.c;	/* model_init clears *m first */
	if (!r->resumed && !r->loaded && model_init(&r->m, &c, r->t.seed) < 0)
		errx(EX_SOFTWARE, "model_init refused a checked config");
	size_t n = (size_t)(r->t.batch * r->t.context);
	r->tok = xcalloc(n, sizeof *r->tok);
	r->tgt = xcalloc(n, sizeof *r->tgt);
	if (r->classify)
		setup_classifier(r);
	check_ranks_agree(r);
	open_metrics(r);
	progress_init(&r->prog, o->quiet);
	summary(r);
}

static void teardown(struct run *r)
{
	loader_close(&r->train);
	loader_close(&r->val);
	model_free(&r->m);
	free(r->tok);
	free(r->tgt);
	if (r->classify) {
		clf_free(&r->clf);
		clf_tally_free(&r->tally);
		free(r->probs);
		free(r->bflow);
		free(r->blen);
		free(r->blab);
	}
	ckpt_labels_free(&r->map);
	labelled_free(&r->lab);
	free(r->best);
}

/* ------------------------------------------------------------ --info */

/* The label table of a classifier: one line per label, its id, token ids
 * (comma-separated), training flows and name. */
static void info_labels(struct ckpt *ck)
{
	struct ckpt_labels l;
	char err[1024];
	int rc = ckpt_read_labels(ck, &l, err, sizeof err);
	if (rc)
		errx(rc, "%s", err);
	printf("[labels]\nn_labels %u\n", l.n);
	if (l.n)
		printf("label_tokens %u\n", l.k);
	if (l.n && l.conditional)
		printf("conditional 1\n");
	else if (l.n)
		printf("window_tokens %u\n", l.window);
	for (uint32_t i = 0; i < l.n; i++) {
		printf("label %u %u", i, l.token[(size_t)i * l.k]);
		if (l.k == 2)
			printf(",%u", l.token[(size_t)i * l.k + 1]);
		printf(" %" PRIu64 " %s\n", l.count[i], l.name[i]);
	}
	ckpt_labels_free(&l);
}

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
	if (ckpt_find(&ck, CKPT_LABELS))
		info_labels(&ck);
	ckpt_close(&ck);
	cli_close_out(stdout, "stdout");
	return 0;
}

/* ------------------------------------------------------------ main */

/* The last lines on stderr (but tokens/s): where the run got to. */
static void report(const struct run *r, float loss)
{
	const struct train *t = &r->t;
	fprintf(stderr, "%s: step %" PRIu64 " of %" PRIu64, cli_progname(), t->step, t->steps);
	if (!isnan(loss))
		fprintf(stderr, ", loss %.4f", (double)loss);
	if (stop_signal)
		fprintf(stderr, ", stopped by %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
	if (r->out)
		fprintf(stderr, "; checkpoint %s", r->out);
	fputc('\n', stderr);
	if (!r->classify || !r->out)
		return;
	if (t->best_step)
		fprintf(stderr, "%s: best val_f1 %.4f (val_acc %.4f) at step %" PRIu64 ": the "
			"parameters in %s\n", cli_progname(), t->best_val_f1, t->best_val_acc,
			t->best_step, r->out);
	else
		fprintf(stderr, "%s: no validation yet: %s holds the parameters of step %" PRIu64
			"\n", cli_progname(), r->out, t->step);
}

int main(int argc, char **argv)
{
	static struct run run;
	struct run *r = &run;
	cli_init(argc, argv);
	catch_signals();
	parse_options(argc, argv, &r->o);
	if (r->o.info)
		return info(r->o.info);
	dist_init(&argc, &argv);
	if (dist_rank() != 0)
		r->o.quiet = 1;	/* rank 0 speaks for the run */
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
	if (!r->o.quiet)
		report(r, loss);
	if (dist_rank() == 0)
		fprintf(stderr, "tokens/s: %.1f\n", tokens_per_s(r));
	teardown(r);
	dist_finalize();
	return stop_signal == SIGINT ? 128 + SIGINT : 0;
}
