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
 * matrix-vector products become (B x D) matrix products through BLIS. A
 * stream may sit out a step (token -1): the step then costs what the
 * active streams need. A step is one OpenMP parallel region (up to the
 * model_set_threads count) whose threads split every matrix product by
 * output columns; results do not depend on the thread count, nor (with
 * BLIS's kernels computing a row the same way in any batch, as t-recurrent
 * checks) on the other streams stepped beside a stream. */
#ifndef TGPT_RECURRENT_H
#define TGPT_RECURRENT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct rec {
	const struct model *m;	/* borrowed: parameters as trained */
	int B;			/* streams */
	size_t state_floats;	/* per stream */
	float *state;		/* (B, state_floats) */
	int64_t *pos;		/* (B) position of each stream's next token */
	float *logits;		/* (B, V) of each stream's last step */
	/* per-step scratch, (B, width) each, allocated once */
	float *emb, *x, *y2, *h, *hs, *qkv, *att, *u, *g, *e, *hf, *mean, *rstd, *out;
	float *attn_scratch;	/* one slot per thread */
	size_t slot_floats;
	int slots;
	int *active;		/* stream of each row of the step */
	int *tok;		/* token of each row */
	int *feed;		/* (B) rec_feed's step tokens */
	/* A step with fewer multiply-adds than this (all its rows together)
	 * runs on the calling thread alone: a parallel region and its
	 * barriers cost microseconds. rec_init sets REC_PAR_MIN_MACS. */
	double par_min_macs;
	uint16_t *half;		/* rec_use_half: binary16 copies of the matrices */
	int half_simd;		/* their products through AVX2 + F16C */
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

/* Half-precision weights (opt-in): copies the model's matrices (w_in,
 * w_qkv, w_o, w_1, w_2, w_out, w_head) to IEEE binary16 (to nearest,
 * saturating at +-65504; 2 bytes per parameter) and runs every later
 * step's products on them, activations and sums staying float. A step then
 * reads half the bytes, which pays where the weights' bytes bound it: one
 * or two streams of a model past the caches (bench preset, one stream, 2
 * threads: 1.55 times the tokens/s). Logits differ from model_forward's by
 * about 1e-3 of their scale (presets at their initial weights: 6e-4 to
 * 8e-4; t-recurrent's deliberately large weights: 8e-3, bound 1e-2). The
 * copy is of the parameters at the call: call again after they change.
 * Same bits on every machine (AVX2 + F16C, or plain C: rec_half_simd()). */
void rec_use_half(struct rec *r);
int rec_half_simd(void);

/* Snapshots: init allocates one for r's model (exits on no memory); save
 * copies stream b into it; restore puts it back into stream b (any b of a
 * rec of the same model), logits included, so the stream continues
 * exactly as it would have from the save. */
void rec_snapshot_init(struct rec_snapshot *s, const struct rec *r);
void rec_snapshot_free(struct rec_snapshot *s);
void rec_save(const struct rec *r, int b, struct rec_snapshot *s);
void rec_restore(struct rec *r, int b, const struct rec_snapshot *s);

#endif
