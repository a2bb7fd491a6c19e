/* recurrent.h: the tgpt model (model.h) run one token at a time for
 * generation, with a fixed-size state per stream instead of the whole
 * prefix: the same math as model_forward, so the logits of step t equal the
 * parallel forward's at position t (to float rounding).
 *
 * State of one stream, per layer:
 *   linear (global) head: S = sum_j exp(k_j) v_j^T (dh x dh) and
 *       z = sum_j exp(k_j) (dh), over every token so far;
 *   local head: a ring of the last 2W keys and values (the query at t sees
 *       positions (t/W - 1)*W .. t, at most 2W of them);
 *   token shift: the first D/2 channels of the previous token's normalised
 *       input, for the attention and for the feed-forward sublayer.
 * So a step costs the same at position 100 as at 100,000 and the state
 * never grows: 0.3 MB a stream for the bench preset, 2.2 MB for small,
 * 227 MB for paper (its 8 local heads of 256 keep 512 keys and values
 * each in 24 layers; a snapshot copies as much). The reversible stack
 * needs no state of its own: at inference x1 = x2 = x, each layer does
 * y1 = x1 + F(x2), y2 = x2 + G(y1), and the output is (y1 + y2) / 2.
 *
 * Positions past the training context (flows may run longer): the learned
 * table's last row max_ctx-1 serves every later position; the axial table
 * keeps cycling its B row (t % axial_w) and clamps its A row to the last one
 * (t / axial_w at most ceil(max_ctx / axial_w) - 1). Both keep the inputs
 * within what training saw; the linear heads' sums simply keep going.
 *
 * B streams step together (one token each), so the per-token
 * matrix-vector products become (B x D) matrix products. A stream may sit
 * out a step (token -1): the step then costs what the active streams need.
 * A step is one OpenMP parallel region (up to the model_set_threads count)
 * whose threads split every matrix product by output columns and the
 * attention by heads (each thread computes the q, k, v of its own heads,
 * so no barrier between the two), and each compute the LayerNorms whole
 * for themselves (no barrier either): four barriers a layer. Results do not
 * depend on the thread count, nor on the other streams stepped beside a
 * stream (with BLIS's kernels computing a row the same way in any batch, as
 * t-recurrent checks, for f32).
 *
 * Precision of the weights (rec_set_precision): f32 (the default: the
 * parameters themselves, through BLIS), f16 (binary16 copies) or int8
 * (per-row scaled copies, with the inputs of each product scaled to 16-bit
 * integers: exact integer dot products). A step reads every weight once, so
 * with a stream or two it runs at the speed the weights' bytes come from
 * the caches: int8 keeps the bench preset's 3.2 M weights (1.6 MB a thread
 * on 2) in the cores' L2 caches. */
#ifndef TGPT_RECURRENT_H
#define TGPT_RECURRENT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum rec_precision { REC_F32, REC_F16, REC_INT8 };

struct rec_thread;	/* per-thread scratch (recurrent.c) */
struct rec_q8;

struct rec {
	const struct model *m;	/* borrowed: parameters as trained */
	int B;			/* streams */
	size_t state_floats;	/* per stream */
	float *state;		/* (B, state_floats) */
	int64_t *pos;		/* (B) position of each stream's next token */
	float *logits;		/* (B, V) of each stream's last step */
	/* per-step scratch, (B, width) each, allocated once */
	float *emb, *x, *y2, *qkv, *att, *u, *g, *e, *out;
	struct rec_thread *th;	/* one per thread */
	int slots;
	int *active;		/* stream of each row of the step */
	int *tok;		/* token of each row */
	int *feed;		/* (B) rec_feed's step tokens */
	/* A step with fewer multiply-adds than this (all its rows together)
	 * runs on the calling thread alone: a parallel region and its
	 * barriers cost microseconds. rec_init sets REC_PAR_MIN_MACS. */
	double par_min_macs;
	enum rec_precision precision;
	uint16_t *half;		/* f16: binary16 copies of the matrices (at their offsets) */
	struct rec_q8 *q8;	/* int8: the matrices' integer copies (recurrent.c) */
	int simd;		/* the products' kernels (rec_simd); 0: plain C */
};

#define REC_PAR_MIN_MACS 262144.0

/* A copy of one stream's state, position and logits, for rewinding. */
struct rec_snapshot {
	size_t state_floats;
	int vocab;
	int64_t pos;
	float *state;		/* state_floats, then vocab logits */
};

/* Sets up B streams at position 0 for the model (which must outlive r and
 * whose parameters may change between steps, not its config). Returns -1
 * for B < 1. Exits with EX_OSERR when memory runs out. */
int rec_init(struct rec *r, const struct model *m, int B);
void rec_free(struct rec *r);

/* Floats of one stream's state (depends on the config only, never on the
 * position). */
size_t rec_state_floats(const struct model_config *c);

/* Stream b back to position 0 with an empty state and zero logits. */
void rec_reset(struct rec *r, int b);

/* Feeds tok[b] to stream b for every b with tok[b] >= 0 (the others stay
 * as they are) and leaves the next-token logits in rec_logits(r, b). Exits
 * with EX_DATAERR for a token >= vocab, like model_forward. */
void rec_step(struct rec *r, const int *tok);
/* Feeds a whole sequence to stream b alone (a prompt); n may be 0. */
void rec_feed(struct rec *r, int b, const int *tok, size_t n);

/* (V) logits after the last token fed to stream b. */
const float *rec_logits(const struct rec *r, int b);
/* Tokens stream b has been fed (the position of its next one). */
int64_t rec_pos(const struct rec *r, int b);

/* Reduced-precision weights: copies the model's matrices (w_in, w_qkv,
 * w_o, w_1, w_2, w_out, w_head; embeddings, biases and LayerNorms stay
 * float) and runs every later step's products on the copies, activations,
 * attention and sums staying float:
 *   REC_F16: IEEE binary16 (to nearest, saturating at +-65504), products
 *     in float (AVX2 + F16C or plain C, the same bits);
 *   REC_INT8: each row (one output) as round(w / s) in [-127, 127] with
 *     s = max |w| / 127; each input row of a product as 16-bit integers
 *     with its own scale max |x| / 32767; the dot products are exact
 *     integers (AVX-512 VNNI, AVX2 or plain C: the same bits), times the
 *     two scales, plus the bias.
 * Against f32 on trained checkpoints (tiny and bench presets): int8 moves
 * the logits by at most 0.4 to 0.7 % of their range and the next-token
 * distributions by 0.1 to 0.3 % in total variation on average (at most
 * 1.5 %); f16 by 0.02 to 0.04 % and 0.01 %. t-recurrent holds them to
 * 3e-2 and 4e-2 (int8), 2e-3 and 2e-3 (f16) at the presets' initial
 * weights (looser with its deliberately large ones).
 * REC_F32 frees the copies and goes back to the parameters. The copy is of
 * the parameters at the call: call again after they change. */
void rec_set_precision(struct rec *r, enum rec_precision p);
/* "f32", "f16", "int8"; parse returns -1 for another name. */
const char *rec_precision_name(enum rec_precision p);
int rec_precision_parse(const char *name);
/* Nonzero when this CPU runs precision p's products through SIMD kernels
 * (f32: BLIS, always; f16: AVX2 + F16C; int8: 2 AVX-512 VNNI, 1 AVX2). */
int rec_simd(enum rec_precision p);

/* Snapshots: init allocates one for r's model (exits on no memory); save
 * copies stream b into it; restore puts it back into stream b (any b of a
 * rec of the same model), logits included, so the stream continues
 * exactly as it would have from the save. */
void rec_snapshot_init(struct rec_snapshot *s, const struct rec *r);
void rec_snapshot_free(struct rec_snapshot *s);
void rec_save(const struct rec *r, int b, struct rec_snapshot *s);
void rec_restore(struct rec *r, int b, const struct rec_snapshot *s);

#endif
