/* mkpcap.c: writes deterministic synthetic captures for the tests and the
 * benchmarks, so the repository holds no binary fixtures. Each KIND is a small
 * scripted scenario (a TCP session, DNS-like UDP, IPv6, VLAN tags, ...) with
 * correct lengths and checksums; "bulk" streams many interleaved TCP flows.
 * The seed changes payload bytes, addresses and ports, never packet counts,
 * lengths or timestamps, so two seeds give captures that differ in bytes only. */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h" /* TGPT_VERSION only: the helper links nothing from common/ */
#include "hash.h"

#define NS_PER_S UINT64_C(1000000000)
#define MAX_FRAME 4096
#define MSS 1460

/* ---------------------------------------------------------------- RNG */

/* Uniform in [0, n), from splitmix64 (hash.h). */
static uint32_t rng_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(((splitmix64(s) >> 32) * n) >> 32);
}

/* Little-endian bytes of the sequence, so every host writes the same file. */
static void rng_fill(uint64_t *s, uint8_t *p, size_t n)
{
	while (n > 0) {
		uint64_t r = splitmix64(s);

		for (int i = 0; i < 8 && n > 0; i++, n--, r >>= 8)
			*p++ = (uint8_t)r;
	}
}

/* ---------------------------------------------------------------- bytes */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* RFC 1071 sum, folded later; SUM carries the pseudo header's part. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (n)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* ---------------------------------------------------------------- the scene */

/* One side of a conversation. */
struct endpoint {
	uint8_t mac[6];
	uint8_t ip[16];     /* IPv4 uses the first 4 bytes */
	uint16_t port;
	uint32_t seq;       /* next TCP sequence number this side sends */
	uint16_t ip_id;     /* next IPv4 identification */
};

/* A conversation between a client (end[0]) and a server (end[1]): direction 0
 * is client to server. VLAN tags belong to the path, so they live here. */
struct conv {
	struct endpoint end[2];
	int ip_version;
	uint8_t proto;
	int n_tags;
	uint16_t tpid[2], vid[2]; /* outer first */
	int unacked;              /* bulk: server segments the client owes an ACK */
};

/* What is unusual about one IP packet. */
struct ip_extra {
	uint16_t frag;          /* IPv4 flags and fragment offset field */
	int reuse_id;           /* the previous packet's IPv4 id (fragments) */
	const uint8_t *options; /* IPv4 options, a multiple of 4 bytes */
	size_t options_len;
	int hop_by_hop;         /* IPv6: a hop-by-hop header before the payload */
};

struct scene {
	pcap_dumper_t *dumper;
	int dlt, nano;
	uint32_t snaplen;
	size_t pad_to;          /* pad Ethernet frames to this length (bulk: 60) */
	uint64_t seed;
	uint64_t now_ns, step_ns;
	int ns_digits;          /* timestamps use the sub-microsecond digits */
	uint64_t max_packets, packets, bytes;
	uint32_t last_caplen;
};

/* Writes one frame at the current time, then moves the clock on. */
static void put_frame(struct scene *s, const uint8_t *frame, size_t len)
{
	struct pcap_pkthdr h;
	uint64_t sub = s->now_ns % NS_PER_S;

	if (s->packets >= s->max_packets)
		return;
	h.ts.tv_sec = (time_t)(s->now_ns / NS_PER_S);
	h.ts.tv_usec = (suseconds_t)(s->nano ? sub : sub / 1000);
	h.len = (bpf_u_int32)len;
	h.caplen = (bpf_u_int32)(len < s->snaplen ? len : s->snaplen);
	pcap_dump((u_char *)s->dumper, &h, frame);
	s->packets++;
	s->bytes += 16 + h.caplen;
	s->last_caplen = h.caplen;
	s->now_ns += s->step_ns;
	if (s->ns_digits)
		s->now_ns += (s->packets * 137 + 11) % 1000;
}

/* ---------------------------------------------------------------- link layer */

static size_t eth_header(const struct conv *c, int dir, uint16_t ethertype, uint8_t *out)
{
	size_t h = 12;

	memcpy(out, c->end[!dir].mac, 6);
	memcpy(out + 6, c->end[dir].mac, 6);
	for (int i = 0; i < c->n_tags; i++, h += 4) {
		put16(out + h, c->tpid[i]);
		put16(out + h + 2, c->vid[i]);
	}
	put16(out + h, ethertype);
	return h + 2;
}

/* Linux cooked v1: packet type, ARPHRD, address length, address, protocol. */
static size_t sll_header(const struct conv *c, int dir, uint16_t ethertype, uint8_t *out)
{
	memset(out, 0, 16);
	put16(out, dir == 0 ? 4 : 0); /* outgoing from the client's host, or to it */
	put16(out + 2, 1);            /* ARPHRD_ETHER */
	put16(out + 4, 6);
	memcpy(out + 6, c->end[dir].mac, 6);
	put16(out + 14, ethertype);
	return 16;
}

/* Linux cooked v2: protocol, reserved, ifindex, ARPHRD, type, length, address. */
static size_t sll2_header(const struct conv *c, int dir, uint16_t ethertype, uint8_t *out)
{
	memset(out, 0, 20);
	put16(out, ethertype);
	put32(out + 4, 2); /* interface index */
	put16(out + 8, 1);
	out[10] = dir == 0 ? 4 : 0;
	out[11] = 6;
	memcpy(out + 12, c->end[dir].mac, 6);
	return 20;
}

/* BSD loopback: the address family in the writer's byte order. */
static size_t null_header(uint16_t ethertype, uint8_t *out)
{
	uint32_t family = ethertype == 0x86dd ? 24 : 2;

	memcpy(out, &family, 4);
	return 4;
}

static size_t link_header(const struct scene *s, const struct conv *c, int dir,
	uint16_t ethertype, uint8_t *out)
{
	switch (s->dlt) {
	case DLT_EN10MB: return eth_header(c, dir, ethertype, out);
	case DLT_LINUX_SLL: return sll_header(c, dir, ethertype, out);
	case DLT_LINUX_SLL2: return sll2_header(c, dir, ethertype, out);
	case DLT_NULL: return null_header(ethertype, out);
	default: return 0; /* DLT_RAW */
	}
}

/* Frames an L3 packet for the scene's link type and writes it. */
static void send_l3(struct scene *s, const struct conv *c, int dir, uint16_t ethertype,
	const uint8_t *l3, size_t n)
{
	uint8_t frame[MAX_FRAME];
	size_t h = link_header(s, c, dir, ethertype, frame);

	if (h + n > sizeof frame)
		errx(EX_SOFTWARE, "frame of %zu bytes too long", h + n);
	memcpy(frame + h, l3, n);
	n += h;
	if (s->dlt == DLT_EN10MB && n < s->pad_to) {
		memset(frame + n, 0, s->pad_to - n);
		n = s->pad_to;
	}
	put_frame(s, frame, n);
}

/* ---------------------------------------------------------------- IP */

static size_t ipv4_header(struct conv *c, int dir, size_t payload, const struct ip_extra *x,
	uint8_t *out)
{
	struct endpoint *e = &c->end[dir];
	size_t hlen = 20 + (x ? x->options_len : 0);

	out[0] = (uint8_t)(0x40 | hlen / 4);
	out[1] = 0;
	put16(out + 2, (uint16_t)(hlen + payload));
	if (x && x->reuse_id)
		e->ip_id--;
	put16(out + 4, e->ip_id++);
	put16(out + 6, x && x->frag ? x->frag : 0x4000); /* DF unless fragmented */
	out[8] = 64;
	out[9] = c->proto;
	put16(out + 10, 0);
	memcpy(out + 12, e->ip, 4);
	memcpy(out + 16, c->end[!dir].ip, 4);
	if (x && x->options_len)
		memcpy(out + 20, x->options, x->options_len);
	put16(out + 10, csum_fold(csum_add(0, out, hlen)));
	return hlen;
}

/* IPv6, optionally with an 8-byte hop-by-hop header holding one PadN option. */
static size_t ipv6_header(const struct conv *c, int dir, size_t payload, const struct ip_extra *x,
	uint8_t *out)
{
	int hbh = x && x->hop_by_hop;

	put32(out, 0x60000000u);
	put16(out + 4, (uint16_t)(payload + (hbh ? 8 : 0)));
	out[6] = hbh ? 0 : c->proto;
	out[7] = 64;
	memcpy(out + 8, c->end[dir].ip, 16);
	memcpy(out + 24, c->end[!dir].ip, 16);
	if (!hbh)
		return 40;
	memset(out + 40, 0, 8);
	out[40] = c->proto;
	out[42] = 1; /* PadN */
	out[43] = 4;
	return 48;
}

static void send_ip(struct scene *s, struct conv *c, int dir, const uint8_t *l4, size_t n,
	const struct ip_extra *x)
{
	uint8_t pkt[MAX_FRAME];
	size_t h;

	if (n + 64 > sizeof pkt)
		errx(EX_SOFTWARE, "IP payload of %zu bytes too long", n);
	if (c->ip_version == 4)
		h = ipv4_header(c, dir, n, x, pkt);
	else
		h = ipv6_header(c, dir, n, x, pkt);
	memcpy(pkt + h, l4, n);
	send_l3(s, c, dir, c->ip_version == 4 ? 0x0800 : 0x86dd, pkt, h + n);
}

/* The TCP/UDP checksum: pseudo header of the conversation, then L4. */
static uint16_t l4_checksum(const struct conv *c, int dir, const uint8_t *l4, size_t n)
{
	uint8_t pseudo[40];
	size_t alen = c->ip_version == 4 ? 4 : 16, plen;

	memcpy(pseudo, c->end[dir].ip, alen);
	memcpy(pseudo + alen, c->end[!dir].ip, alen);
	if (c->ip_version == 4) {
		pseudo[8] = 0;
		pseudo[9] = c->proto;
		put16(pseudo + 10, (uint16_t)n);
		plen = 12;
	} else {
		put32(pseudo + 32, (uint32_t)n);
		put32(pseudo + 36, c->proto);
		plen = 40;
	}
	return csum_fold(csum_add(csum_add(0, pseudo, plen), l4, n));
}

/* ---------------------------------------------------------------- TCP, UDP */

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_PSH 0x08
#define TH_ACK 0x10

/* MSS 1460, NOP, NOP, SACK permitted: what a SYN usually carries. */
static const uint8_t syn_options[8] = { 2, 4, MSS >> 8, MSS & 0xff, 1, 1, 4, 2 };

static size_t tcp_segment(struct conv *c, int dir, uint8_t flags, const uint8_t *data, size_t n,
	uint8_t *out)
{
	struct endpoint *me = &c->end[dir], *peer = &c->end[!dir];
	size_t hlen = flags & TH_SYN ? 20 + sizeof syn_options : 20;

	put16(out, me->port);
	put16(out + 2, peer->port);
	put32(out + 4, me->seq);
	put32(out + 8, flags & TH_ACK ? peer->seq : 0);
	out[12] = (uint8_t)(hlen / 4 << 4);
	out[13] = flags;
	put16(out + 14, 64240);
	put32(out + 16, 0); /* checksum, urgent pointer */
	if (flags & TH_SYN)
		memcpy(out + 20, syn_options, sizeof syn_options);
	if (n)
		memcpy(out + hlen, data, n);
	put16(out + 16, l4_checksum(c, dir, out, hlen + n));
	me->seq += (uint32_t)n + !!(flags & (TH_SYN | TH_FIN));
	return hlen + n;
}

static void tcp_send_x(struct scene *s, struct conv *c, int dir, uint8_t flags,
	const uint8_t *data, size_t n, const struct ip_extra *x)
{
	uint8_t seg[MAX_FRAME];

	if (n + 60 > sizeof seg)
		errx(EX_SOFTWARE, "TCP payload of %zu bytes too long", n);
	send_ip(s, c, dir, seg, tcp_segment(c, dir, flags, data, n, seg), x);
}

static void tcp_send(struct scene *s, struct conv *c, int dir, uint8_t flags,
	const uint8_t *data, size_t n)
{
	tcp_send_x(s, c, dir, flags, data, n, NULL);
}

static size_t udp_datagram(const struct conv *c, int dir, const uint8_t *data, size_t n,
	uint8_t *out)
{
	uint16_t sum;

	put16(out, c->end[dir].port);
	put16(out + 2, c->end[!dir].port);
	put16(out + 4, (uint16_t)(8 + n));
	put16(out + 6, 0);
	memcpy(out + 8, data, n);
	sum = l4_checksum(c, dir, out, 8 + n);
	put16(out + 6, sum ? sum : 0xffff);
	return 8 + n;
}

static void udp_send(struct scene *s, struct conv *c, int dir, const uint8_t *data, size_t n)
{
	uint8_t dgram[MAX_FRAME];

	if (n + 8 > sizeof dgram)
		errx(EX_SOFTWARE, "UDP payload of %zu bytes too long", n);
	send_ip(s, c, dir, dgram, udp_datagram(c, dir, data, n, dgram), NULL);
}

/* ---------------------------------------------------------------- conversations */

static void ipv4_addr(uint8_t *ip, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	memset(ip, 0, 16);
	ip[0] = a, ip[1] = b, ip[2] = c, ip[3] = d;
}

/* 2001:db8::HOST (documentation prefix). */
static void ipv6_addr(uint8_t *ip, uint16_t host)
{
	static const uint8_t prefix[4] = { 0x20, 0x01, 0x0d, 0xb8 };

	memset(ip, 0, 16);
	memcpy(ip, prefix, 4);
	put16(ip + 14, host);
}

/* Locally administered MACs 02:00:00:00:HI:LO. */
static void mac_addr(uint8_t *mac, uint16_t host)
{
	static const uint8_t prefix[4] = { 0x02, 0, 0, 0 };

	memcpy(mac, prefix, 4);
	put16(mac + 4, host);
}

/* A conversation between hosts CLIENT and SERVER (numbers that pick the MAC
 * and the address's last byte); the seed picks the client port and ISNs. */
static struct conv conv_make(struct scene *s, int ip_version, uint8_t proto,
	uint8_t client, uint8_t server, uint16_t server_port)
{
	struct conv c;

	memset(&c, 0, sizeof c);
	c.ip_version = ip_version;
	c.proto = proto;
	for (int i = 0; i < 2; i++) {
		uint8_t host = i == 0 ? client : server;

		mac_addr(c.end[i].mac, host);
		if (ip_version == 4)
			ipv4_addr(c.end[i].ip, 10, 0, 0, host);
		else
			ipv6_addr(c.end[i].ip, host);
		c.end[i].seq = (uint32_t)splitmix64(&s->seed);
		c.end[i].ip_id = (uint16_t)splitmix64(&s->seed);
	}
	c.end[0].port = (uint16_t)(32768 + rng_below(&s->seed, 28000));
	c.end[1].port = server_port;
	return c;
}

static void tcp_handshake(struct scene *s, struct conv *c)
{
	tcp_send(s, c, 0, TH_SYN, NULL, 0);
	tcp_send(s, c, 1, TH_SYN | TH_ACK, NULL, 0);
	tcp_send(s, c, 0, TH_ACK, NULL, 0);
}

static void tcp_teardown(struct scene *s, struct conv *c)
{
	tcp_send(s, c, 0, TH_FIN | TH_ACK, NULL, 0);
	tcp_send(s, c, 1, TH_FIN | TH_ACK, NULL, 0);
	tcp_send(s, c, 0, TH_ACK, NULL, 0);
}

/* One request and a two-segment response (a full one and a short one), then
 * the client's ACK. The request may carry IP extras (hop-by-hop). */
static void tcp_exchange(struct scene *s, struct conv *c, const struct ip_extra *x)
{
	uint8_t req[64], resp[MSS];
	char line[64];
	int n = snprintf(line, sizeof line, "GET /%016llx HTTP/1.1\r\nHost: test\r\n\r\n",
		(unsigned long long)splitmix64(&s->seed));

	memcpy(req, line, (size_t)n);
	tcp_send_x(s, c, 0, TH_PSH | TH_ACK, req, (size_t)n, x);
	rng_fill(&s->seed, resp, sizeof resp);
	tcp_send(s, c, 1, TH_ACK, resp, MSS);
	tcp_send(s, c, 1, TH_PSH | TH_ACK, resp, 300);
	tcp_send(s, c, 0, TH_ACK, NULL, 0);
}

static void tcp_session(struct scene *s, struct conv *c, int exchanges)
{
	tcp_handshake(s, c);
	for (int i = 0; i < exchanges; i++)
		tcp_exchange(s, c, NULL);
	tcp_teardown(s, c);
}

/* A DNS query for NAME and its answer (one A record). */
static void dns_exchange(struct scene *s, struct conv *c, const char *name)
{
	uint8_t msg[300];
	size_t n = 12, q;
	uint16_t id = (uint16_t)splitmix64(&s->seed);
	static const uint8_t qtail[4] = { 0, 1, 0, 1 };                    /* A, IN */
	static const uint8_t answer[12] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4 };

	memset(msg, 0, 12);
	put16(msg, id);
	put16(msg + 2, 0x0100); /* standard query, recursion desired */
	put16(msg + 4, 1);
	for (const char *label = name; *label;) { /* "a.b" -> 1 a 1 b 0 */
		size_t len = strcspn(label, ".");
		msg[n++] = (uint8_t)len;
		memcpy(msg + n, label, len);
		n += len;
		label += len + (label[len] == '.');
	}
	msg[n++] = 0;
	memcpy(msg + n, qtail, 4);
	q = n += 4;
	udp_send(s, c, 0, msg, q);
	put16(msg + 2, 0x8180); /* response, no error */
	put16(msg + 6, 1);
	memcpy(msg + q, answer, sizeof answer);
	rng_fill(&s->seed, msg + q + sizeof answer, 4);
	udp_send(s, c, 1, msg, q + sizeof answer + 4);
}

/* ---------------------------------------------------------------- kinds */

struct options {
	uint64_t mb, flows, gap_s;
};

static void kind_tcp(struct scene *s, const struct options *o)
{
	struct conv c = conv_make(s, 4, 6, 1, 2, 80);

	(void)o;
	tcp_session(s, &c, 2);
}

static void kind_udp(struct scene *s, const struct options *o)
{
	struct conv a = conv_make(s, 4, 17, 1, 53, 53);
	struct conv b = conv_make(s, 4, 17, 2, 53, 53);
	struct conv c = conv_make(s, 4, 17, 1, 53, 53);

	(void)o;
	dns_exchange(s, &a, "www.example.com");
	dns_exchange(s, &b, "mail.example.org");
	dns_exchange(s, &a, "ntp.example.net");
	dns_exchange(s, &c, "example.com");
	dns_exchange(s, &b, "www.example.org");
}

static void kind_ipv6(struct scene *s, const struct options *o)
{
	struct conv t = conv_make(s, 6, 6, 1, 2, 443);
	struct conv u = conv_make(s, 6, 17, 1, 53, 53);
	struct ip_extra hbh = { .hop_by_hop = 1 };

	(void)o;
	tcp_handshake(s, &t);
	tcp_exchange(s, &t, &hbh);
	dns_exchange(s, &u, "www.example.com");
	tcp_exchange(s, &t, NULL);
	tcp_teardown(s, &t);
}

static void kind_vlan(struct scene *s, const struct options *o)
{
	struct conv dot1q = conv_make(s, 4, 6, 1, 2, 80);
	struct conv qinq_udp = conv_make(s, 4, 17, 3, 53, 53);
	struct conv qinq_tcp = conv_make(s, 4, 6, 3, 4, 22);

	(void)o;
	dot1q.n_tags = 1;
	dot1q.tpid[0] = 0x8100, dot1q.vid[0] = 100;
	qinq_udp.n_tags = qinq_tcp.n_tags = 2;
	qinq_udp.tpid[0] = qinq_tcp.tpid[0] = 0x88a8;
	qinq_udp.vid[0] = qinq_tcp.vid[0] = 200;
	qinq_udp.tpid[1] = qinq_tcp.tpid[1] = 0x8100;
	qinq_udp.vid[1] = qinq_tcp.vid[1] = 300;
	tcp_session(s, &dot1q, 1);
	dns_exchange(s, &qinq_udp, "www.example.com");
	tcp_session(s, &qinq_tcp, 1);
}

static void kind_truncated(struct scene *s, const struct options *o)
{
	struct conv t = conv_make(s, 4, 6, 1, 2, 80), u;

	(void)o;
	tcp_session(s, &t, 2); /* kind tcp's packets, so tests can compare */
	u = conv_make(s, 4, 17, 1, 53, 53);
	dns_exchange(s, &u, "a-rather-long-label-to-pass-the-snaplen.example.com");
}

/* An echo request with the usual 56 data bytes, and its reply. */
static void icmp_ping(struct scene *s, struct conv *c)
{
	uint8_t msg[64];

	for (int dir = 0; dir < 2; dir++) {
		memset(msg, 0, 8);
		msg[0] = dir == 0 ? 8 : 0;
		put16(msg + 4, 0x1234);
		put16(msg + 6, 1);
		for (int i = 0; i < 56; i++)
			msg[8 + i] = (uint8_t)(0x10 + i);
		put16(msg + 2, csum_fold(csum_add(0, msg, sizeof msg)));
		send_ip(s, c, dir, msg, sizeof msg, NULL);
	}
}

/* Who has the server's address, and the server's answer. */
static void arp_exchange(struct scene *s, const struct conv *c)
{
	static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct conv ask = *c;
	uint8_t msg[28];

	for (int dir = 0; dir < 2; dir++) {
		put16(msg, 1);
		put16(msg + 2, 0x0800);
		msg[4] = 6, msg[5] = 4;
		put16(msg + 6, (uint16_t)(dir + 1));
		memcpy(msg + 8, c->end[dir].mac, 6);
		memcpy(msg + 14, c->end[dir].ip, 4);
		memset(msg + 18, 0, 6);
		if (dir == 1)
			memcpy(msg + 18, c->end[0].mac, 6);
		memcpy(msg + 24, c->end[!dir].ip, 4);
		memcpy(ask.end[1].mac, dir == 0 ? broadcast : c->end[1].mac, 6);
		send_l3(s, &ask, dir, 0x0806, msg, sizeof msg);
	}
}

/* One UDP datagram of 2008 bytes sent as two IPv4 fragments (1480 + 528). */
static void udp_fragmented(struct scene *s, struct conv *c)
{
	uint8_t data[2000], dgram[2008];
	size_t n;
	struct ip_extra first = { .frag = 0x2000 }; /* MF, offset 0 */
	struct ip_extra second = { .frag = 1480 / 8, .reuse_id = 1 };

	rng_fill(&s->seed, data, sizeof data);
	n = udp_datagram(c, 0, data, sizeof data, dgram);
	send_ip(s, c, 0, dgram, 1480, &first);
	send_ip(s, c, 0, dgram + 1480, n - 1480, &second);
}

/* An IGMPv2 membership report for 239.1.2.3, with the router alert option. */
static void igmp_report(struct scene *s)
{
	static const uint8_t router_alert[4] = { 0x94, 0x04, 0, 0 };
	static const uint8_t group_mac[6] = { 0x01, 0x00, 0x5e, 0x01, 0x02, 0x03 };
	struct ip_extra x = { .options = router_alert, .options_len = 4 };
	struct conv c = conv_make(s, 4, 2, 1, 1, 0);
	uint8_t msg[8] = { 0x16, 0, 0, 0, 239, 1, 2, 3 };

	ipv4_addr(c.end[1].ip, 239, 1, 2, 3);
	memcpy(c.end[1].mac, group_mac, 6);
	put16(msg + 2, csum_fold(csum_add(0, msg, sizeof msg)));
	send_ip(s, &c, 0, msg, sizeof msg, &x);
}

static void kind_mixed(struct scene *s, const struct options *o)
{
	struct conv t = conv_make(s, 4, 6, 1, 2, 80);
	struct conv icmp = conv_make(s, 4, 1, 1, 2, 0);
	struct conv dns = conv_make(s, 4, 17, 1, 53, 53);
	struct conv frag = conv_make(s, 4, 17, 1, 2, 9999);

	(void)o;
	icmp.end[0].port = 0;
	arp_exchange(s, &t);
	tcp_handshake(s, &t);
	icmp_ping(s, &icmp);
	tcp_exchange(s, &t, NULL);
	dns_exchange(s, &dns, "www.example.com");
	udp_fragmented(s, &frag);
	igmp_report(s);
	tcp_teardown(s, &t);
}

/* The small session the link-type kinds (sll, sll2, raw, null) share. */
static void kind_session(struct scene *s, const struct options *o)
{
	struct conv c = conv_make(s, 4, 6, 1, 2, 80);

	(void)o;
	tcp_session(s, &c, 1);
}

static void kind_empty(struct scene *s, const struct options *o)
{
	(void)s, (void)o;
}

/* The same UDP 5-tuple twice, three exchanges each, GAP seconds apart. */
static void kind_idle(struct scene *s, const struct options *o)
{
	struct conv c = conv_make(s, 4, 17, 1, 53, 53);

	for (int burst = 0; burst < 2; burst++) {
		for (int i = 0; i < 3; i++)
			dns_exchange(s, &c, "www.example.com");
		s->now_ns += o->gap_s * NS_PER_S;
	}
}

/* ---------------------------------------------------------------- bulk */

/* A bulk flow is a TCP conversation with a planned number of data segments;
 * each step sends its next packet. */
struct bulk_flow {
	struct conv c;
	int state;          /* index into the handshake, data, teardown script */
	uint32_t data_left;
};

enum { B_SYN, B_SYNACK, B_ACK, B_DATA, B_FIN1, B_FIN2, B_FIN3, B_DONE };

static const uint16_t server_ports[] = { 80, 443, 443, 443, 22, 25, 8080, 993, 3306, 5222 };

static void bulk_new_flow(struct scene *s, struct bulk_flow *f)
{
	uint64_t r = splitmix64(&s->seed);
	double u = (double)(splitmix64(&s->seed) >> 11) / 9007199254740992.0;

	f->c = conv_make(s, 4, 6, 0, 0, server_ports[r % 10]);
	mac_addr(f->c.end[0].mac, (uint16_t)(r >> 8));
	mac_addr(f->c.end[1].mac, 0xfffe); /* the gateway */
	ipv4_addr(f->c.end[0].ip, 10, (uint8_t)(r >> 16), (uint8_t)(r >> 24), (uint8_t)(r >> 32 | 1));
	ipv4_addr(f->c.end[1].ip, 192, 168, (uint8_t)(r >> 40), (uint8_t)(r >> 48 | 1));
	f->state = B_SYN;
	/* Log-uniform in [1, 200]: many mice, a few elephants, and short enough
	 * that flows keep closing and opening at any concurrency the bench uses. */
	f->data_left = (uint32_t)exp(u * log(200.0));
}

/* A data step: the client owes an ACK after two server segments; otherwise the
 * server sends (mostly full segments) or, one time in five, the client asks. */
static void bulk_data_step(struct scene *s, struct bulk_flow *f, const uint8_t *pool, size_t pool_len)
{
	uint32_t r = rng_below(&s->seed, 100);
	size_t n;

	if (f->c.unacked >= 2) {
		tcp_send(s, &f->c, 0, TH_ACK, NULL, 0);
		f->c.unacked = 0;
		return;
	}
	if (r < 20) {
		n = 40 + rng_below(&s->seed, 500);
		tcp_send(s, &f->c, 0, TH_PSH | TH_ACK, pool + rng_below(&s->seed, (uint32_t)(pool_len - MSS)), n);
	} else {
		n = r < 70 ? MSS : 1 + rng_below(&s->seed, MSS);
		tcp_send(s, &f->c, 1, n == MSS ? TH_ACK : TH_PSH | TH_ACK,
			pool + rng_below(&s->seed, (uint32_t)(pool_len - MSS)), n);
		f->c.unacked++;
	}
	f->data_left--;
}

static void bulk_step(struct scene *s, struct bulk_flow *f, const uint8_t *pool, size_t pool_len)
{
	switch (f->state) {
	case B_SYN: tcp_send(s, &f->c, 0, TH_SYN, NULL, 0); break;
	case B_SYNACK: tcp_send(s, &f->c, 1, TH_SYN | TH_ACK, NULL, 0); break;
	case B_ACK: tcp_send(s, &f->c, 0, TH_ACK, NULL, 0); break;
	case B_DATA:
		bulk_data_step(s, f, pool, pool_len);
		if (f->data_left > 0)
			return; /* stay in B_DATA */
		break;
	case B_FIN1: tcp_send(s, &f->c, 0, TH_FIN | TH_ACK, NULL, 0); break;
	case B_FIN2: tcp_send(s, &f->c, 1, TH_FIN | TH_ACK, NULL, 0); break;
	case B_FIN3: tcp_send(s, &f->c, 0, TH_ACK, NULL, 0); break;
	}
	if (++f->state == B_DONE)
		bulk_new_flow(s, f);
}

/* About MB megabytes of ~FLOWS concurrent flows: each packet goes to a random
 * open flow; a flow that closes is replaced by a new one. */
static void kind_bulk(struct scene *s, const struct options *o)
{
	size_t pool_len = 1 << 16, nflows = (size_t)o->flows;
	uint8_t *pool = malloc(pool_len);
	struct bulk_flow *flows = calloc(nflows, sizeof *flows);
	uint64_t target = o->mb * 1000000;

	if (!pool || !flows)
		err(EX_OSERR, "malloc");
	rng_fill(&s->seed, pool, pool_len);
	for (size_t i = 0; i < nflows; i++)
		bulk_new_flow(s, &flows[i]);
	s->pad_to = 60;
	s->step_ns = 0;
	while (s->bytes + 24 < target && s->packets < s->max_packets) {
		bulk_step(s, &flows[rng_below(&s->seed, (uint32_t)nflows)], pool, pool_len);
		s->now_ns += 1000 + rng_below(&s->seed, 19000); /* 1 to 20 us */
	}
	free(flows);
	free(pool);
}

/* ---------------------------------------------------------------- kinds table */

/* How a kind's packets reach the output. */
enum form { PCAP, CUT, GARBAGE };

struct kind {
	const char *name;
	void (*make)(struct scene *, const struct options *);
	int dlt;
	enum form form;
	uint32_t snaplen;
	int ns;              /* nanosecond file, sub-microsecond timestamps */
	const char *what;
};

static const struct kind kinds[] = {
	{ "tcp", kind_tcp, DLT_EN10MB, PCAP, 65535, 0, "IPv4 TCP session: handshake, data both ways, teardown" },
	{ "udp", kind_udp, DLT_EN10MB, PCAP, 65535, 0, "DNS-like UDP exchanges, three flows" },
	{ "ipv6", kind_ipv6, DLT_EN10MB, PCAP, 65535, 0, "TCP and UDP over IPv6, one packet with hop-by-hop" },
	{ "vlan", kind_vlan, DLT_EN10MB, PCAP, 65535, 0, "802.1Q and QinQ (0x88a8 + 0x8100) TCP/UDP" },
	{ "truncated", kind_truncated, DLT_EN10MB, PCAP, 64, 0, "snaplen 64: caplen < wirelen" },
	{ "ns", kind_tcp, DLT_EN10MB, PCAP, 65535, 1, "nanosecond pcap (magic 0xa1b23c4d), ns digits used" },
	{ "mixed", kind_mixed, DLT_EN10MB, PCAP, 65535, 0, "TCP, UDP, ICMP, ARP, 2 IPv4 fragments, IGMP" },
	{ "sll", kind_session, DLT_LINUX_SLL, PCAP, 65535, 0, "TCP session on Linux cooked v1 (113)" },
	{ "sll2", kind_session, DLT_LINUX_SLL2, PCAP, 65535, 0, "TCP session on Linux cooked v2 (276)" },
	{ "raw", kind_session, DLT_RAW, PCAP, 65535, 0, "TCP session on raw IP (101)" },
	{ "null", kind_session, DLT_NULL, PCAP, 65535, 0, "TCP session on BSD loopback (0)" },
	{ "empty", kind_empty, DLT_EN10MB, PCAP, 65535, 0, "a pcap header and no packets" },
	{ "cut", kind_tcp, DLT_EN10MB, CUT, 65535, 0, "a capture cut in the middle of its last record" },
	{ "garbage", NULL, DLT_EN10MB, GARBAGE, 65535, 0, "bytes that are not a capture" },
	{ "idle", kind_idle, DLT_EN10MB, PCAP, 65535, 0, "one UDP 5-tuple, two bursts --gap seconds apart" },
	{ "bulk", kind_bulk, DLT_EN10MB, PCAP, 65535, 0, "--mb MB of ~--flows concurrent TCP flows" },
};

static const struct kind *find_kind(const char *name)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i].name, name) == 0)
			return &kinds[i];
	return NULL;
}

/* ---------------------------------------------------------------- output */

/* Writes the kind's packets as a pcap to OUT (which the dumper closes). */
static void write_capture(const struct kind *k, struct scene *s, const struct options *o, FILE *out)
{
	int prec = s->nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO;
	pcap_t *dead = pcap_open_dead_with_tstamp_precision(s->dlt, (int)s->snaplen, (u_int)prec);

	if (!dead)
		errx(EX_SOFTWARE, "pcap_open_dead failed");
	s->dumper = pcap_dump_fopen(dead, out);
	if (!s->dumper)
		errx(EX_IOERR, "%s", pcap_geterr(dead));
	k->make(s, o);
	if (pcap_dump_flush(s->dumper) != 0)
		err(EX_IOERR, "write");
	pcap_dump_close(s->dumper);
	pcap_close(dead);
}

/* "cut": the capture in memory, its last record losing half its bytes. */
static void write_cut(const struct kind *k, struct scene *s, const struct options *o, FILE *out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	if (!mem)
		err(EX_OSERR, "open_memstream");
	write_capture(k, s, o, mem);
	if (s->packets > 0)
		len -= s->last_caplen / 2 + 1;
	if (fwrite(buf, 1, len, out) != len)
		err(EX_IOERR, "write");
	free(buf);
}

static void write_garbage(struct scene *s, FILE *out)
{
	static const char text[] = "this is not a packet capture\n";
	uint8_t noise[227];

	rng_fill(&s->seed, noise, sizeof noise);
	if (fwrite(text, 1, sizeof text - 1, out) != sizeof text - 1 ||
	    fwrite(noise, 1, sizeof noise, out) != sizeof noise)
		err(EX_IOERR, "write");
}

/* ---------------------------------------------------------------- CLI */

static const char usage_text[] =
	"usage: mkpcap KIND [-w FILE] [--seed N] [--t0 SEC[.FRAC]] [-c COUNT]\n"
	"              [--nano | --micro] [--gap SEC] [--mb N] [--flows N] [--force]\n"
	"Writes a deterministic synthetic capture (pcap) to stdout or FILE.\n"
	"  -w, --write FILE   output file ('-': stdout)\n"
	"  -s, --seed N       seed for payloads, addresses and ports (default 1)\n"
	"  -t, --t0 SEC       time of the first packet, seconds since the epoch\n"
	"                     with up to 9 decimals (default 1700000000)\n"
	"  -c, --count N      write at most N packets\n"
	"      --nano         nanosecond timestamps (kind ns does this)\n"
	"      --micro        microsecond timestamps (the default)\n"
	"      --gap SEC      idle: seconds between the two bursts (default 300)\n"
	"      --mb N         bulk: about N megabytes (default 10)\n"
	"      --flows N      bulk: about N concurrent flows (default 1000)\n"
	"      --force        write a capture to a terminal\n"
	"  -h, --help         this help;  -V, --version  the version\n"
	"Kinds:\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		fprintf(f, "  %-10s %s\n", kinds[i].name, kinds[i].what);
}

static _Noreturn void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "mkpcap: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage(stderr);
	exit(EX_USAGE);
}

static uint64_t number(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		usage_error("bad number for %s", opt);
	return v;
}

/* SEC[.FRAC] to nanoseconds, exactly (no floating point). */
static uint64_t seconds_ns(const char *s)
{
	const char *dot = strchr(s, '.');
	char whole[32];
	uint64_t ns = 0, scale = NS_PER_S / 10;

	if ((dot ? (size_t)(dot - s) : strlen(s)) >= sizeof whole)
		usage_error("bad time %s", s);
	snprintf(whole, sizeof whole, "%.*s", dot ? (int)(dot - s) : (int)strlen(s), s);
	ns = number("--t0", whole, 0, UINT32_MAX) * NS_PER_S;
	for (const char *p = dot ? dot + 1 : ""; *p; p++, scale /= 10) {
		if (*p < '0' || *p > '9' || scale == 0)
			usage_error("bad time %s", s);
		ns += (uint64_t)(*p - '0') * scale;
	}
	return ns;
}

enum { OPT_NANO = 256, OPT_MICRO, OPT_GAP, OPT_MB, OPT_FLOWS, OPT_FORCE };

static const struct option longopts[] = {
	{ "write", required_argument, NULL, 'w' },
	{ "seed", required_argument, NULL, 's' },
	{ "t0", required_argument, NULL, 't' },
	{ "count", required_argument, NULL, 'c' },
	{ "nano", no_argument, NULL, OPT_NANO },
	{ "micro", no_argument, NULL, OPT_MICRO },
	{ "gap", required_argument, NULL, OPT_GAP },
	{ "mb", required_argument, NULL, OPT_MB },
	{ "flows", required_argument, NULL, OPT_FLOWS },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

struct cli {
	const char *path;
	int force, precision; /* 0: the kind's own, 6 or 9 */
};

static void parse_options(int argc, char **argv, struct cli *cli, struct scene *s, struct options *o)
{
	int ch;

	while ((ch = getopt_long(argc, argv, "w:s:t:c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'w': cli->path = optarg; break;
		case 's': s->seed = number("--seed", optarg, 0, UINT64_MAX); break;
		case 't': s->now_ns = seconds_ns(optarg); break;
		case 'c': s->max_packets = number("--count", optarg, 0, UINT64_MAX); break;
		case OPT_NANO: cli->precision = 9; break;
		case OPT_MICRO: cli->precision = 6; break;
		case OPT_GAP: o->gap_s = number("--gap", optarg, 0, 100000000); break;
		case OPT_MB: o->mb = number("--mb", optarg, 1, 1000000); break;
		case OPT_FLOWS: o->flows = number("--flows", optarg, 1, 10000000); break;
		case OPT_FORCE: cli->force = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'V':
			printf("mkpcap (tgpt) %s\n%s\n", TGPT_VERSION, pcap_lib_version());
			exit(0);
		default: usage(stderr); exit(EX_USAGE);
		}
	}
}

static FILE *open_output(const struct cli *cli)
{
	FILE *out;

	if (!cli->path || strcmp(cli->path, "-") == 0) {
		if (isatty(STDOUT_FILENO) && !cli->force)
			errx(EX_USAGE, "refusing to write a capture to a terminal (use -w FILE or --force)");
		return stdout;
	}
	out = fopen(cli->path, "wb");
	if (!out)
		err(EX_CANTCREAT, "%s", cli->path);
	return out;
}

int main(int argc, char **argv)
{
	struct cli cli = { NULL, 0, 0 };
	struct scene s = { .seed = 1, .now_ns = 1700000000 * NS_PER_S, .step_ns = 1000000,
		.max_packets = UINT64_MAX };
	struct options o = { .mb = 10, .flows = 1000, .gap_s = 300 };
	const struct kind *k;
	FILE *out;

	parse_options(argc, argv, &cli, &s, &o);
	if (optind != argc - 1)
		usage_error("%s", optind < argc ? "one KIND, please" : "which KIND?");
	if (!(k = find_kind(argv[optind])))
		usage_error("unknown kind %s", argv[optind]);
	s.dlt = k->dlt;
	s.snaplen = k->snaplen;
	s.nano = cli.precision ? cli.precision == 9 : k->ns;
	s.ns_digits = k->ns;
	out = open_output(&cli);
	setvbuf(out, NULL, _IOFBF, 1 << 20);
	switch (k->form) {
	case PCAP:
		write_capture(k, &s, &o, out); /* the dumper closes out */
		return 0;
	case CUT: write_cut(k, &s, &o, out); break;
	case GARBAGE: write_garbage(&s, out); break;
	}
	if (fclose(out) != 0)
		err(EX_IOERR, "%s", cli.path ? cli.path : "<stdout>");
	return 0;
}
