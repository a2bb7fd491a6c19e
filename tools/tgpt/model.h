/* model.h: the TrafficGPT model core shared by tgpt-train and tgpt-infer: a
 * decoder with local softmax and causal linear attention heads, reversible or
 * plain residual blocks (after lucidrains/linear-attention-transformer, paper
 * section 2), llm.c-style contiguous buffers, cross-entropy loss and AdamW.
 *
 * tokens -> wte[tok] + pos(t) (E) -> [Linear E->D] -> L x {
 *     F = LayerNorm -> token shift -> attention (the first n_local heads local
 *         softmax over blocks, the rest causal linear) -> out projection,
 *     G = LayerNorm -> token shift -> Linear D->F, GELU (or GELU(a) * b), Linear F->D;
 *     plain: x += F(x); x += G(x)
 *     reversible: x1 = x2 = x; y1 = x1 + F(x2); y2 = x2 + G(y1); out (y1 + y2) / 2 }
 *   -> [Linear D->E] -> LayerNorm -> Linear E->V (logits).
 *
 * Dropout (training only, off unless set in struct model's drop): on the
 * attention output before its projection, and on each block's output before
 * it joins the residual stream. Its masks are a hash of where they apply,
 * so every pass stays deterministic, and for a given input the same bits
 * come out for any thread count (see parallel.h). */
#ifndef TGPT_MODEL_H
#define TGPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

enum model_pos { POS_AXIAL = 0, POS_LEARNED = 1 };

/* Every size of the model. The presets below fill one in; change fields
 * after, then model_config_check(). */
struct model_config {
	int vocab;        /* token ids [0, vocab) */
	int pad_id;       /* targets equal to it are left out of the loss (259) */
	int max_ctx;      /* longest sequence T the position table covers */
	int emb_dim;      /* E: embedding width */
	int d_model;      /* D: residual width; E<->D projections when they differ */
	int n_layer;      /* L */
	int n_head;       /* H heads per layer; the first n_local are local */
	int n_local;
	int d_head;       /* dh */
	int window;       /* W: local attention block (sees its own and the previous) */
	int chunk;        /* C: chunk of the chunked linear attention */
	int d_ff;         /* F: feed-forward hidden width */
	int ff_glu;       /* 1: GELU(a) * b with a first layer of 2F */
	int pos;          /* enum model_pos */
	int axial_w;      /* axial: pos(t) = A[t / axial_w] + B[t % axial_w] */
	int token_shift;  /* first half of the channels from the previous token */
	int reversible;   /* two-stream reversible blocks, recomputed in backward */
	int qkv_bias;
	int head_bias;
	float init_std;   /* linear weights ~ N(0, init_std); biases 0 */
	float emb_std;    /* token embedding ~ N(0, emb_std) */
	float pos_std;    /* position tables ~ N(0, pos_std) */
	float ln_eps;     /* LayerNorm epsilon (1e-5) */
	float lin_eps;    /* clamp of the linear attention denominator (1e-3) */
};

/* Presets. paper: section 2 (24 layers, D 512, 12 heads of 256 of which 8
 * local, window 256, E 256, axial, T 12,032, reversible, shift; GELU FFN
 * 2048, which is what lucidrains v0.19.1 builds whatever ff_glu says (set
 * ff_glu for the paper's GLU); embeddings N(0,1) as lucidrains; 201.9M
 * parameters). small: trains usefully on 2 cores (4 layers, D 256, 4 heads
 * of 64 of which 2 local, E 128, T 3,072). tiny: for tests (2 layers, D 32,
 * T 64). bench: the PyTorch peer's shape (peers/torch_lingpt.py: D = E 256,
 * 4 layers, 4 linear heads of 64, learned positions, vocabulary 300, qkv
 * bias, no shift, plain residual, head without bias). */
struct model_config model_config_paper(void);
struct model_config model_config_small(void);
struct model_config model_config_tiny(void);
struct model_config model_config_bench(void);
/* By name ("paper", "small", "tiny", "bench"); 0, or -1 for an unknown name. */
int model_config_preset(const char *name, struct model_config *c);
/* NULL if the config is usable, else what is wrong with it. */
const char *model_config_check(const struct model_config *c);

/* The parameter tensors, in buffer order. Per-layer tensors hold all L
 * layers back to back. A tensor absent from a config has count 0. */
enum {
	P_WTE, P_POS_A, P_POS_B, P_W_IN, P_B_IN,
	P_LN1_G, P_LN1_B, P_W_QKV, P_B_QKV, P_W_O, P_B_O,
	P_LN2_G, P_LN2_B, P_W_1, P_B_1, P_W_2, P_B_2,
	P_W_OUT, P_B_OUT, P_LNF_G, P_LNF_B, P_W_HEAD, P_B_HEAD,
	P_COUNT
};

struct model_params {
	float *wte;             /* (V,E) */
	float *pos_a;           /* axial (ceil(max_ctx/axial_w), E); learned (max_ctx, E) */
	float *pos_b;           /* axial (axial_w, E); learned none */
	float *w_in, *b_in;     /* (D,E), (D): none when E == D */
	float *ln1_g, *ln1_b;   /* (L,D) */
	float *w_qkv, *b_qkv;   /* (L,3*H*dh,D), (L,3*H*dh) or none */
	float *w_o, *b_o;       /* (L,D,H*dh), (L,D) */
	float *ln2_g, *ln2_b;   /* (L,D) */
	float *w_1, *b_1;       /* (L,F1,D), (L,F1); F1 = F, or 2F with GLU */
	float *w_2, *b_2;       /* (L,D,F), (L,D) */
	float *w_out, *b_out;   /* (E,D), (E): none when E == D */
	float *lnf_g, *lnf_b;   /* (E) */
	float *w_head, *b_head; /* (V,E), (V) or none */
};

struct model_tensor {
	const char *name;
	size_t offset, count;   /* in floats, inside the parameter buffer */
	int decay;              /* AdamW weight decay applies (linear weights) */
};

/* Activations for (B,T), N = B*T; Ls = L layers (plain) or 1 (reversible,
 * whose backward recomputes one layer at a time). */
struct model_acts {
	float *emb;                  /* (N,E) embedding + position */
	float *x;                    /* plain (2L+1,N,D) residual stream at each block
	                                boundary; reversible (2,N,D) the two streams */
	float *xs;                   /* reversible with keep_streams: (L,2,N,D) */
	float *ln1_mean, *ln1_rstd;  /* (Ls,N) */
	float *qkv;                  /* (Ls,N,3*H*dh) */
	float *att;                  /* (Ls,N,H*dh) attention output */
	float *att_stat;             /* (Ls,N,H) lse (local) or denominator (linear) */
	float *ln2_mean, *ln2_rstd;  /* (Ls,N) */
	float *ff_u;                 /* (Ls,N,F1) GLU: the FFN pre-activation;
	                                GELU (F1 = F): GELU' at the pre-activation */
	float *ff_g;                 /* (Ls,N,F) FFN activation (W2's input) */
	float *xf;                   /* (N,D) stack output */
	float *e;                    /* (N,E) after the out projection (none if E == D) */
	float *lnf_mean, *lnf_rstd;  /* (N) */
	float *hf;                   /* (N,E) final LayerNorm output */
	float *logits;               /* (N,V) */
	float *lse;                  /* (N) */
	/* scratch, reused by every layer */
	float *h, *hs, *dhs;         /* (N,D) LayerNorm out, shifted, its gradient */
	float *big_g;                /* (N,max(F,H*dh)) d FFN activation / d attention out */
	float *big_u;                /* (N,max(F1,3*H*dh)) d FFN pre-act / d qkv */
	float *dx1, *dx2;            /* (N,D) gradients of the residual stream(s) */
	float *dlogits;              /* (N,V) */
	float *dhf, *de, *demb;      /* (N,E) */
	float *attn_scratch;         /* max(local, linear) attention scratch */
};

/* Dropout rates and where a pass is, which with the layer, the site and the
 * element index make its masks (layers.h, dropout_forward): a trainer sets
 * them before each training forward, a new pass for each micro-batch, and
 * leaves them until its backward; rates of 0 (the default, and inference)
 * take the path without dropout, bit for bit. */
struct model_dropout {
	float attn;       /* attention output (N,H*dh), before the out projection */
	float resid;      /* each block's output (N,D), before it joins the residual */
	uint64_t seed;
	uint64_t pass;    /* which forward: a new mask for each micro-batch */
	uint64_t row0;    /* the index of the batch's first row in the whole batch
	                     (a data-parallel rank's share), so the masks are the
	                     one-process run's */
};

struct model {
	struct model_config c;
	struct model_tensor tensors[P_COUNT];
	size_t n_params;
	float *params_mem, *grads_mem;   /* n_params each, same layout */
	float *adam_m, *adam_v;          /* allocated by the first update */
	struct model_params params, grads;

	/* activations, allocated by the first forward, grown when needed */
	int B, T;                        /* shape of the last forward */
	size_t cap_N;                    /* capacity: tokens (B*T) ... */
	int cap_T;                       /* ... and sequence length */
	int attn_slots;                  /* attention scratch slots (threads) */
	size_t n_acts;
	float *acts_mem;
	struct model_acts acts;
	int *tokens, *targets;           /* copies for the backward (cap_N each) */
	int has_targets;
	float loss;
	int n_valid;                     /* targets that count in the loss; the
	                                    backward divides by it (a data-parallel
	                                    trainer sets all the ranks' count) */
	/* Test hook, set before the first forward: the reversible forward keeps
	 * every layer's input streams and the backward uses them instead of
	 * rebuilding them by subtraction (same gradients, more memory). */
	int keep_streams;
	struct model_dropout drop;
};

/* Allocates the parameters (and gradients) and initialises them from seed.
 * Returns -1 if the config fails model_config_check(). Exits with EX_OSERR
 * when memory runs out. */
int model_init(struct model *m, const struct model_config *c, uint64_t seed);
void model_free(struct model *m);

/* Threads for BLIS and for the OpenMP loops (call it first: BLIS alone
 * defaults to 1). Results do not depend on the count. */
void model_set_threads(int n);

/* tokens, targets (B,T) ids; targets NULL computes logits only (returns -1).
 * Returns the mean cross-entropy over targets != pad_id (0 when none count).
 * T <= max_ctx; any T works (a last partial window or chunk is fine).
 * Activations are allocated by the first call and grown when a later one is
 * larger. Exits with EX_DATAERR on a token or target outside [0, vocab). */
float model_forward(struct model *m, const int *tokens, const int *targets, int B, int T);
/* Backpropagates the last forward's loss; ADDS into the gradients (zero
 * them first, or accumulate over micro-batches). Once per forward: the
 * reversible backward consumes the stored streams. */
void model_backward(struct model *m);
void model_zero_grad(struct model *m);
/* (B,T,V) logits of the last forward. */
const float *model_logits(const struct model *m);

/* Global gradient norm (in double); scales the gradients down to max_norm
 * when it is larger and max_norm > 0. Returns the norm before clipping. */
float model_clip_grad(struct model *m, float max_norm);
/* AdamW step (step counts from 1); weight decay on linear weights only. */
void model_adamw_update(struct model *m, float lr, float beta1, float beta2, float eps,
	float weight_decay, int step);

size_t model_num_params(const struct model *m);
/* The same without allocating (0 for an invalid config). */
size_t model_config_num_params(const struct model_config *c);
/* Bytes the activations take for (B,T) (what the first forward allocates). */
size_t model_acts_bytes(const struct model *m, int B, int T);

#endif
