/* t-generate.c: unit tests of flow generation (tools/tgpt-infer/generate.h): the
 * top-k sampler (never outside the top k, its frequencies, greedy at
 * temperature 0 or k 1, seeds), the packet check, and the generation loop
 * driven by a hook that forces the tokens (a valid flow comes out whole; a
 * corrupted packet is rewound and counted; the retry bound; prompts that end
 * inside a packet; labels; the length limit) and by a real tiny model (the
 * masks hold, greedy follows the argmax, same seed same flows, and flows do
 * not depend on how many streams ran beside them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/hash.h"
#include "../../common/record.h"
#include "../../tools/tgpt-infer/generate.h"
#include "../../tools/tgpt/model.h"
#include "../../tools/tgpt/recurrent.h"
#include "../tap.h"

/* ------------------------------------------------------------------ sampler */

static void random_logits(float *l, int V, uint64_t *rng, float spread)
{
	for (int v = 0; v < V; v++)
		l[v] = spread * (float)((splitmix64(rng) >> 11) * 0x1.0p-53 - 0.5);
}

/* Rank of id among logits: how many are larger, or equal with a lower id. */
static int rank_of(const float *l, int V, int id)
{
	int r = 0;
	for (int v = 0; v < V; v++)
		r += l[v] > l[id] || (l[v] == l[id] && v < id);
	return r;
}

static void test_top_k(void)
{
	enum { V = 260, K = 26, DRAWS = 40000 };
	float l[V];
	uint64_t rng = 99, lrng = 3;
	struct gen_sampler s;
	gen_sampler_init(&s, V, K, 1.0f);
	random_logits(l, V, &lrng, 8.0f);
	l[17] = l[200] = 10.0f;	/* a tie at the top: both are in the top k */
	int outside = 0, hist[V] = { 0 };
	for (int i = 0; i < DRAWS; i++) {
		int id = gen_sample(&s, l, NULL, &rng);
		outside += id < 0 || rank_of(l, V, id) >= K;
		hist[id < 0 ? 0 : id]++;
	}
	is_int(outside, 0, "top-k 26: no draw outside the 26 largest logits in 40000");
	/* frequencies follow the softmax over the top k */
	double z = 0.0, worst = 0.0, mx = 10.0;
	for (int v = 0; v < V; v++)
		if (rank_of(l, V, v) < K)
			z += exp(l[v] - mx);
	int reached = 0;
	for (int v = 0; v < V; v++) {
		double p = rank_of(l, V, v) < K ? exp(l[v] - mx) / z : 0.0;
		double d = fabs((double)hist[v] / DRAWS - p);
		worst = d > worst ? d : worst;
		reached += hist[v] > 0;
	}
	ok(worst < 0.01, "frequencies within 0.01 of softmax over the top k");
	if (worst >= 0.01)
		printf("#   worst deviation %.4f\n", worst);
	ok(reached > K / 2, "the draws spread over the top k");
	gen_sampler_free(&s);

	/* a mask: the best allowed ids only */
	unsigned char allowed[V];
	for (int v = 0; v < V; v++)
		allowed[v] = v % 3 == 0;
	gen_sampler_init(&s, V, 5, 2.0f);
	int bad = 0;
	for (int i = 0; i < 5000; i++) {
		int id = gen_sample(&s, l, allowed, &rng), better = 0;
		for (int v = 0; v < V; v++)
			better += allowed[v] && (l[v] > l[id] || (l[v] == l[id] && v < id));
		bad += id < 0 || !allowed[id] || better >= 5;
	}
	is_int(bad, 0, "with a mask: only allowed ids, the top 5 of them");
	gen_sampler_free(&s);
}

static void test_greedy_and_seeds(void)
{
	enum { V = 300 };
	float l[V];
	uint64_t lrng = 5, rng = 1;
	struct gen_sampler t0, k1, hot;
	gen_sampler_init(&t0, V, 26, 0.0f);
	gen_sampler_init(&k1, V, 1, 1.5f);
	gen_sampler_init(&hot, V, 0, 1.0f);
	int wrong = 0;
	for (int i = 0; i < 200; i++) {
		random_logits(l, V, &lrng, 4.0f);
		int best = 0;
		for (int v = 1; v < V; v++)
			best = l[v] > l[best] ? v : best;
		wrong += gen_sample(&t0, l, NULL, &rng) != best;
		wrong += gen_sample(&k1, l, NULL, &rng) != best;
	}
	is_int(wrong, 0, "temperature 0 and k 1 always pick the argmax");
	for (int v = 0; v < V; v++)
		l[v] = 1.0f;
	is_int(gen_sample(&t0, l, NULL, &rng), 0, "greedy ties go to the lowest id");
	l[0] = NAN;
	l[1] = -INFINITY;
	is_int(gen_sample(&t0, l, NULL, &rng), 2, "NaN and -inf logits are never drawn");
	unsigned char none[V] = { 0 };
	is_int(gen_sample(&hot, l, none, &rng), -1, "nothing allowed: -1");

	/* same seed, same draws; another seed, other draws */
	random_logits(l, V, &lrng, 3.0f);
	int a[64], b[64], c[64], same_ab = 1, same_ac = 1;
	uint64_t r1 = gen_rng_seed(7, 0), r2 = gen_rng_seed(7, 0), r3 = gen_rng_seed(7, 1);
	for (int i = 0; i < 64; i++) {
		a[i] = gen_sample(&hot, l, NULL, &r1);
		b[i] = gen_sample(&hot, l, NULL, &r2);
		c[i] = gen_sample(&hot, l, NULL, &r3);
		same_ab &= a[i] == b[i];
		same_ac &= a[i] == c[i];
	}
	ok(same_ab, "same seed: same draws");
	ok(!same_ac, "another flow index: other draws");
	gen_sampler_free(&t0);
	gen_sampler_free(&k1);
	gen_sampler_free(&hot);
}

/* ------------------------------------------------------------------ packets */

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum)
{
	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (n)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

/* An Ethernet / IPv4 / UDP frame of 60 bytes with right checksums; seed
 * varies the payload and the source port. */
static size_t udp_frame(uint8_t *f, int seed)
{
	static const uint8_t eth[14] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00 };
	size_t pay = 18, udp_len = 8 + pay, ip_len = 20 + udp_len;
	memcpy(f, eth, 14);
	uint8_t *ip = f + 14, *udp = ip + 20;
	memset(ip, 0, 20);
	ip[0] = 0x45, ip[2] = (uint8_t)(ip_len >> 8), ip[3] = (uint8_t)ip_len, ip[8] = 64;
	ip[9] = 17;
	uint8_t src[4] = { 10, 0, 0, 1 }, dst[4] = { 10, 0, 0, 2 };
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	uint16_t c = csum_fold(sum16(ip, 20, 0));
	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	udp[0] = 0xc0, udp[1] = 0x35, udp[2] = 0, udp[3] = 53;	/* one flow: seeds vary the data */
	udp[4] = 0, udp[5] = (uint8_t)udp_len, udp[6] = udp[7] = 0;
	for (size_t i = 0; i < pay; i++)
		udp[8 + i] = (uint8_t)(seed * 31 + i * 7);
	uint32_t ps = sum16(src, 4, 0);
	ps = sum16(dst, 4, ps) + 17 + (uint32_t)udp_len;
	c = csum_fold(sum16(udp, udp_len, ps));
	c = c ? c : 0xffff;
	udp[6] = (uint8_t)(c >> 8), udp[7] = (uint8_t)c;
	return 14 + ip_len;
}

/* A packet's tokens (START first) at tok; returns how many. */
static size_t packet_tokens(int *tok, int linktype, double dt, const uint8_t *f, size_t n)
{
	uint64_t bits;
	memcpy(&bits, &dt, sizeof bits);
	size_t k = 0;
	tok[k++] = TOK_START;
	tok[k++] = linktype;
	for (int i = 7; i >= 0; i--)
		tok[k++] = (int)(bits >> (8 * i) & 0xff);
	for (size_t i = 0; i < n; i++)
		tok[k++] = f[i];
	return k;
}

static void test_check_packet(void)
{
	uint8_t f[128], buf[256];
	int tok[160];
	const char *why = NULL;
	size_t n = packet_tokens(tok, 1, 0.0, f, udp_frame(f, 1));
	ok(gen_check_packet(tok + 1, n - 1, 0, buf, NULL, 0, &why), "a right UDP packet passes");
	tok[n - 1] ^= 0x40;
	ok(!gen_check_packet(tok + 1, n - 1, 0, buf, NULL, 0, &why) && why &&
		strcmp(why, "UDP checksum") == 0,
		"a payload byte changed: UDP checksum");
	tok[n - 1] ^= 0x40;
	tok[1 + 1 + 8 + 14 + 3] ^= 1;	/* IPv4 total length */
	ok(!gen_check_packet(tok + 1, n - 1, 0, buf, NULL, 0, &why), "IPv4 total length changed: fails");
	tok[1 + 1 + 8 + 14 + 3] ^= 1;
	tok[1] = 255;
	ok(!gen_check_packet(tok + 1, n - 1, 0, buf, NULL, 0, &why) && strstr(why, "escape"),
		"link-type escape with no side link type fails");
	ok(gen_check_packet(tok + 1, n - 1, 1, buf, NULL, 0, &why), "... and passes with escape_linktype 1");
	tok[1] = 1;
	tok[2] = 0x7f, tok[3] = 0xf8;	/* a NaN interval */
	ok(!gen_check_packet(tok + 1, n - 1, 0, buf, NULL, 0, &why) && strstr(why, "finite"),
		"a NaN time interval fails");
	tok[2] = tok[3] = 0;
	ok(!gen_check_packet(tok + 1, 5, 0, buf, NULL, 0, &why), "a packet cut in its time field fails");
	ok(!gen_check_packet(tok + 1, 9, 0, buf, NULL, 0, &why), "a packet without bytes fails");
	tok[30] = TOK_END;
	ok(!gen_check_packet(tok + 1, n - 1, 0, buf, NULL, 0, &why) && strstr(why, "special"),
		"a special token among the bytes fails");
}

/* ------------------------------------------------------------------ forced flows */

/* The hook forces script[n] (all other logits -inf); at position bad_at it
 * forces bad_tok the first bad_times times it is asked. */
struct script {
	int tok[512];
	size_t n;
	size_t bad_at;
	int bad_tok, bad_times, asked_bad;
	int calls;
};

static void force_hook(void *user, int flow, const int *seq, size_t n, float *logits)
{
	struct script *s = user;
	(void)flow, (void)seq;
	s->calls++;
	for (int v = 0; v < 260; v++)
		logits[v] = -INFINITY;
	int want = n < s->n ? s->tok[n] : TOK_END;
	if (n == s->bad_at && s->asked_bad++ < s->bad_times)
		want = s->bad_tok;
	logits[want] = 0.0f;
}

/* Two UDP packets then END; byte bad_byte of the second packet is the one
 * the hook may corrupt. */
static void make_script(struct script *s, int label)
{
	uint8_t f[128];
	memset(s, 0, sizeof *s);
	if (label >= 0)
		s->tok[s->n++] = label;
	s->n += packet_tokens(s->tok + s->n, 1, 0.0, f, udp_frame(f, 1));
	size_t second = s->n;
	s->n += packet_tokens(s->tok + s->n, 1, 0.25, f, udp_frame(f, 2));
	s->tok[s->n++] = TOK_END;
	s->bad_at = second + 10 + 50;	/* a payload byte */
	s->bad_tok = s->tok[s->bad_at] ^ 0x11;
}

static int run_forced(const struct model *m, struct script *s, const int *prompt, size_t plen,
	int max_retries, size_t max_len, struct gen_flow *flow, struct gen_stats *st)
{
	struct gen_opts o;
	struct gen g;
	gen_opts_default(&o);
	o.hook = force_hook, o.hook_user = s, o.max_retries = max_retries;
	if (max_len)
		o.max_len = max_len;
	if (gen_init(&g, m, 1, &o))
		return -1;
	const int *prompts[1] = { prompt };
	size_t plens[1] = { plen };
	gen_run(&g, prompt ? prompts : NULL, plens, flow, 1);
	*st = g.stats;
	gen_free(&g);
	return 0;
}

static long reason_count(const struct gen_stats *st, const char *why)
{
	for (int i = 0; i < st->n_reasons; i++)
		if (strcmp(st->reasons[i].why, why) == 0)
			return st->reasons[i].count;
	return 0;
}

static void test_forced(const struct model *m)
{
	struct script s;
	struct gen_flow f;
	struct gen_stats st;
	make_script(&s, -1);
	s.bad_times = 0;
	run_forced(m, &s, NULL, 0, 8, 0, &f, &st);
	ok(f.n == s.n && memcmp(f.tok, s.tok, s.n * sizeof(int)) == 0,
		"forced valid flow comes out whole (bare START prompt)");
	is_int(f.stop, GEN_STOP_END, "... stopped by END");
	is_int(f.packets, 2, "... two packets kept");
	is_int(st.rewinds, 0, "... no rewind");
	gen_flow_free(&f);

	make_script(&s, -1);
	s.bad_times = 1;
	run_forced(m, &s, NULL, 0, 8, 0, &f, &st);
	ok(f.n == s.n && memcmp(f.tok, s.tok, s.n * sizeof(int)) == 0,
		"a corrupted packet is rewound and comes out right the second time");
	is_int(f.rewinds, 1, "... one rewind in the flow");
	is_int(st.rewinds, 1, "... one rewind in the stats");
	is_int(reason_count(&st, "UDP checksum"), 1, "... counted under UDP checksum");
	is_int(s.asked_bad, 2, "... the byte was sampled again after the rewind");
	gen_flow_free(&f);

	make_script(&s, -1);
	s.bad_times = 1000;
	run_forced(m, &s, NULL, 0, 3, 0, &f, &st);
	size_t first_end = s.bad_at - 10 - 50;	/* the second packet's START */
	ok(f.n == first_end + 1 && memcmp(f.tok, s.tok, first_end * sizeof(int)) == 0 &&
		f.tok[first_end] == TOK_END,
		"always corrupt: the packet is dropped and the flow ends");
	is_int(f.stop, GEN_STOP_RETRIES, "... stopped by the retry bound");
	is_int(st.rewinds, 3, "... after max_retries (3) rewinds");
	is_int(st.dropped, 1, "... one packet dropped");
	is_int(reason_count(&st, "UDP checksum"), 4, "... four failures counted");
	gen_flow_free(&f);

	/* a prompt ending inside the second packet: rewinds stop at its end */
	make_script(&s, 7);
	s.bad_times = 2;
	size_t plen = s.bad_at - 20;
	run_forced(m, &s, s.tok, plen, 8, 0, &f, &st);
	ok(f.n == s.n && memcmp(f.tok, s.tok, s.n * sizeof(int)) == 0,
		"prompt (label, a packet, half a packet) kept; continuation rewound twice");
	is_int(f.prompt_len, plen, "... prompt length");
	is_int(st.rewinds, 2, "... two rewinds");
	is_int(f.packets, 1, "... one generated packet");
	gen_flow_free(&f);

	/* a prompt with END: nothing generated */
	int calls = s.calls;
	run_forced(m, &s, s.tok, s.n, 8, 0, &f, &st);
	ok(f.n == s.n && f.stop == GEN_STOP_END && s.calls == calls,
		"a prompt with END is the flow");
	gen_flow_free(&f);

	/* the length limit cuts the open packet */
	make_script(&s, -1);
	run_forced(m, &s, NULL, 0, 8, 100, &f, &st);
	size_t second = s.bad_at - 60;
	ok(f.stop == GEN_STOP_LENGTH && f.n == second + 1 && f.tok[second] == TOK_END &&
		memcmp(f.tok, s.tok, second * sizeof(int)) == 0,
		"max_len 100: the cut packet is dropped, END appended");
	is_int(f.packets, 1, "... the first packet kept");
	gen_flow_free(&f);

	/* a prompt packet longer than max_packet is real data: left alone, and
	 * only START or END may follow it */
	uint8_t frame[128];
	memset(&s, 0, sizeof s);
	s.tok[0] = TOK_START, s.tok[1] = 1;
	for (int i = 2; i < 90; i++)
		s.tok[i] = i < 10 ? 0 : i;
	s.n = 90;
	s.n += packet_tokens(s.tok + s.n, 1, 0.5, frame, udp_frame(frame, 3));
	s.tok[s.n++] = TOK_END;
	s.bad_at = (size_t)-1;
	struct gen_opts o;
	struct gen g;
	gen_opts_default(&o);
	o.hook = force_hook, o.hook_user = &s;
	o.max_packet = 70;	/* below the prompt packet's 80 bytes, above the frame's 60 */
	gen_init(&g, m, 1, &o);
	const int *prompts[1] = { s.tok };
	size_t plens[1] = { 90 };
	gen_run(&g, prompts, plens, &f, 1);
	ok(f.n == s.n && memcmp(f.tok, s.tok, s.n * sizeof(int)) == 0 && f.stop == GEN_STOP_END,
		"a prompt packet past max_packet (80 bytes, not a frame) is kept unjudged; "
		"the next one generated");
	is_int(f.packets, 1, "... one generated packet");
	is_int(g.stats.rewinds, 0, "... no rewind");
	gen_free(&g);
	gen_flow_free(&f);
}

/* ------------------------------------------------------------------ real model */

static void free_flows(struct gen_flow *f, int n)
{
	for (int i = 0; i < n; i++)
		gen_flow_free(&f[i]);
}

static int same_flows(const struct gen_flow *a, const struct gen_flow *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i].n != b[i].n || memcmp(a[i].tok, b[i].tok, a[i].n * sizeof(int)) ||
			a[i].stop != b[i].stop || a[i].rewinds != b[i].rewinds)
			return 0;
	return 1;
}

/* Uniform logits over every id: only the masks shape the flows. */
static void flat_hook(void *user, int flow, const int *seq, size_t n, float *logits)
{
	(void)user, (void)flow, (void)seq, (void)n;
	for (int v = 0; v < 260; v++)
		logits[v] = 0.0f;
}

/* The tokenizer's rules over a flow (a bare START prompt). */
static int flow_follows_rules(const struct gen_flow *f)
{
	long since = -1;	/* tokens since START */
	for (size_t i = 0; i < f->n; i++) {
		int t = f->tok[i];
		if (t == TOK_CLS || t == TOK_PAD || t >= TOK_VOCAB)
			return 0;
		if (t == TOK_START || t == TOK_END) {
			if (i > 0 && since < 10)
				return 0;	/* inside the fixed fields, or no byte yet */
			since = 0;
			if (t == TOK_END && i != f->n - 1)
				return 0;
			continue;
		}
		if (since >= 0)
			since++;
	}
	return f->n > 0 && f->tok[f->n - 1] == TOK_END;
}

static void test_model(const struct model *m)
{
	enum { N = 5 };
	struct gen_opts o;
	struct gen g;
	struct gen_flow a[N], b[N];
	gen_opts_default(&o);
	o.max_len = 120, o.seed = 11;
	ok(gen_init(&g, m, 0, &o) == -1, "gen_init refuses 0 streams");

	/* masks alone: uniform logits over all 260 ids, no packet check */
	o.check = 0, o.top_k = 0, o.hook = flat_hook, o.max_packet = 40;
	gen_init(&g, m, 2, &o);
	struct gen_flow many[40];
	gen_run(&g, NULL, NULL, many, 40);
	int good = 1, ends = 0, longest = 0;
	for (int i = 0; i < 40; i++) {
		good &= flow_follows_rules(&many[i]);
		ends += many[i].stop == GEN_STOP_END;
		long run = 0;
		for (size_t k = 0; k < many[i].n; k++) {
			run = many[i].tok[k] >= TOK_START ? 0 : run + 1;
			longest = run > longest ? (int)run : longest;
		}
	}
	ok(good, "uniform logits: no CLS/PAD, no specials in fixed fields, START/END after a byte");
	ok(ends > 0, "... some flows sampled END");
	ok(longest <= 9 + 40, "... max_packet 40: no packet longer");
	free_flows(many, 40);
	gen_free(&g);

	/* same seed, same flows; another seed, others (packets checked) */
	o.check = 1, o.top_k = 26, o.hook = NULL, o.max_packet = 65599;
	gen_init(&g, m, 2, &o);
	gen_run(&g, NULL, NULL, a, N);
	long rewinds = g.stats.rewinds;
	gen_free(&g);
	gen_init(&g, m, 2, &o);
	gen_run(&g, NULL, NULL, b, N);
	ok(same_flows(a, b, N), "same seed: the same flows");
	ok(rewinds > 0 && g.stats.rewinds == rewinds,
		"... with the same rewinds (an untrained model fails packets)");
	gen_free(&g);
	free_flows(b, N);
	o.seed = 12;
	gen_init(&g, m, 2, &o);
	gen_run(&g, NULL, NULL, b, N);
	ok(!same_flows(a, b, N), "another seed: other flows");
	gen_free(&g);
	free_flows(b, N);

	/* the streams beside a flow do not change it */
	o.seed = 11;
	gen_init(&g, m, 3, &o);
	gen_run(&g, NULL, NULL, b, N);
	ok(same_flows(a, b, N), "3 streams give the flows of 2 streams");
	gen_free(&g);
	free_flows(b, N);
	free_flows(a, N);

	/* greedy: every sampled token is the best allowed one */
	o.temperature = 0.0f, o.check = 0;
	gen_init(&g, m, 2, &o);
	gen_run(&g, NULL, NULL, a, 2);
	gen_run(&g, NULL, NULL, b, 2);
	ok(same_flows(a, b, 2), "greedy: the same flows every time");
	struct rec r;
	rec_init(&r, m, 1);
	int argmax_ok = 1;
	for (size_t i = 0; i + 1 < a[0].n && i + 1 < 100; i++) {
		rec_feed(&r, 0, &a[0].tok[i], 1);
		const float *l = rec_logits(&r, 0);
		int next = a[0].tok[i + 1];
		if (next == TOK_END && i + 2 == a[0].n && a[0].stop == GEN_STOP_LENGTH)
			break;
		for (int v = 0; v < 256; v++)	/* bytes are always allowed where a byte came */
			if (next < 256 && l[v] > l[next])
				argmax_ok = 0;
	}
	ok(argmax_ok, "greedy: each byte is the argmax of the recurrent logits");
	rec_free(&r);
	free_flows(a, 2);
	free_flows(b, 2);
	gen_free(&g);
}

int main(void)
{
	model_set_threads(1);
	test_top_k();
	test_greedy_and_seeds();
	test_check_packet();
	struct model m;
	struct model_config c = model_config_tiny();
	c.max_ctx = 128;
	c.init_std = 0.3f, c.emb_std = 1.0f;
	if (model_init(&m, &c, 21))
		return 1;
	test_forced(&m);
	test_model(&m);
	model_free(&m);
	return tap_done();
}
