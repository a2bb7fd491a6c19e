/* train.h: the parts of tgpt-train (private to tools/tgpt-train): a run's
 * options and state, and what each file does for the loop in tgpt-train.c:
 *   options.c     the command line and the model config it asks for
 *   setup.c       a fresh or resumed run, checked before any step is spent
 *   loader.c      flows of a shard packed into sequences, epoch by epoch
 *   classifier.c  fine-tuning for classification (--labels) and its validation
 *   state.c       the TRAIN section of a checkpoint: the run's state
 *   info.c        --info FILE, --export FILE
 *   dist.c        the ranks of a data-parallel run (dist.h) */
#ifndef TGPT_TRAIN_H
#define TGPT_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "../tgpt/ckpt.h"
#include "../tgpt/classify.h"
#include "../tgpt/model.h"
#include "../tgpt/shard.h"
#include "../eval/metrics.h"

#define MAX_THREADS 1024
#define MAX_STEPS INT32_MAX     /* model_adamw_update counts steps in an int */
#define MAX_WINDOW (1 << 20)    /* --window-tokens */
#define DEFAULT_WINDOW 256      /* the paper's fine-tuning window (its Table I) */

extern const char usage[];

/* ------------------------------------------------------------ options */

/* The model sizes a flag may set, each an int field of struct model_config. */
enum { MF_LAYERS, MF_WIDTH, MF_EMB, MF_HEADS, MF_LOCAL, MF_HEAD_DIM, MF_WINDOW, MF_CHUNK,
	MF_FF, MF_GLU, MF_REVERSIBLE, MF_SHIFT, MF_POS, MF_COUNT };
struct model_flag {
	const char *flag;
	size_t off;
	int min, max;
};
extern const struct model_flag model_flags[MF_COUNT];

/* What a run trains: the next token of flows, or a classifier (--labels).
 * The TRAIN section names them "pretrain" and "finetune" (mode_names). */
enum train_mode { MODE_PRETRAIN, MODE_CLASSIFIER };
extern const char *const mode_names[];
enum balance { BAL_NONE, BAL_WEIGHT, BAL_SAMPLE };
extern const char *const balance_names[];

/* Hyper-parameters and state of a run: the TRAIN section of a checkpoint. */
struct train {
	char preset[16];
	uint64_t step, steps, warmup, batch, context, accum, seed, threads;
	uint64_t ckpt_every, eval_every, eval_batches, random_data;
	double lr, min_lr, beta1, beta2, eps, weight_decay, clip;
	uint64_t epoch, cursor, data_seed, data_flows, data_tokens; /* data position */
	uint64_t rng;          /* the random-data generator; the class sampler */
	uint64_t tokens;       /* tokens trained on so far */
	/* a classifier (mode MODE_CLASSIFIER): context is clf_row_len */
	uint64_t mode, window_tokens, label_tokens, balance;
	uint64_t best_step;    /* the step of the best validation macro-F1, 0: none */
	double best_val_f1, best_val_acc;
	double attn_dropout, resid_dropout;
};

/* Training options that may be given: which were, by their option id. */
enum { O_PRESET = 256, O_CONTEXT, O_STEPS, O_BATCH, O_ACCUM, O_LR, O_MIN_LR, O_WARMUP,
	O_BETA1, O_BETA2, O_EPS, O_WD, O_CLIP, O_SEED, O_RANDOM, O_CKPT_EVERY, O_RESUME,
	O_STOP_AFTER, O_METRICS, O_EVAL_EVERY, O_EVAL_BATCHES, O_INFO, O_EXPORT, O_RANDOM_INIT, O_THREADS,
	O_LABELS, O_FINETUNE, O_WINDOW_TOKENS, O_LABEL_TOKENS, O_BALANCE, O_CONDITIONAL,
	O_ATTN_DROPOUT, O_RESID_DROPOUT, O_DROPOUT, O_END,
	O_MODEL = 400, O_NO = 500 };

struct options {
	struct train t;              /* the values given */
	int given[O_END];
	int mf_value[MF_COUNT], mf_given[MF_COUNT];
	const char *out, *resume, *metrics, *info, *export, *shards, *finetune;
	uint64_t stop_after;
	int quiet;
};

void parse_options(int argc, char **argv, struct options *o);
/* The long name of an option id ("steps"). */
const char *long_name(int id);
/* The index of name in names (NULL-terminated), or -1. */
int enum_index(const char *const *names, const char *name);
/* The config a run asks for: BASE (a preset or a checkpoint's config) with
 * the size flags given, and the position table fitted to the context T: an
 * axial table grows with T, a learned one has the base's rows. Pre-training
 * packs sequences of T tokens, which local blocks must tile; a classifier
 * of window W (0: pre-training) has inputs of up to T tokens. Exits 64
 * when the model cannot take T. */
struct model_config make_config(const struct model_config *base, const char *what,
	const struct options *o, uint64_t T, uint64_t W);
/* A preset's config; exits 64 for an unknown name. */
struct model_config preset_config(const char *name);

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

/* A seed for one purpose, from the run's seed (the generator is splitmix64,
 * hash.h). */
uint64_t derive_seed(uint64_t seed, uint64_t purpose);

/* Opens DIR/NAME. Missing: 1 (or exit 66 when required); damaged, of
 * another tokenizer or too large a vocabulary: exit 65. */
int loader_open(struct loader *l, const char *dir, const char *name, int required, int vocab);
void loader_start(struct loader *l, int shuffle, uint64_t seed, uint64_t epoch, uint64_t cursor);
/* The permutation of the epoch l->epoch. */
void loader_permute(struct loader *l);
/* Flows of a class-conditional model: each led by its label's tokens. */
void loader_condition(struct loader *l, const struct ckpt_labels *map);
void loader_close(struct loader *l);
/* Flows longer than T (less their label tokens), which are cut to fit. */
uint64_t count_long(const struct loader *l, uint64_t T);
/* B sequences of T tokens and their targets, the next token of each. */
void shard_batch(struct loader *l, int *tok, int *tgt, int B, int T, int pad);
/* Random tokens: inputs and targets shifted by one. */
void random_batch(uint64_t *rng, int *tok, int *tgt, int B, int T, int vocab);

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

uint64_t labelled_count(const struct shard *sh);
void labelled_index(struct labelled *lab, const struct shard *sh);
void labelled_free(struct labelled *lab);
/* The label map of a new classifier: the shard's label table, label i
 * predicted as the tokens of clf_assign_tokens, with its training flows. */
void labels_from_shard(struct ckpt_labels *map, const struct shard *sh,
	const struct labelled *lab, uint32_t k, uint32_t window);
/* The flow tokens a classifier reads must be in the model's vocabulary. */
void check_prefix(const struct loader *l, uint64_t flow, const uint16_t *tok, size_t len,
	uint64_t window);

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
	/* a classifier (t.mode MODE_CLASSIFIER) */
	int classify;
	struct ckpt_labels map;   /* its labels and their tokens (also a conditional model's) */
	struct labelled lab;      /* the labelled flows of train.shard */
	struct clf clf;           /* validation, as tgpt-infer classifies */
	struct scores scores;     /* ... and its scores (metrics.h) */
	float *probs;             /* (batch, labels) */
	const uint16_t **bflow;   /* (batch) the flows of a batch ... */
	size_t *blen;             /* ... their lengths ... */
	uint32_t *blab;           /* ... and labels */
	float *best;              /* the parameters of t.best_step */
	double val_acc, val_f1;   /* of the last validation */
};

/* setup.c: the run of the options in r->o, ready for its first step (exits
 * with a sysexits code when it cannot run), and its end. */
void setup(struct run *r);
void teardown(struct run *r);

/* tgpt-train.c: forward and backward of this rank's rows of a batch, its
 * loss normalised by the targets of the whole batch; and the check that
 * every rank holds the same parameters and data. */
double batch_pass(struct model *m, const int *tok, const int *tgt, int B, int T);
void check_ranks_agree(const struct run *r);
/* Dropout for the next training pass (one per micro-batch, or per label
 * group of --balance weight): the run's rates, a mask seed of its own, and
 * the pass's place in the run, so a resumed run draws the same masks.
 * train_step turns it off after its passes: validation runs without. */
void dropout_on(struct run *r);

/* classifier.c: the predictor of the validation and its buffers; one
 * micro-batch's forward and backward (its loss); validation (its loss,
 * r->val_acc and r->val_f1); the parameters of the best macro-F1 kept. */
void setup_classifier(struct run *r);
double classifier_micro(struct run *r, int grads_zero, uint64_t *tokens);
double evaluate_classifier(struct run *r);
int keep_best(struct run *r);

/* state.c: the TRAIN section as text, and read back (0, or a sysexits code
 * with a message in err). */
void train_text(const struct train *t, struct ckpt_text *txt);
int read_train(struct ckpt *ck, struct train *t, char *err, size_t errlen);

/* info.c: --info FILE; --export FILE -o OUT. */
int info(const char *path);
int export_model(const char *path, const char *out);

#endif
