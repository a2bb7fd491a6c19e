/* t-eval.c: unit tests of realism-eval's building blocks in tools/eval: the
 * TCP coherence of hand-made flows (handshake, retransmissions, gaps,
 * acknowledgements), the flow vector, the field histograms of flow records,
 * and the folds (stratified folds, shuffles, mean and deviation); the
 * scores are t-metrics's. */
#include <stdlib.h>
#include <string.h>

#include "../../tools/eval/coherence.h"
#include "../../tools/eval/features.h"
#include "../../tools/eval/fields.h"
#include "../../tools/eval/folds.h"
#include "hash.h"
#include "../tap.h"

/* ------------------------------------------------------------ hand-made flows */

#define MAX_PKTS 16
#define FRAME 128

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A flow record under construction: Ethernet, IPv4 10.0.0.1:40000 (the
 * client) <-> 10.0.0.2:443, TCP or UDP, payloads of zeros. */
struct flow {
	struct flow_rec rec;
	struct packet pkt[MAX_PKTS];
	uint8_t data[MAX_PKTS][FRAME];
};

static void flow_init(struct flow *f, uint8_t proto)
{
	memset(f, 0, sizeof *f);
	f->rec.linktype = 1;
	f->rec.ip_version = 4;
	f->rec.proto = proto;
	f->rec.pkt = f->pkt;
}

/* Adds a packet from the client (dir 0) or the server (dir 1), 10 ms after
 * the last; TCP flags, seq, ack, payload bytes (frames keep at most 60). */
static void add(struct flow *f, int dir, uint8_t flags, uint32_t seq, uint32_t ack, unsigned payload)
{
	size_t i = f->rec.n_packets++;
	uint8_t *d = f->data[i], src[4] = { 10, 0, 0, 1 }, dst[4] = { 10, 0, 0, 2 };
	int tcp = f->rec.proto == 6;
	unsigned l4 = tcp ? 20 : 8, caplen = 34 + l4 + (payload < 60 ? payload : 60);
	memset(d, 0, FRAME);
	d[12] = 0x08;
	d[14] = 0x45;
	put16(d + 16, 20 + l4 + payload);
	d[22] = dir ? 57 : 64; /* TTL */
	d[23] = f->rec.proto;
	memcpy(d + 26, dir ? dst : src, 4);
	memcpy(d + 30, dir ? src : dst, 4);
	put16(d + 34, dir ? 443 : 40000);
	put16(d + 36, dir ? 40000 : 443);
	if (tcp) {
		put32(d + 38, seq);
		put32(d + 42, ack);
		d[46] = 5 << 4;
		d[47] = flags;
		put16(d + 48, dir ? 1000 : 2000);
	} else {
		put16(d + 38, 8 + payload);
	}
	struct packet *p = &f->pkt[i];
	p->ts_ns = 1000000000ull + i * 10000000ull;
	p->caplen = caplen;
	p->wirelen = 34 + l4 + payload;
	p->index = i;
	p->dir = (uint8_t)dir;
	p->data = d;
}

enum { S = 0x02, A = 0x10, SA = 0x12, F = 0x11, R = 0x04, RA = 0x14, P = 0x18 };

/* Client ISN 100, server ISN 500: handshake, then 10 bytes each way. */
static void handshake(struct flow *f)
{
	flow_init(f, 6);
	add(f, 0, S, 100, 0, 0);
	add(f, 1, SA, 500, 101, 0);
	add(f, 0, A, 101, 501, 0);
}

static void check(struct flow *f, int want, const char *reason, const char *what)
{
	const char *why = NULL;
	int got = tcp_flow_check(&f->rec, &why);
	char msg[160];
	snprintf(msg, sizeof msg, "%s: %s", what, want == 1 ? "coherent" : want < 0 ? "not TCP" : reason);
	ok(got == want && (want != 0 || (why && strcmp(why, reason) == 0)), msg);
	if (got != want || (want == 0 && (!why || strcmp(why, reason) != 0)))
		printf("#   got %d: %s\n", got, why ? why : "(no reason)");
}

static void test_coherence(void)
{
	struct flow f;
	handshake(&f);
	add(&f, 0, P, 101, 501, 10);
	add(&f, 1, P, 501, 111, 20);
	add(&f, 0, F, 111, 521, 0);
	add(&f, 1, F, 521, 112, 0);
	add(&f, 0, A, 112, 522, 0);
	check(&f, 1, NULL, "handshake, data both ways, FINs");

	handshake(&f);
	f.rec.n_packets = 2;
	check(&f, 0, "handshake incomplete", "SYN, SYN-ACK and nothing more");

	flow_init(&f, 6);
	add(&f, 0, S, 100, 0, 0);
	add(&f, 0, S, 100, 0, 0);
	add(&f, 1, SA, 500, 101, 0);
	add(&f, 1, SA, 500, 101, 0);
	add(&f, 0, A, 101, 501, 0);
	add(&f, 0, P, 101, 501, 100);
	add(&f, 0, P, 101, 501, 100);   /* retransmitted */
	add(&f, 0, P, 151, 501, 100);   /* repacketized: 50 old, 50 new */
	add(&f, 0, A, 250, 501, 0);     /* keep-alive: one before the end */
	add(&f, 1, A, 501, 251, 0);
	check(&f, 1, NULL, "SYN and SYN-ACK sent twice, retransmission, overlap, keep-alive");

	flow_init(&f, 6);
	add(&f, 0, S, 100, 0, 0);
	add(&f, 1, RA, 0, 101, 0);
	check(&f, 1, NULL, "a refused connection (RST-ACK of the SYN)");
	add(&f, 0, S, 100, 0, 0);
	check(&f, 0, "packets after the refusal", "a SYN after the refusal");

	handshake(&f);
	f.data[0][47] = A; /* the first packet is no SYN */
	check(&f, 0, "no SYN opens the flow", "a flow that starts with an ACK");

	flow_init(&f, 6);
	add(&f, 0, S, 100, 0, 0);
	add(&f, 1, SA, 500, 100, 0);
	check(&f, 0, "the SYN-ACK acknowledges another sequence number", "SYN-ACK acknowledging the ISN");

	flow_init(&f, 6);
	add(&f, 0, S, 100, 0, 0);
	add(&f, 0, S, 900, 0, 0);
	check(&f, 0, "a second SYN with another sequence number", "two SYNs, two ISNs");

	handshake(&f);
	f.data[2][45] = 0xff; /* acknowledges 0x1ff */
	check(&f, 0, "the third packet does not acknowledge the SYN-ACK", "third packet acking 511");

	handshake(&f);
	add(&f, 0, P, 101, 501, 10);
	add(&f, 0, P, 121, 501, 10);
	check(&f, 0, "sequence gap: data missing or out of order", "10 bytes missing");

	handshake(&f);
	add(&f, 1, P, 501, 101, 10);
	add(&f, 0, A, 101, 511, 0);
	add(&f, 0, A, 101, 505, 0);
	check(&f, 0, "acknowledgement going backwards", "an ACK below an earlier one");

	handshake(&f);
	add(&f, 1, P, 501, 101, 10);
	add(&f, 0, A, 101, 600, 0);
	check(&f, 0, "acknowledgement of data never sent", "acknowledging 89 bytes too many");

	handshake(&f);
	add(&f, 0, S, 300, 0, 0);
	check(&f, 0, "SYN inside the connection", "a new SYN inside the connection");

	handshake(&f);
	add(&f, 1, P, 501, 101, 10);
	check(&f, 1, NULL, "the server speaks first after the handshake");

	flow_init(&f, 17);
	add(&f, 0, 0, 0, 0, 30);
	add(&f, 1, 0, 0, 0, 90);
	check(&f, -1, NULL, "a UDP flow");
}

/* ------------------------------------------------------------ vectors */

static void test_vector(void)
{
	struct flow f;
	struct flow_acc acc;
	flow_acc_init(&acc);
	handshake(&f);
	is_int(flow_vector_len(20, 0), 20 * 4 + 8 + 9, "vector: 97 numbers for 20 packets");
	is_int(flow_vector_len(20, 1), 99, "vector: 99 with ports");
	float v[4 * 5 + 8 + 2 + 9];
	flow_vector(&f.rec, 5, 1, &acc, v);
	ok(v[0] == 54 && v[1] == 0 && v[2] == 0 && v[3] == S, "vector: packet 1 length, direction, gap, flags");
	ok(v[4] == 54 && v[5] == 1 && fabsf(v[6] - 0.01f) < 1e-6f && v[7] == SA, "vector: packet 2 answers");
	ok(isnan(v[12]) && isnan(v[19]), "vector: packets 4 and 5 missing (NAN)");
	const float *h = v + 20;
	ok(h[0] == 4 && h[1] == 6, "vector: IP version 4, protocol 6");
	ok(h[2] == 64 && h[3] == 57, "vector: TTL each way");
	ok(h[4] == 2000 && h[5] == 1000 && h[6] == 20 && h[7] == 20, "vector: TCP window and header each way");
	ok(h[8] == 40000 && h[9] == 443, "vector: ports (with --ports)");
	const float *fl = h + 10;
	ok(fl[0] == 1 && fabsf(fl[1] - 2.0f / 3) < 1e-6f && fl[4] == 2, "vector: f1 1 in, f2 2/3, f5 2 out");
	ok(fl[6] == 3 && fl[7] == 162 && fabsf(fl[8] - 0.02f) < 1e-6f, "vector: 3 packets, 162 bytes, 20 ms");
	char name[32];
	is_str(flow_vector_name(0, 5, 1, name, sizeof name), "len_1", "vector name 0: len_1");
	is_str(flow_vector_name(7, 5, 1, name, sizeof name), "tcp_flags_2", "vector name 7: tcp_flags_2");
	is_str(flow_vector_name(23, 5, 1, name, sizeof name), "ttl_in", "vector name 23: ttl_in");
	is_str(flow_vector_name(28, 5, 1, name, sizeof name), "src_port", "vector name 28: src_port");
	is_str(flow_vector_name(28, 5, 0, name, sizeof name), "f1_in_pkts", "vector name 28 without ports");
	is_str(flow_vector_name(38, 5, 1, name, sizeof name), "duration", "the last: duration");

	/* the flow features count every packet, IP or not */
	f.data[1][12] = 0x08, f.data[1][13] = 0x06; /* ARP */
	flow_vector(&f.rec, 5, 0, &acc, v);
	ok(v[4] == 54 && isnan(v[7]) && v[20 + 8 + 6] == 3, "vector: a non-IP packet keeps its size, no flags");
	flow_acc_free(&acc);
}

/* ------------------------------------------------------------ field histograms */

static void test_fields(void)
{
	struct field_set fs;
	struct field_result res[N_FIELDS];
	struct flow f;
	field_set_init(&fs);
	handshake(&f);
	field_set_add_flow(&fs, 0, &f.rec);
	field_set_add_flow(&fs, 1, &f.rec);
	field_set_compare(&fs, res);
	ok(fs.packets[0] == 3 && fs.flows[1] == 1, "fields: 3 packets and 1 flow a side");
	is_near(field_mean_jsd(res, 0), 0, 0, "fields: the same flow: packet fields 0");
	is_near(field_mean_jsd(res, 1), 0, 0, "fields: flow fields 0");
	f.data[2][12] = 0x86, f.data[2][13] = 0xdd; /* no longer IPv4: not IP at all */
	f.rec.ip_version = 0;
	field_set_add_flow(&fs, 1, &f.rec);
	ok(fs.skipped[1] == 1 && fs.packets[1] == 5, "fields: a packet that is not IP is left out and counted");
	field_set_compare(&fs, res);
	ok(res[F_FLOW_PKTS].defined && res[F_FLOW_PKTS].d.jsd > 0, "fields: a flow of 2 against 3: flow_pkts differ");
	field_set_free(&fs);
}

/* ------------------------------------------------------------ folds */

static void test_folds(void)
{
	/* 10 of class 0, 5 of class 1, 5 folds: 2 and 1 in each */
	int y[15], fold[15], fold2[15], fold3[15];
	for (int i = 0; i < 15; i++)
		y[i] = i % 3 == 2;
	stratified_folds(y, 15, 2, 5, 42, fold);
	int even = 1;
	for (int k = 0; k < 5; k++) {
		int n0 = 0, n1 = 0;
		for (int i = 0; i < 15; i++)
			if (fold[i] == k)
				y[i] ? n1++ : n0++;
		even &= n0 == 2 && n1 == 1;
	}
	ok(even, "stratified folds: each fold 2 of class 0 and 1 of class 1");
	stratified_folds(y, 15, 2, 5, 42, fold2);
	stratified_folds(y, 15, 2, 5, 43, fold3);
	ok(memcmp(fold, fold2, sizeof fold) == 0, "stratified folds: the same seed, the same folds");
	ok(memcmp(fold, fold3, sizeof fold) != 0, "stratified folds: another seed, other folds");

	double m, s;
	const double x[] = { 1, 2, 3, 4 };
	mean_std(x, 4, &m, &s);
	is_near(m, 2.5, 1e-12, "mean of 1..4");
	is_near(s, sqrt(5.0 / 3), 1e-12, "sample standard deviation of 1..4");
	mean_std(x, 1, &m, &s);
	ok(m == 1 && s == 0, "one value: deviation 0");

	uint64_t st = 7;
	size_t idx[100];
	int seen[100] = { 0 }, perm = 1, inside = 1;
	for (size_t i = 0; i < 100; i++)
		idx[i] = i;
	shuffle(idx, 100, &st);
	for (size_t i = 0; i < 100; i++)
		seen[idx[i]]++;
	for (size_t i = 0; i < 100; i++)
		perm &= seen[i] == 1;
	for (int i = 0; i < 1000; i++)
		inside &= splitmix64_below(&st, 3) < 3;
	ok(perm, "shuffle: a permutation");
	ok(inside, "splitmix64_below(3) stays below 3");
}

int main(void)
{
	test_coherence();
	test_vector();
	test_fields();
	test_folds();
	return tap_done();
}
