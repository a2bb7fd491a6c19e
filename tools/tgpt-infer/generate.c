/* generate.c: flows from the recurrent tgpt model (generate.h): the top-k
 * sampler, the tokenizer's masks, the packet check and the generation loop
 * that runs several flows side by side and rewinds packets that fail. */
#include <err.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alloc.h"
#include "bytes.h"
#include "generate.h"
#include "grammar.h"
#include "hash.h"
#include "packet.h"
#include "record.h"

/* ------------------------------------------------------------------ sampler */

uint64_t gen_rng_seed(uint64_t seed, uint64_t index)
{
	uint64_t s = seed ^ (0x632be59bd9b4e019ull * (index + 1));
	return splitmix64(&s);
}

void gen_sampler_init(struct gen_sampler *s, int vocab, int top_k, float temperature)
{
	s->vocab = vocab;
	s->top_k = top_k <= 0 || top_k > vocab ? vocab : top_k;
	s->temperature = temperature;
	s->idx = xcalloc(vocab, sizeof *s->idx);
	s->val = xcalloc(vocab, sizeof *s->val);
}

void gen_sampler_free(struct gen_sampler *s)
{
	free(s->idx);
	free(s->val);
	memset(s, 0, sizeof *s);
}

/* The k largest allowed finite-or-+inf logits, best first, into s->idx and
 * s->val (insertion into a sorted list: after the first few ids almost
 * every logit fails the comparison with the smallest kept one). Returns
 * how many were kept. */
static int top_k_select(struct gen_sampler *s, const float *logits, const unsigned char *allowed,
	int k)
{
	int cnt = 0;
	for (int v = 0; v < s->vocab; v++) {
		float x = logits[v];
		if ((allowed && !allowed[v]) || x != x || x == -INFINITY)
			continue;
		if (cnt == k && !(x > s->val[k - 1]))
			continue;	/* equal to the last kept: the lower id stays */
		int j = cnt < k ? cnt++ : k - 1;
		for (; j > 0 && s->val[j - 1] < x; j--) {
			s->val[j] = s->val[j - 1];
			s->idx[j] = s->idx[j - 1];
		}
		s->val[j] = x;
		s->idx[j] = v;
	}
	return cnt;
}

int gen_sample(struct gen_sampler *s, const float *logits, const unsigned char *allowed,
	uint64_t *rng)
{
	int greedy = !(s->temperature > 0.0f) || s->top_k == 1;
	int cnt = top_k_select(s, logits, allowed, greedy ? 1 : s->top_k);
	if (cnt == 0)
		return -1;
	if (greedy || cnt == 1 || s->val[0] == INFINITY)
		return s->idx[0];
	/* weights relative to the largest, so the exponentials cannot overflow */
	double sum = 0.0, top = s->val[0], inv_t = 1.0 / s->temperature;
	for (int j = 0; j < cnt; j++) {
		double w = exp((s->val[j] - top) * inv_t);
		s->val[j] = (float)w;
		sum += w;
	}
	double u = (splitmix64(rng) >> 11) * 0x1.0p-53 * sum, acc = 0.0;
	for (int j = 0; j < cnt; j++) {
		acc += s->val[j];
		if (u < acc)
			return s->idx[j];
	}
	return s->idx[cnt - 1];	/* u within rounding of the sum */
}

/* ------------------------------------------------------------------ packet check */

#define FIXED_FIELDS 9	/* link type and 8 time tokens after START */

int gen_check_packet(const int *tok, size_t n, uint32_t escape_linktype, uint8_t *buf,
	const uint8_t *first, size_t first_len, const char **why)
{
	if (n < FIXED_FIELDS) {
		*why = "packet cut inside its link-type and time fields";
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (tok[i] < 0 || tok[i] > 255) {
			*why = "special token inside a packet";
			return 0;
		}
	uint32_t linktype = (uint32_t)tok[0];
	if (linktype == TOK_LINKTYPE_ESCAPE) {
		if (escape_linktype == 0) {
			*why = "link-type escape (255) with no link type given";
			return 0;
		}
		linktype = escape_linktype;
	}
	uint64_t bits = 0;	/* big-endian IEEE-754 float64 seconds */
	for (int i = 1; i < FIXED_FIELDS; i++)
		bits = bits << 8 | (uint64_t)tok[i];
	double dt;
	memcpy(&dt, &bits, sizeof dt);
	if (!isfinite(dt) || fabs(dt) > TOK_MAX_INTERVAL_S) {
		*why = "time interval not a finite number of at most 2^32 s";
		return 0;
	}
	size_t len = n - FIXED_FIELDS;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)tok[FIXED_FIELDS + i];
	return pkt_validate_flow(linktype, buf, len, (uint32_t)len, first, first_len, why);
}

/* ------------------------------------------------------------------ setup */

void gen_opts_default(struct gen_opts *o)
{
	*o = (struct gen_opts){
		.top_k = 26, .temperature = 1.0f, .seed = 1, .max_len = 12032, .max_retries = 8,
		.check = 1, .escape_linktype = 0, .max_packet = 65535 + 64, .link_token = -1,
		.idle_timeout = 120.0,
	};
}

/* What one stream is doing. */
struct gen_slot {
	int flow;		/* index into gen_run's flows; -1: idle */
	size_t fed;		/* tokens of the flow fed to the stream */
	long open;		/* index of the open packet's START; -1: none */
	size_t rewind_n;	/* flow length the snapshot holds */
	int retries;		/* of the open packet */
	uint64_t rng;
	struct rec_snapshot snap;	/* raw: at the open packet; grammar: before a checksum */
	uint8_t *first;		/* the flow's first packet, once closed (first_len bytes) */
	size_t first_len;
	struct gram gram;	/* grammar mode: the flow's grammar */
	int keyed;		/* grammar: its key is in the run's keys */
};

/* Grammar mode: the flow keys of the run (every flow's two endpoints, an
 * open-addressing set), and which flows of the gen_run call have theirs
 * (or ended without): a flow's key byte waits for every flow before it. */
struct gen_keys {
	struct gram_endpoint *e;
	size_t n, slots;	/* endpoints; slots of the index (a power of two) */
	uint32_t *index;	/* endpoint + 1 per slot, 0 empty */
	char *resolved;		/* per flow of the current gen_run */
	int flows, lowest;	/* its flows; the lowest one not resolved */
};

/* The masks (generate.h), one vocab row each. */
enum { MASK_START, MASK_BYTES, MASK_ANY, MASK_CLOSE, N_MASKS };

static void fill_masks(unsigned char *masks, int V)
{
	memset(masks, 0, (size_t)N_MASKS * V);
	int bytes = V < 256 ? V : 256;
	for (int i = 0; i < N_MASKS; i++) {
		unsigned char *m = masks + (size_t)i * V;
		if (i == MASK_BYTES || i == MASK_ANY)
			memset(m, 1, bytes);
		m[TOK_START] = i != MASK_BYTES;
		m[TOK_END] = i == MASK_ANY || i == MASK_CLOSE;
	}
}

/* ------------------------------------------------------------------ flow keys */

static uint64_t endpoint_hash(const struct gram_endpoint *e)
{
	uint64_t w[sizeof *e / 8 + 1] = { 0 };
	memcpy(w, e, sizeof *e);
	return hash_words(w, sizeof w / sizeof w[0]);
}

static int keys_find(const struct gen_keys *k, const struct gram_endpoint *e, size_t *slot)
{
	size_t i = endpoint_hash(e) & (k->slots - 1);
	for (; k->index[i]; i = (i + 1) & (k->slots - 1))
		if (!memcmp(&k->e[k->index[i] - 1], e, sizeof *e))
			break;
	*slot = i;
	return k->index[i] != 0;
}

/* gram_cfg.taken */
static int key_taken(void *user, const struct gram_endpoint *e)
{
	size_t slot;
	return keys_find(user, e, &slot);
}

static void keys_add(struct gen_keys *k, const struct gram_endpoint *e)
{
	size_t slot;
	if (keys_find(k, e, &slot))
		return;
	if (2 * (k->n + 1) > k->slots) {	/* grow: at most half full */
		free(k->index);
		k->slots *= 2;
		k->index = xcalloc(k->slots, sizeof *k->index);
		for (size_t i = 0; i < k->n; i++) {
			keys_find(k, &k->e[i], &slot);
			k->index[slot] = (uint32_t)i + 1;
		}
		keys_find(k, e, &slot);
	}
	if ((k->n & (k->n - 1)) == 0)	/* 0, 1, 2, 4, ...: double the array */
		k->e = xrealloc(k->e, (k->n ? 2 * k->n : 1) * sizeof *k->e);
	k->e[k->n] = *e;
	k->index[slot] = (uint32_t)++k->n;
}

/* Flow i of the gen_run call has its key (or will have none). */
static void keys_resolve(struct gen_keys *k, int i)
{
	k->resolved[i] = 1;
	while (k->lowest < k->flows && k->resolved[k->lowest])
		k->lowest++;
}

/* Grammar mode: after the token fed to stream s, its flow's key, once the
 * first packet is whole, goes into the run's keys. */
static void register_key(struct gen *g, struct gen_slot *s)
{
	struct gram_endpoint e[2];
	if (s->keyed || !gram_flow_key(&s->gram, e))
		return;
	keys_add(g->keys, &e[0]);
	keys_add(g->keys, &e[1]);
	s->keyed = 1;
	keys_resolve(g->keys, s->flow);
}

static void grammar_init(struct gen *g, int streams)
{
	struct gram_cfg c;
	gram_cfg_default(&c);
	c.link_token = g->o.link_token;
	c.escape_linktype = g->o.escape_linktype;
	c.max_tokens = g->o.max_len;
	c.max_frame = g->o.max_packet;
	c.max_interval = g->o.idle_timeout;
	g->keys = xcalloc(1, sizeof *g->keys);
	g->keys->slots = 1024;
	g->keys->index = xcalloc(g->keys->slots, sizeof *g->keys->index);
	c.taken = key_taken;
	c.taken_user = g->keys;
	for (int b = 0; b < streams; b++)
		gram_init(&g->slots[b].gram, &c);
	g->gmask = xcalloc(g->m->c.vocab, 1);
}

static void grammar_free(struct gen *g)
{
	if (!g->keys)
		return;
	for (int b = 0; b < g->rec.B; b++)
		gram_free(&g->slots[b].gram);
	free(g->keys->e);
	free(g->keys->index);
	free(g->keys->resolved);
	free(g->keys);
	free(g->gmask);
}

int gen_init(struct gen *g, const struct model *m, int streams, const struct gen_opts *o)
{
	memset(g, 0, sizeof *g);
	if (streams < 1 || m->c.vocab <= TOK_END)
		return -1;
	g->m = m;
	g->o = *o;
	if (g->o.max_packet < 1)
		g->o.max_packet = 1;
	rec_init(&g->rec, m, streams);
	gen_sampler_init(&g->sampler, m->c.vocab, o->top_k, o->temperature);
	g->slots = xcalloc(streams, sizeof *g->slots);
	for (int b = 0; b < streams; b++) {
		g->slots[b].flow = -1;
		rec_snapshot_init(&g->slots[b].snap, &g->rec);
		g->slots[b].first = xcalloc(g->o.max_packet, 1);
	}
	g->step_tok = xcalloc(streams, sizeof *g->step_tok);
	g->logits = xcalloc(m->c.vocab, sizeof *g->logits);
	g->masks = xcalloc((size_t)N_MASKS * m->c.vocab, 1);
	fill_masks(g->masks, m->c.vocab);
	g->bytes = xcalloc(g->o.max_packet + FIXED_FIELDS, 1);
	if (g->o.grammar)
		grammar_init(g, streams);
	return 0;
}

void gen_free(struct gen *g)
{
	grammar_free(g);
	for (int b = 0; b < g->rec.B; b++) {
		rec_snapshot_free(&g->slots[b].snap);
		free(g->slots[b].first);
	}
	rec_free(&g->rec);
	gen_sampler_free(&g->sampler);
	free(g->slots);
	free(g->step_tok);
	free(g->logits);
	free(g->masks);
	free(g->bytes);
	memset(g, 0, sizeof *g);
}

void gen_flow_free(struct gen_flow *f)
{
	free(f->tok);
	memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------ flows */

static void flow_push(struct gen_flow *f, int tok)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 1024;
		int *p = realloc(f->tok, cap * sizeof *p);
		if (!p)
			err(EX_OSERR, "generate: %zu tokens", cap);
		f->tok = p;
		f->cap = cap;
	}
	f->tok[f->n++] = tok;
}

/* One more failure for reason why; past GEN_MAX_REASONS - 1 reasons the
 * last row counts all the others. */
static void tally(struct gen_stats *st, const char *why)
{
	int i = 0;
	while (i < st->n_reasons && strcmp(st->reasons[i].why, why) != 0)
		i++;
	if (i == st->n_reasons) {
		if (i == GEN_MAX_REASONS)
			i--;
		else
			st->n_reasons++;
		if (i == GEN_MAX_REASONS - 1)
			why = "other reasons";
		st->reasons[i].why = why;
	}
	st->reasons[i].count++;
}

/* Whether the open packet holds generated tokens (else it came whole from
 * the prompt and is not judged). */
static int packet_generated(const struct gen_slot *s, const struct gen_flow *f)
{
	return s->open >= 0 && f->n > s->rewind_n;
}

/* The flow's first packet's bytes (into s->first, at most max of them),
 * or NULL when the open packet is the first. */
static const uint8_t *first_packet(struct gen_slot *s, const struct gen_flow *f, size_t max,
	size_t *len)
{
	size_t i = 0;
	while (i < f->n && f->tok[i] != TOK_START)
		i++;	/* labels before the flow */
	if ((long)i >= s->open)
		return NULL;
	if (!s->first_len) {
		size_t n = 0;
		for (size_t k = i + 1 + FIXED_FIELDS; k < f->n && f->tok[k] < 256 && n < max; k++)
			s->first[n++] = (uint8_t)f->tok[k];
		s->first_len = n;
	}
	*len = s->first_len;
	return s->first;
}

/* Judges the open packet (1: keep); failures are tallied. */
static int packet_passes(struct gen *g, struct gen_slot *s, const struct gen_flow *f)
{
	const int *p = f->tok + s->open + 1;
	size_t n = f->n - (size_t)s->open - 1, first_len = 0;
	const uint8_t *first = first_packet(s, f, g->o.max_packet, &first_len);
	const char *why;
	if (n > g->o.max_packet + FIXED_FIELDS) {	/* a prompt's packet ran on */
		why = "packet longer than max_packet";
	} else if (!g->o.check) {
		if (n > FIXED_FIELDS)
			return 1;	/* unchecked, but a packet at all */
		why = "packet cut before its first byte";
	} else if (gen_check_packet(p, n, g->o.escape_linktype, g->bytes, first, first_len, &why)) {
		return 1;
	}
	tally(&g->stats, why);
	return 0;
}

static void start_flow(struct gen *g, int b, int i, const int *prompt, size_t plen,
	struct gen_flow *f)
{
	struct gen_slot *s = &g->slots[b];
	memset(f, 0, sizeof *f);
	if (plen == 0)
		flow_push(f, TOK_START);
	for (size_t k = 0; k < plen; k++) {
		flow_push(f, prompt[k]);
		if (prompt[k] == TOK_END)
			break;	/* the flow is complete */
	}
	f->prompt_len = f->n;
	s->flow = i;
	s->fed = 0;
	s->open = -1;
	s->rewind_n = 0;
	s->retries = 0;
	s->first_len = 0;
	s->rng = gen_rng_seed(g->o.seed, (uint64_t)i);
	rec_reset(&g->rec, b);
	if (g->o.grammar) {
		gram_reset(&s->gram);
		s->keyed = 0;
	}
}

static void finish_flow(struct gen *g, struct gen_slot *s, struct gen_flow *f, enum gen_stop why)
{
	if (f->n == 0 || f->tok[f->n - 1] != TOK_END)
		flow_push(f, TOK_END);
	f->stop = why;
	g->stats.flows++;
	g->stats.tokens += (long)(f->n - f->prompt_len);
	if (g->keys && !s->keyed)
		keys_resolve(g->keys, s->flow);	/* it will have no key */
	s->flow = -1;
}

/* Drops the open packet that failed for good: back to its START, or, when
 * the packet began in the prompt, to the prompt's end (the prompt's tokens
 * are real and stay, even if the model's continuation of them did not). */
static void drop_open_packet(struct gen *g, const struct gen_slot *s, struct gen_flow *f)
{
	f->n = (size_t)s->open < f->prompt_len ? f->prompt_len : (size_t)s->open;
	g->stats.dropped++;
}

/* The flow reached max_len: its open packet stays if it passes. */
static void finish_at_limit(struct gen *g, struct gen_slot *s, struct gen_flow *f)
{
	if (packet_generated(s, f)) {
		if (packet_passes(g, s, f)) {
			f->packets++;
			g->stats.packets++;
		} else {
			drop_open_packet(g, s, f);
		}
	}
	finish_flow(g, s, f, GEN_STOP_LENGTH);
}

static const unsigned char *mask_for(const struct gen *g, const struct gen_slot *s,
	const struct gen_flow *f)
{
	int V = g->m->c.vocab, which;
	if (s->open < 0) {
		which = MASK_START;
	} else {
		size_t k = f->n - (size_t)s->open - 1;	/* tokens after START */
		if (k <= FIXED_FIELDS)
			which = MASK_BYTES;
		else
			which = k - FIXED_FIELDS >= g->o.max_packet ? MASK_CLOSE : MASK_ANY;
	}
	return g->masks + (size_t)which * V;
}

/* A packet just closed by tok (START or END): 1 to go on, 0 when it was
 * rewound or the flow ended. */
static int close_packet(struct gen *g, int b, struct gen_flow *f)
{
	struct gen_slot *s = &g->slots[b];
	if (!packet_generated(s, f))
		return 1;
	if (packet_passes(g, s, f)) {
		f->packets++;
		g->stats.packets++;
		s->retries = 0;
		return 1;
	}
	if (s->retries >= g->o.max_retries) {
		drop_open_packet(g, s, f);
		finish_flow(g, s, f, GEN_STOP_RETRIES);
		return 0;
	}
	s->retries++;
	f->rewinds++;
	g->stats.rewinds++;
	rec_restore(&g->rec, b, &s->snap);
	f->n = s->fed = s->rewind_n;
	return 0;
}

/* ------------------------------------------------------------------ grammar mode */

/* Grammar mode: the flow ends where the grammar or the sampler cannot go
 * on; a packet left open (inside) goes. */
static void grammar_end(struct gen *g, struct gen_slot *s, struct gen_flow *f, int inside,
	enum gen_stop why)
{
	if (inside && s->open >= 0) {
		f->n = (size_t)s->open;
		g->stats.dropped++;
	}
	finish_flow(g, s, f, why);
}

/* Grammar mode: a START or END closes the open packet, judged when it
 * holds generated tokens (a failure is the grammar's bug: the packet goes,
 * the flow ends). Returns 1 to go on. */
static int grammar_close(struct gen *g, struct gen_slot *s, struct gen_flow *f)
{
	if (s->open < 0 || f->n <= f->prompt_len)
		return 1;
	if (packet_passes(g, s, f)) {
		f->packets++;
		g->stats.packets++;
		return 1;
	}
	grammar_end(g, s, f, 1, GEN_STOP_GRAMMAR);
	return 0;
}

/* Grammar mode: the token stream b feeds next, or -1 (the flow ended, or
 * it waits for the flows before it to have their keys). */
static int grammar_token(struct gen *g, int b, struct gen_flow *f)
{
	struct gen_slot *s = &g->slots[b];
	struct gram *gm = &s->gram;
	if (s->fed < f->n) {	/* the prompt, or tokens fed again after a checksum */
		if (s->fed == gram_tokens(gm) && gram_next(gm, g->gmask, 1).save)
			rec_save(&g->rec, b, &s->snap);
		return f->tok[s->fed];
	}
	if (gram_needs_keys(gm) && g->keys->lowest < s->flow)
		return -1;
	struct gram_pos p = gram_next(gm, g->gmask, 0);
	if (p.token == GRAM_STUCK || (f->n + 1 >= g->o.max_len && p.token != TOK_END)) {
		tally(&g->stats, gram_stopped(gm) ? gram_stopped(gm) : "no room left in --max-tokens");
		grammar_end(g, s, f, 1, p.token == GRAM_STUCK ? GEN_STOP_GRAMMAR : GEN_STOP_LENGTH);
		return -1;
	}
	if (p.save)
		rec_save(&g->rec, b, &s->snap);
	int tok = p.token;
	if (tok >= 0) {
		g->stats.forced++;
	} else {
		int V = g->m->c.vocab, boundary = g->gmask[TOK_START] || g->gmask[TOK_END];
		memcpy(g->logits, rec_logits(&g->rec, b), V * sizeof *g->logits);
		if (g->o.hook)
			g->o.hook(g->o.hook_user, s->flow, f->tok, f->n, g->logits);
		tok = gen_sample(&g->sampler, g->logits, g->gmask, &s->rng);
		g->stats.sampled++;
		if (tok < 0) {
			grammar_end(g, s, f, !boundary, GEN_STOP_STUCK);
			return -1;
		}
	}
	if ((tok == TOK_START || tok == TOK_END) && !grammar_close(g, s, f))
		return -1;
	flow_push(f, tok);
	if (tok == TOK_END) {
		finish_flow(g, s, f, gram_stopped(gm) ? GEN_STOP_GRAMMAR : GEN_STOP_END);
		return -1;
	}
	return tok;
}

/* Grammar mode: stream b was fed tok. A token new to the grammar is told
 * to it; a checksum it then settles is written into the flow and the
 * stream goes back to the state saved before it, to be fed again from
 * there. */
static void grammar_fed(struct gen *g, int b, int tok, struct gen_flow *f)
{
	struct gen_slot *s = &g->slots[b];
	struct gram *gm = &s->gram;
	s->fed++;
	if (s->fed <= gram_tokens(gm))
		return;	/* fed again */
	if (tok == TOK_START)
		s->open = (long)s->fed - 1;
	if (gram_feed(gm, tok, s->fed <= f->prompt_len)) {
		size_t at;
		uint8_t by[2];
		gram_patch(gm, &at, by);
		f->tok[at] = by[0];
		f->tok[at + 1] = by[1];
		rec_restore(&g->rec, b, &s->snap);
		g->stats.patched++;
		g->stats.refed += (long)(s->fed - at);
		s->fed = at;
	}
	register_key(g, s);
}

/* The token stream b feeds next, or -1 (rewound, or the flow ended). */
static int next_token(struct gen *g, int b, struct gen_flow *f)
{
	struct gen_slot *s = &g->slots[b];
	int V = g->m->c.vocab;
	if (f->tok[f->n - 1] == TOK_END) {	/* the prompt ended the flow */
		finish_flow(g, s, f, GEN_STOP_END);
		return -1;
	}
	if (g->o.grammar)
		return grammar_token(g, b, f);
	if (s->fed < f->prompt_len)
		return f->tok[s->fed];
	if (f->n + 1 >= g->o.max_len) {
		finish_at_limit(g, s, f);
		return -1;
	}
	memcpy(g->logits, rec_logits(&g->rec, b), V * sizeof *g->logits);
	if (g->o.hook)
		g->o.hook(g->o.hook_user, s->flow, f->tok, f->n, g->logits);
	int tok = gen_sample(&g->sampler, g->logits, mask_for(g, s, f), &s->rng);
	g->stats.sampled++;
	if (tok < 0) {
		finish_flow(g, s, f, GEN_STOP_STUCK);
		return -1;
	}
	if ((tok == TOK_START || tok == TOK_END) && !close_packet(g, b, f))
		return -1;
	flow_push(f, tok);
	if (tok == TOK_END) {
		finish_flow(g, s, f, GEN_STOP_END);
		return -1;
	}
	return tok;
}

/* Stream b was fed tok: a START opens a packet; the state is saved where a
 * failed packet restarts (its START, or the prompt's end inside it). */
static void after_feed(struct gen *g, int b, int tok, struct gen_flow *f)
{
	struct gen_slot *s = &g->slots[b];
	if (g->o.grammar) {
		grammar_fed(g, b, tok, f);
		return;
	}
	s->fed++;
	if (tok == TOK_START) {
		s->open = (long)s->fed - 1;
		s->retries = 0;
	}
	int generated_start = tok == TOK_START && s->fed > f->prompt_len;
	if (generated_start || (s->fed == f->prompt_len && s->open >= 0)) {
		rec_save(&g->rec, b, &s->snap);
		s->rewind_n = s->fed;
	}
}

void gen_run(struct gen *g, const int *const *prompts, const size_t *plens, struct gen_flow *flows,
	int n)
{
	int B = g->rec.B, next = 0, busy = 0;
	if (g->keys) {	/* which flows of this call have their keys */
		free(g->keys->resolved);
		g->keys->resolved = xcalloc(n, 1);
		g->keys->flows = n;
		g->keys->lowest = 0;
	}
	for (;;) {
		for (int b = 0; b < B && next < n; b++)
			if (g->slots[b].flow < 0) {
				const int *p = prompts ? prompts[next] : NULL;
				start_flow(g, b, next, p, p && plens ? plens[next] : 0, &flows[next]);
				next++;
			}
		busy = 0;
		for (int b = 0; b < B; b++) {
			struct gen_slot *s = &g->slots[b];
			g->step_tok[b] = -1;
			if (s->flow < 0)
				continue;
			busy = 1;
			g->step_tok[b] = next_token(g, b, &flows[s->flow]);
		}
		if (!busy)
			break;
		rec_step(&g->rec, g->step_tok);
		for (int b = 0; b < B; b++)
			if (g->step_tok[b] >= 0)
				after_feed(g, b, g->step_tok[b], &flows[g->slots[b].flow]);
	}
}
