/* tgpt-train.c: trains the TrafficGPT model (model.h) on the shards of
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
 * gradients are summed over the ranks, and rank 0 writes what is written.
 *
 * This file is the loop: main sets the run up (setup.c), then each step
 * takes accum micro-batches forward and backward, sums the ranks'
 * gradients, clips them and updates the parameters, then validates and
 * saves when it is time. The other parts are listed in train.h. */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "dist.h"
#include "train.h"

static volatile sig_atomic_t stop_signal;

/* The exit status of a run stopped by SIGINT or SIGTERM after writing its
 * checkpoint: not finished, to be resumed (a signal that killed the process
 * shows as 128 + the signal, as ever). */
#define EX_STOPPED EX_TEMPFAIL

/* SIGINT and SIGTERM ask the loop to stop after the current step and save;
 * more of them change nothing (timeout(1) signals twice: the process and
 * its group), and while the checkpoint is written they wait (save). Only a
 * signal that cannot be caught, or SIGQUIT, ends the run at once. */
static void on_signal(int sig)
{
	if (!stop_signal)
		stop_signal = sig;
}

/* A signal the caller ignores (SIGINT in a shell's background job) stays
 * ignored. Both signals are blocked while the handler runs. */
static void catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction sa, old;
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaddset(&sa.sa_mask, SIGINT);
		sigaddset(&sa.sa_mask, SIGTERM);
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
double batch_pass(struct model *m, const int *tok, const int *tgt, int B, int T)
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
void check_ranks_agree(const struct run *r)
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
 * atomically; SIGINT and SIGTERM wait until it is in place, from its first
 * byte gathered to its rename. Rank 0 writes, once the ranks agree on the
 * parameters. */
static void save(struct run *r)
{
	struct ckpt_out o = { 0 };
	struct ckpt_text model_txt = { 0 }, train_txt = { 0 };
	sigset_t block, old;
	check_ranks_agree(r);
	if (dist_rank() != 0)
		return;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
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

/* ------------------------------------------------------------ steps */

void dropout_on(struct run *r)
{
	r->m.drop = (struct model_dropout){
		.attn = (float)r->t.attn_dropout, .resid = (float)r->t.resid_dropout,
		.seed = derive_seed(r->t.seed, 3), .pass = r->t.step << 32 | r->step_passes++,
	};
}

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
	if (r->o.export)
		return export_model(r->o.export, r->o.out);
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
	return stop_signal ? EX_STOPPED : 0;
}
