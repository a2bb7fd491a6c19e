/* options.c: tgpt-train's command line: the usage text, the option table,
 * parsing into struct options, and the model config a run's options ask for
 * (a preset or checkpoint's config, the size flags given, the context). */
#include <blis.h>
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dist.h"
#include "train.h"

const char usage[] =
	"usage: tgpt-train [-q] [-j N] [--preset NAME] [--context T] [SIZES] [TRAINING]\n"
	"                  [-o FILE] [--metrics FILE] SHARDS | --random-data\n"
	"       tgpt-train --resume FILE [-q] [-j N] [-o FILE] [--metrics FILE]\n"
	"                  [--steps N] [SHARDS]\n"
	"       tgpt-train --conditional [--label-tokens K] [--finetune FILE | --preset NAME\n"
	"                  [SIZES]] [TRAINING] -o FILE SHARDS\n"
	"       tgpt-train --labels [--finetune FILE | --preset NAME [SIZES]]\n"
	"                  [--window-tokens W] [--balance MODE] [TRAINING] -o FILE SHARDS\n"
	"       tgpt-train --info FILE\n"
	"       tgpt-train --export FILE -o FILE\n"
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
	"      --random-init     with --finetune: FILE's model with random parameters\n"
	"                        (the ablation of its pre-training)\n"
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
	"      --export FILE     write FILE's model to -o without the run's state (the\n"
	"                        optimizer's moments): for --finetune and tgpt-infer\n"
	"  -j, --threads N       threads (default: the number of CPUs)\n"
	"  -q, --quiet           no progress or summary (still the tokens/s line)\n"
	"  -h, --help            this help\n"
	"  -V, --version         version and libraries\n";

/* The index of name in names (NULL-terminated), or -1. */
int enum_index(const char *const *names, const char *name)
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

const struct model_flag model_flags[MF_COUNT] = {
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
	{ "export", required_argument, NULL, O_EXPORT },
	{ "random-init", no_argument, NULL, O_RANDOM_INIT },
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

const char *long_name(int id)
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
	case O_LABELS: t->mode = MODE_CLASSIFIER; break;
	case O_CONDITIONAL: break;	/* o->given[O_CONDITIONAL] */
	case O_WINDOW_TOKENS: t->window_tokens = opt_num(id, arg, 1, MAX_WINDOW); break;
	case O_LABEL_TOKENS: t->label_tokens = opt_num(id, arg, 1, 2); break;
	case O_BALANCE: t->balance = (uint64_t)enum_value(usage, "--balance", balance_names, arg);
		break;
	}
}

void parse_options(int argc, char **argv, struct options *o)
{
	int c;
	memset(o, 0, sizeof *o);
	while ((c = cli_getopt(argc, argv, "hj:o:qV", longopts, usage)) != -1) {
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
		else if (c == O_EXPORT)
			o->export = optarg;
		else if (c == O_RANDOM_INIT)
			o->given[c] = 1;
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
	if (o->given[O_RANDOM_INIT] && !o->finetune)
		cli_usage_error(usage, "--random-init takes the model of --finetune FILE");
	if (o->export && !o->out)
		cli_usage_error(usage, "--export %s: -o FILE names the model to write", o->export);
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
struct model_config make_config(const struct model_config *base, const char *what,
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

struct model_config preset_config(const char *name)
{
	struct model_config c;
	if (model_config_preset(name, &c) < 0)
		cli_usage_error(usage, "--preset: '%s' is none of paper, small, tiny, bench", name);
	return c;
}
