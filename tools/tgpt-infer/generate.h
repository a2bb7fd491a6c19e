/* generate.h: flow generation with the recurrent tgpt model (recurrent.h):
 * top-k and temperature sampling from a seeded generator, logits masked to
 * what the tokenizer allows where the flow is (record.h: START, link type,
 * 8 time tokens, bytes; END closes the flow), and every generated packet
 * checked as it completes (pkt_validate, packet.h); a packet that fails is
 * rewound to its START and sampled again (paper section 1: "dropped, and
 * generation restarts at that packet's Start token").
 *
 * Masking: CLS, PAD and ids past the tokenizer's 260 are never sampled; the
 * link-type slot and the 8 time slots take bytes only; START and END only
 * where a packet can end (after its fixed fields and at least one byte);
 * only START where no packet is open (after a bare label); only START or
 * END once a packet holds max_packet bytes.
 *
 * Checking: a packet is judged when the START or END after it is sampled,
 * if it holds any generated token (packets wholly inside the prompt are
 * real data and left alone). It fails on a link-type escape (255) with no
 * escape_linktype set, a time interval that is not a finite number, or
 * pkt_validate(linktype, bytes, n, n) (and, where a prompt packet was
 * continued, fixed fields cut short or a special token). A failed packet restores the state
 * saved at its START (or at the prompt's end, when its START is in the
 * prompt) and is sampled again, at most max_retries times; after that the
 * flow ends: the packet is dropped (the flow cut at its START, so a prompt
 * packet it continued goes too) and END appended. The same happens to the
 * open packet, if it fails, when a flow reaches max_len. Every flow thus
 * ends with END and holds only packets that passed (or came whole from
 * the prompt). The check is strict: a frame that is not IP, or a packet
 * of another flow than the flow's first (pkt_validate_flow), fails.
 *
 * With o.grammar (tgpt-infer generate's default; grammar.h), each stream
 * follows its flow's decoding grammar instead: forced tokens are fed
 * without sampling, sampled ones drawn under its masks, checksums left
 * open are re-fed from the state saved before them (the stream's
 * snapshot), and packets need no rewinds: every one is valid by
 * construction (the check still runs; a failure, a grammar bug, ends the
 * flow). A flow the grammar cannot continue (a prompt it cannot make)
 * ends cleanly, its open packet dropped. Generated first packets do not
 * take another flow's addresses and ports (gram_cfg.taken): a flow's key
 * byte waits until every flow before it in the run has its key, so flows
 * still depend only on the seed and their index. */
#ifndef TGPT_GENERATE_H
#define TGPT_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "../tgpt/model.h"
#include "../tgpt/recurrent.h"

/* ------------------------------------------------------------------ sampler */

/* Flows draw from splitmix64 (hash.h). The seed of flow i of a run is
 * gen_rng_seed(seed, i), so a flow's tokens depend on the seed and its
 * index, not on how many streams ran beside it. */
uint64_t gen_rng_seed(uint64_t seed, uint64_t index);

struct gen_sampler {
	int vocab, top_k;
	float temperature;
	int *idx;		/* (vocab) the kept ids, best first */
	float *val;		/* (vocab) their logits */
};

/* top_k <= 0 or >= vocab keeps every id; temperature <= 0 (or top_k 1)
 * samples greedily. Exits with EX_OSERR when memory runs out. */
void gen_sampler_init(struct gen_sampler *s, int vocab, int top_k, float temperature);
void gen_sampler_free(struct gen_sampler *s);
/* One id from logits (vocab): among the ids with allowed[id] != 0 (allowed
 * NULL: all), NaN and -inf logits never, the top_k largest (ties: the lower
 * id), drawn with probability proportional to exp(logit / temperature);
 * greedy picks the largest (the lowest id among equals). Returns -1 when
 * nothing may be drawn. */
int gen_sample(struct gen_sampler *s, const float *logits, const unsigned char *allowed,
	uint64_t *rng);

/* ------------------------------------------------------------------ packet check */

/* Judges one packet: tok[0..n) are the tokens after its START (link type,
 * 8 time tokens, bytes); first (first_len bytes) the flow's first packet,
 * NULL for the first itself. buf: room for n bytes. Returns 1 when valid,
 * else 0 with *why a static phrase (see the header comment). */
int gen_check_packet(const int *tok, size_t n, uint32_t escape_linktype, uint8_t *buf,
	const uint8_t *first, size_t first_len, const char **why);

/* ------------------------------------------------------------------ generation */

struct gen_opts {
	int top_k;		/* 26: lucidrains' filter_thres 0.9 of 260; <= 0: all */
	float temperature;	/* 1; <= 0: greedy */
	uint64_t seed;		/* 1 */
	size_t max_len;		/* tokens of a flow, prompt and END included (12032) */
	int max_retries;	/* resamplings of one packet before the flow ends (8) */
	int check;		/* judge packets (1); 0 only masks */
	uint32_t escape_linktype; /* link type of token 255 (0: such packets fail) */
	size_t max_packet;	/* bytes of one packet (65599: an IP datagram, link header) */
	/* Called before masking and sampling with a copy of a flow's logits,
	 * which it may change (steering; tests force tokens with it); seq, n:
	 * the flow so far, prompt included. NULL: none. */
	void (*hook)(void *user, int flow, const int *seq, size_t n, float *logits);
	void *hook_user;
	int grammar;		/* follow the decoding grammar (grammar.h); 0: raw sampling */
	int link_token;		/* grammar: every packet's link-type token, or -1 */
	double idle_timeout;	/* grammar: longest interval, pcap2flow's -t (120 s) */
};

void gen_opts_default(struct gen_opts *o);

enum gen_stop {
	GEN_STOP_END,		/* END sampled (or in the prompt) */
	GEN_STOP_LENGTH,	/* max_len reached; END appended */
	GEN_STOP_RETRIES,	/* a packet failed max_retries + 1 times; dropped, END appended */
	GEN_STOP_STUCK,		/* the mask and the logits left nothing to draw (NaN logits) */
	GEN_STOP_GRAMMAR,	/* the grammar could not continue it (a prompt it cannot make) */
	GEN_N_STOPS
};

/* One generated flow: the prompt (START added when it was empty) followed
 * by what was sampled, ending with END. */
struct gen_flow {
	int *tok;
	size_t n, cap;
	size_t prompt_len;
	enum gen_stop stop;
	long packets;		/* generated packets kept */
	long rewinds;		/* packets rejected and sampled again */
};
void gen_flow_free(struct gen_flow *f);

#define GEN_MAX_REASONS 32
struct gen_stats {
	long flows, tokens;	/* tokens: sampled and kept (rewound ones not counted) */
	long sampled;		/* every token sampled, rewound ones included */
	long packets;		/* generated packets that passed */
	long rewinds;		/* packets that failed and were sampled again */
	long dropped;		/* packets that failed for good */
	long forced;		/* grammar: tokens forced rather than sampled */
	long patched;		/* grammar: checksums re-fed (C) */
	long refed;		/* grammar: tokens fed again for them */
	int n_reasons;		/* failures by reason (the last row collects overflow) */
	struct {
		const char *why;
		long count;
	} reasons[GEN_MAX_REASONS];
};

struct gen_slot;

struct gen {
	const struct model *m;
	struct gen_opts o;
	struct rec rec;		/* one stream per slot */
	struct gen_sampler sampler;
	struct gen_stats stats;	/* summed over gen_run calls */
	struct gen_slot *slots;
	int *step_tok;		/* (streams) */
	float *logits;		/* (vocab) the hook's copy */
	unsigned char *masks;	/* (4, vocab) the masks of gen_mask_for */
	uint8_t *bytes;		/* (max_packet + 9) packet check buffer */
	unsigned char *gmask;	/* (vocab) the grammar's mask, 0 past its 258 ids */
	struct gen_keys *keys;	/* grammar: the run's flow keys (generate.c) */
};

/* streams: flows generated side by side (the rec batch). Returns -1 for
 * streams < 1. Exits with EX_OSERR when memory runs out. */
int gen_init(struct gen *g, const struct model *m, int streams, const struct gen_opts *o);
void gen_free(struct gen *g);

/* Generates n flows: flows[i] continues prompts[i] (plens[i] tokens; NULL
 * or 0: a bare START; a class label is just a prompt token before START).
 * The prompt is fed whole; an END in it ends the flow there. flows[] are
 * filled (free with gen_flow_free); g->stats accumulates. Prompt tokens
 * outside [0, vocab) exit with EX_DATAERR (rec_step). */
void gen_run(struct gen *g, const int *const *prompts, const size_t *plens, struct gen_flow *flows,
	int n);

#endif
