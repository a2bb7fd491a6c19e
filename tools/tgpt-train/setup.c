/* setup.c: a run from its options: a fresh one (a preset or --finetune
 * FILE, pre-training, a classifier or a class-conditional model) or a
 * resumed one, and the checks that it can run as asked before any step is
 * spent; its data, validation, metrics file and summary line. */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist.h"
#include "train.h"
#include "../tgpt/conditional.h"

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
	else if (map.conditional && r->o.t.mode != MODE_CLASSIFIER)
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
		if (o->given[classifier_only[i]] && o->t.mode != MODE_CLASSIFIER &&
			!(classifier_only[i] == O_LABEL_TOKENS && o->given[O_CONDITIONAL]))
			cli_usage_error(usage, "--%s is an option of --labels%s",
				long_name(classifier_only[i]), classifier_only[i] == O_LABEL_TOKENS ?
				" or --conditional" : "");
	if (o->finetune && sizes)
		cli_usage_error(usage, "--finetune %s keeps its model: no --preset or sizes",
			o->finetune);
	if (o->t.mode == MODE_CLASSIFIER && o->given[O_CONTEXT])
		cli_usage_error(usage, "--labels: a classifier's inputs are --window-tokens long, "
			"not --context");
	if (o->t.random_data && (o->finetune || o->t.mode == MODE_CLASSIFIER))
		cli_usage_error(usage, "--random-data trains no classifier and starts from no "
			"checkpoint");
	if (o->given[O_CONDITIONAL] && (o->t.mode == MODE_CLASSIFIER || o->t.random_data))
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
	r->classify = t->mode == MODE_CLASSIFIER;
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
	if (o->given[O_LABELS] && t->mode != MODE_CLASSIFIER)
		errx(EX_USAGE, "%s: a pre-training run; --labels conflicts (a classifier starts "
			"from it with --finetune %s --labels)", o->resume, o->resume);
	static const int classifier_only[] = { O_WINDOW_TOKENS, O_LABEL_TOKENS, O_BALANCE };
	for (size_t i = 0; i < sizeof classifier_only / sizeof classifier_only[0]; i++)
		if (o->given[classifier_only[i]] && t->mode != MODE_CLASSIFIER)
			errx(EX_USAGE, "%s: a pre-training run; --%s is an option of --labels", o->resume,
				long_name(classifier_only[i]));
	if (o->given[O_BALANCE] && o->t.balance != t->balance)
		errx(EX_USAGE, "%s: a run of --balance %s; --balance %s conflicts", o->resume,
			balance_names[t->balance], balance_names[o->t.balance]);
	/* before the sizes: another preset's would be judged against the
	 * run's context, which the user did not give */
	if (o->given[O_PRESET] && strcmp(o->t.preset, t->preset) != 0)
		errx(EX_USAGE, "%s: a run of preset %s; --preset %s conflicts (a resumed run keeps "
			"its model)", o->resume, t->preset, o->t.preset);
	if (t->mode == MODE_CLASSIFIER)
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
		(r->t.mode == MODE_CLASSIFIER ? (rc = resume_classifier(r, &ck, err, sizeof err)) :
		(rc = resume_pretraining(r, &ck, err, sizeof err))))
		errx(rc, "%s", err);
	ckpt_close(&ck);
	r->resumed = 1;
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
	fprintf(stderr, "%s: %s model%s%s%s, %zu parameters, ", cli_progname(), t->preset,
		r->loaded ? " from " : "", r->loaded ? r->o.finetune : "",
		r->o.given[O_RANDOM_INIT] ? " with random parameters" : "", model_num_params(&r->m));
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
		fprintf(stderr, "%s: %" PRIu64 " %s, %" PRIu64 " %s", r->train.path, t->data_flows,
			plural(t->data_flows, "flow", "flows"), t->data_tokens,
			plural(t->data_tokens, "token", "tokens"));
	fprintf(stderr, "; %s step %" PRIu64 " of %" PRIu64 "\n", r->resumed ? "resuming at" :
		"from", t->step, t->steps);
}

void setup(struct run *r)
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
	/* the checkpoint must be writable before any step is spent: a file (not
	 * a directory) whose directory takes new files */
	if (r->out && dist_rank() == 0)
		atomic_check(r->out);
	if (r->t.batch < (uint64_t)dist_size())
		errx(EX_USAGE, "--batch %" PRIu64 ": fewer sequences than the %d ranks that share "
			"every batch", r->t.batch, dist_size());
	model_set_threads((int)r->t.threads);
	open_data(r);
	struct model_config c = r->m.c;	/* model_init clears *m first */
	int fresh = !r->resumed && (!r->loaded || o->given[O_RANDOM_INIT]);
	if (fresh && r->loaded)
		model_free(&r->m);	/* --random-init: FILE's shape, not its parameters */
	if (fresh && model_init(&r->m, &c, r->t.seed) < 0)
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

void teardown(struct run *r)
{
	loader_close(&r->train);
	loader_close(&r->val);
	model_free(&r->m);
	free(r->tok);
	free(r->tgt);
	if (r->classify) {
		clf_free(&r->clf);
		scores_free(&r->scores);
		free(r->probs);
		free(r->bflow);
		free(r->blen);
		free(r->blab);
	}
	ckpt_labels_free(&r->map);
	labelled_free(&r->lab);
	free(r->best);
}
