/* grammar-fields.c: the bytes each position of a generated frame's
 * headers allows (grammar.h): link header, IPv4 and IPv6, TCP (sequence,
 * acknowledgement, flags, options), UDP and ICMP, for each direction the
 * packet may still take; checksums the headers can write at once. */
#include <string.h>

#include "grammar-private.h"

/* ------------------------------------------------------------------ link bytes */

/* A link-header byte of a direction's first packet (or of the flow's,
 * for Ethernet). */
static void link_first(const struct gram_flow *f, size_t off, struct bset *s)
{
	const uint8_t *p = f->frame;
	int ipv = f->have_first ? f->ipv : 0;
	switch (f->linktype) {
	case LT_ETHERNET:
		if (off == 6)	/* source MAC: no group address */
			for (int v = 0; v < 256; v += 2)
				bs_add(s, v);
		else if (off < 12 || off == 14 || off == 15)
			bs_all(s);	/* MACs, VLAN tag */
		else if (off == 12) {
			bs_add(s, 0x08), bs_add(s, 0x86), bs_add(s, 0x81);
		} else if (off == 16) {
			bs_add(s, 0x08), bs_add(s, 0x86);
		} else {	/* 13, 17: the type's second byte */
			bs_add(s, p[off - 1] == 0x86 ? 0xdd : 0x00);
		}
		return;
	case LT_LINUX_SLL:
		/* packet type 0..4, ARPHRD_ETHER, 6-byte address, protocol */
		if (off == 1)
			bs_range(s, 0, 4);
		else if (off == 3)
			bs_add(s, 1);
		else if (off == 5)
			bs_add(s, 6);
		else if (off >= 6 && off < 12)
			bs_all(s);
		else if (off == 14)
			ipv ? bs_add(s, ipv == 4 ? 0x08 : 0x86) : (bs_add(s, 0x08), bs_add(s, 0x86));
		else if (off == 15)
			bs_add(s, p[14] == 0x86 ? 0xdd : 0x00);
		else
			bs_add(s, 0);
		return;
	case LT_LINUX_SLL2:
		/* protocol, reserved, ifindex, ARPHRD_ETHER, packet type,
		 * address length 6, address */
		if (off == 0)
			ipv ? bs_add(s, ipv == 4 ? 0x08 : 0x86) : (bs_add(s, 0x08), bs_add(s, 0x86));
		else if (off == 1)
			bs_add(s, p[0] == 0x86 ? 0xdd : 0x00);
		else if ((off >= 4 && off < 8) || (off >= 12 && off < 18))
			bs_all(s);
		else if (off == 9)
			bs_add(s, 1);
		else if (off == 10)
			bs_range(s, 0, 4);
		else if (off == 11)
			bs_add(s, 6);
		else
			bs_add(s, 0);
		return;
	default: {	/* BSD loopback: the address family, host or network order */
		size_t at = f->linktype == LT_NULL ? 0 : 3;
		if (off != at) {
			bs_add(s, 0);
		} else {
			if (ipv != 6)
				bs_add(s, 2);
			if (ipv != 4)
				bs_add(s, 10), bs_add(s, 24), bs_add(s, 28), bs_add(s, 30);
		}
		return;
	}
	}
}

static void link_byte(const struct gram_flow *f, int d, size_t off, struct bset *s)
{
	if (f->dir[d].link_known)
		bs_add(s, f->dir[d].link[off]);
	else
		link_first(f, off, s);
}

/* ------------------------------------------------------------------ IP bytes */

/* Frame bytes the rest of a TCP handshake takes after the packet at hand
 * (its smallest packets, with their tokens), so that a flow within its
 * budget completes it. */
static size_t handshake_reserve(size_t l3, int ipv, int packets)
{
	return (size_t)packets * (1 + FIXED + l3 + (ipv == 4 ? 20 : 40) + 20);
}

/* The IP length field's range (IPv4 total, IPv6 payload length); the
 * values of a TCP direction after its FIN in vals (n of them), else -1. */
static int ip_length(const struct gram *g, const struct shape *S, int d, uint64_t *lo,
	uint64_t *hi, uint64_t *vals)
{
	const struct gram_flow *f = g->f;
	size_t l3 = S->l3, hdr = S->ipv == 4 ? 20 : 40;
	int left = f->have_first && f->proto == PROTO_TCP && !f->opaque && f->tcp == T_SYN_SENT;
	size_t room = frame_room(g, handshake_reserve(l3, S->ipv, left));	/* the ACK after */
	size_t most = room > l3 + hdr ? room - l3 - hdr : 0;	/* bytes after the IP header */
	if (most > (S->ipv == 4 ? 65535 - 20 : 65535))
		most = S->ipv == 4 ? 65535 - 20 : 65535;
	size_t least = f->have_first ? min_l4(f->proto) : 8;
	if (f->opaque)
		least = 0;
	size_t shift = S->ipv == 4 ? hdr : 0;	/* IPv4's field counts the header */
	*lo = least + shift;
	*hi = most + shift;
	if (f->have_first && f->proto == PROTO_TCP && !f->opaque && f->dir[d].fin) {
		int n = 0;	/* no data after FIN: a header of 20 to 60 bytes */
		for (size_t t = 20; t <= 60 && t <= most; t += 4)
			vals[n++] = t + shift;
		return n;
	}
	return -1;
}

static uint64_t addr_sum(const uint8_t *a, const uint8_t *b, size_t len)
{
	return pkt_sum16(b, len, pkt_sum16(a, len, 0));
}

/* The IPv4 header checksum of a later packet of direction d: bytes 0..9
 * as fed, addresses the direction's. */
static uint16_t ip4_checksum(const struct gram_flow *f, size_t l3, int d)
{
	uint64_t sum = pkt_sum16(f->frame + l3, 10, addr_sum(f->addr[d], f->addr[!d], 4));
	return (uint16_t)~pkt_fold16(sum);
}

/* Whether another flow uses the endpoint (addr, peer, port). */
static int endpoint_taken(const struct gram *g, const struct shape *S, const uint8_t *addr,
	const uint8_t *peer, uint16_t port)
{
	const struct gram_flow *f = g->f;
	struct gram_endpoint e;
	memset(&e, 0, sizeof e);
	size_t len = S->ipv == 4 ? 4 : 16;
	e.ip_version = (uint8_t)S->ipv;
	e.proto = (uint8_t)S->proto;
	if (f->linktype == LT_ETHERNET && S->l3 == 18) {
		e.n_vlan = 1;
		e.vlan = (uint16_t)(be_get(f->frame + 14, 2) & 0x0fff);
	}
	e.port = port;
	memcpy(e.addr, addr, len);
	memcpy(e.peer, peer, len);
	return g->cfg.taken(g->cfg.taken_user, &e);
}

/* A first packet's key byte: the values whose endpoint no other flow has. */
void mask_taken(const struct gram *g, const struct shape *S, size_t off, struct bset *s)
{
	uint8_t addr[16], peer[16];
	size_t len = S->ipv == 4 ? 4 : 16, src = S->l3 + (S->ipv == 4 ? 12 : 8);
	struct bset keep;
	bs_clear(&keep);
	memcpy(addr, g->f->frame + src, len);
	memcpy(peer, g->f->frame + src + len, len);
	for (int v = 0; v < 256; v++) {
		if (!bs_has(s, v))
			continue;
		int taken;
		if (off == S->l4 + 1) {	/* the source port's low byte */
			uint16_t port = (uint16_t)(g->f->frame[S->l4] << 8 | v);
			taken = endpoint_taken(g, S, addr, peer, port);
		} else {	/* ICMP: the destination address's last byte */
			peer[len - 1] = (uint8_t)v;
			taken = endpoint_taken(g, S, addr, peer, 0);
		}
		if (!taken)
			bs_add(&keep, v);
	}
	if (!bs_empty(&keep))	/* every value taken: a collision beats no flow */
		*s = keep;
}

/* Byte o of the source and destination addresses (alen bytes each): free
 * in a first packet, direction d's after it. */
static void addr_byte(const struct gram_flow *f, int d, size_t o, size_t alen, struct bset *s)
{
	if (!f->have_first)
		bs_all(s);
	else
		bs_add(s, o < alen ? f->addr[d][o] : f->addr[!d][o - alen]);
}

/* The IP length field's byte k (0 high, 1 low) for direction d. */
static void length_byte(const struct gram *g, const struct shape *S, int d, size_t field, int k,
	struct bset *s)
{
	uint64_t lo, hi, vals[16];
	uint64_t pre = be_get(g->f->frame + field, k);
	int n = ip_length(g, S, d, &lo, &hi, vals);
	if (n < 0) {
		bs_field_range(s, lo, hi, 2, k, pre);
		dns_length(g->f, S, field, k, s);
		return;
	}
	for (int i = 0; i < n; i++)
		if (k == 0 || vals[i] >> 8 == pre)
			bs_field_value(s, vals[i], 2, k);
}


/* A first packet's protocol: those whose smallest header fits the length
 * (len: bytes after the IP header), TCP when the handshake's two other
 * packets fit after it too and the destination is no Ethernet group
 * address (whose flows go one way). */
static void first_protocol(const struct gram *g, const struct shape *S, size_t len, struct bset *s)
{
	int ipv = S->ipv;
	size_t frame = S->l3 + (ipv == 4 ? 20 : 40) + len;
	int group = g->f->linktype == LT_ETHERNET && (g->f->frame[0] & 1);	/* one-way */
	if (len >= 20 && !group && frame <= frame_room(g, handshake_reserve(S->l3, ipv, 2)))
		bs_add(s, PROTO_TCP);
	if (len >= 8) {
		bs_add(s, PROTO_UDP);
		bs_add(s, ipv == 4 ? PROTO_ICMP : PROTO_ICMPV6);
	}
}

static void ip4_byte(const struct gram *g, const struct shape *S, int d, size_t off, struct bset *s)
{
	const struct gram_flow *f = g->f;
	const struct dir *D = &f->dir[d];
	const uint8_t *p = f->frame;
	size_t l3 = S->l3, o = off - l3;
	switch (o) {
	case 0: bs_add(s, 0x45); return;	/* version 4, no options */
	case 1: bs_all(s); return;	/* TOS */
	case 2:
	case 3: length_byte(g, S, d, l3 + 2, (int)(o - 2), s); return;
	case 4:
	case 5:
		if (!D->seen)
			bs_all(s);
		else if (D->id_zero)
			bs_add(s, 0);
		else
			bs_field_window(s, D->id + 1u, GRAM_ID_STEP, 2, (int)(o - 4),
				be_get(p + l3 + 4, (int)(o - 4)));
		return;
	case 6:
		if (D->seen)
			bs_add(s, D->df);
		else
			bs_add(s, 0), bs_add(s, 0x40);	/* DF or not; never a fragment */
		return;
	case 7: bs_add(s, 0); return;
	case 8: D->seen ? bs_add(s, D->ttl) : bs_range(s, 1, 255); return;
	case 9:
		if (f->have_first)
			bs_add(s, f->proto);
		else
			first_protocol(g, S, be_get(p + l3 + 2, 2) - 20, s);
		return;
	case 10:
	case 11:
		if (f->have_first)	/* (A): everything else is known */
			bs_field_value(s, ip4_checksum(f, l3, d), 2, (int)(o - 10));
		else
			bs_all(s);	/* (C): a placeholder */
		return;
	default: addr_byte(f, d, o - 12, 4, s); return;
	}
}

static void ip6_byte(const struct gram *g, const struct shape *S, int d, size_t off, struct bset *s)
{
	const struct gram_flow *f = g->f;
	const struct dir *D = &f->dir[d];
	size_t l3 = S->l3, o = off - l3;
	switch (o) {
	case 0: bs_range(s, 0x60, 0x6f); return;	/* version 6, traffic class */
	case 1:
		if (!D->seen)
			bs_all(s);
		else	/* traffic class free, the flow label the direction's */
			for (int tc = 0; tc < 16; tc++)
				bs_add(s, tc << 4 | (int)(D->label >> 16 & 0xf));
		return;
	case 2:
	case 3:
		D->seen ? bs_add(s, (int)(D->label >> (8 * (3 - o)) & 0xff)) : bs_all(s);
		return;
	case 4:
	case 5: length_byte(g, S, d, l3 + 4, (int)(o - 4), s); return;
	case 6:
		if (f->have_first)
			bs_add(s, f->proto);
		else
			first_protocol(g, S, be_get(f->frame + l3 + 4, 2), s);
		return;
	case 7: D->seen ? bs_add(s, D->ttl) : bs_range(s, 1, 255); return;
	default: addr_byte(f, d, o - 8, 16, s); return;
	}
}

/* ------------------------------------------------------------------ TCP */

/* The sequence number direction d sends (1), or 0 when it is free. */
int tcp_seq(const struct gram_flow *f, int d, uint32_t *seq)
{
	const struct dir *me = &f->dir[d], *peer = &f->dir[!d];
	if (f->tcp == T_NONE || f->tcp == T_SYN_SENT)
		return 0;	/* an initial sequence number */
	if (me->known)
		*seq = me->nxt;
	else if (peer->acked)
		*seq = peer->ack;	/* unsynchronised: where the peer's ack points */
	else
		return 0;
	return 1;
}

/* The acknowledgement numbers direction d may send: span values from lo. */
void tcp_ack(const struct gram_flow *f, int d, uint32_t *lo, uint32_t *span)
{
	const struct dir *me = &f->dir[d], *peer = &f->dir[!d];
	*span = 1;
	switch (f->tcp) {
	case T_NONE: *lo = 0; return;	/* a SYN acknowledges nothing */
	case T_SYN_SENT: *lo = f->dir[0].nxt; return;
	case T_SYN_ACKED: *lo = f->dir[1].nxt; return;
	default: break;
	}
	if (!peer->known) {
		*lo = me->acked ? me->ack : 0;
	} else if (!me->acked || seq_diff(peer->nxt, me->ack) < 0) {
		*lo = peer->nxt;
	} else {	/* from its last acknowledgement to all the peer sent */
		*lo = me->ack;
		*span = peer->nxt - me->ack + 1;
	}
}

/* The flags direction d may send with a payload of pay bytes. */
void tcp_flags(const struct gram_flow *f, int d, size_t pay, struct bset *s)
{
	if (f->tcp == T_NONE) {
		for (int ecn = 0; ecn < 4; ecn++)
			bs_add(s, TCP_SYN | ecn << 6);
		return;
	}
	if (f->tcp == T_SYN_SENT) {
		bs_add(s, TCP_SYN | TCP_ACK);
		bs_add(s, TCP_SYN | TCP_ACK | TCP_ECE);
		if (pay == 0)
			bs_add(s, TCP_RST | TCP_ACK);
		return;
	}
	int optional = TCP_CWR | TCP_ECE | (pay ? TCP_PSH : 0) | (f->dir[d].fin ? 0 : TCP_FIN);
	for (int v = 0; v < 256; v++)
		if ((v & ~optional) == TCP_ACK)
			bs_add(s, v);
	if (pay == 0) {
		bs_add(s, TCP_RST);
		bs_add(s, TCP_RST | TCP_ACK);
	}
}

enum { OPT_EOL = 0, OPT_NOP = 1, OPT_MSS = 2, OPT_WS = 3, OPT_SACK_OK = 4, OPT_SACK = 5,
	OPT_TS = 8 };

/* A TCP option byte at off (options from `from` to `to`): the walk over
 * those before it says whether it starts an option, is its length or its
 * data. */
static void tcp_option(const uint8_t *p, size_t from, size_t to, size_t off, int syn,
	struct bset *s)
{
	unsigned used = 0;
	size_t at = from;
	while (at < off) {
		int kind = p[at];
		if (kind == OPT_EOL) {	/* then zeros to the end */
			bs_add(s, 0);
			return;
		}
		if (kind == OPT_NOP) {
			at++;
			continue;
		}
		used |= 1u << kind;
		if (at + 1 == off) {	/* its length */
			if (kind == OPT_SACK) {
				for (size_t len = 10; len <= 34 && at + len <= to; len += 8)
					bs_add(s, (int)len);
			} else {
				bs_add(s, kind == OPT_MSS ? 4 : kind == OPT_WS ? 3 : kind == OPT_SACK_OK ? 2
					: 10);
			}
			return;
		}
		size_t len = p[at + 1];
		if (off < at + len) {	/* its data */
			if (kind == OPT_WS)
				bs_range(s, 0, 14);
			else
				bs_all(s);
			return;
		}
		at += len;
	}
	size_t left = to - off;	/* an option starts here */
	bs_add(s, OPT_EOL);
	bs_add(s, OPT_NOP);
	if (syn) {
		if (left >= 4 && !(used >> OPT_MSS & 1))
			bs_add(s, OPT_MSS);
		if (left >= 3 && !(used >> OPT_WS & 1))
			bs_add(s, OPT_WS);
		if (left >= 2 && !(used >> OPT_SACK_OK & 1))
			bs_add(s, OPT_SACK_OK);
	} else if (left >= 10 && !(used >> OPT_SACK & 1)) {
		bs_add(s, OPT_SACK);
	}
	if (left >= 10 && !(used >> OPT_TS & 1))
		bs_add(s, OPT_TS);
}

/* The pseudo header's sum of the transport segment (RFC 793, 8200). */
uint64_t pseudo_sum(const struct gram_flow *f, const struct shape *S, int proto)
{
	size_t alen = S->ipv == 4 ? 4 : 16, src = S->l3 + (S->ipv == 4 ? 12 : 8);
	size_t len = S->end - S->l4;
	return pkt_sum16(f->frame + src, 2 * alen, 0) + (uint64_t)proto + (len & 0xffff) + (len >> 16);
}

/* A checksum written over everything before it (the bytes after it are
 * all 0): (A). UDP writes 0 as ffff. */
static uint16_t written_checksum(const struct gram_flow *f, const struct shape *S, size_t field,
	int pseudo)
{
	uint64_t sum = pkt_sum16(f->frame + S->l4, field - S->l4, pseudo ? pseudo_sum(f, S, pseudo) : 0);
	uint16_t c = (uint16_t)~pkt_fold16(sum);
	return c == 0 && S->proto == PROTO_UDP ? 0xffff : c;
}

static void tcp_byte(const struct gram *g, const struct shape *S, int d, size_t off, struct bset *s)
{
	const struct gram_flow *f = g->f;
	const uint8_t *p = f->frame;
	size_t l4 = S->l4, o = off - l4, len = S->end - l4;
	uint32_t v, span;
	if (o < 4) {
		if (f->have_first) {
			bs_field_value(s, f->port[o < 2 ? d : !d], 2, (int)(o & 1));
		} else {
			bs_all(s);
			if ((o & 1) && p[off - 1] == 0 && !dns_tcp_len_ok(len))
				s->w[0] &= ~(1ull << 53);	/* port 53 only with room for DNS */
		}
	} else if (o < 8) {
		if (tcp_seq(f, d, &v))
			bs_field_value(s, v, 4, (int)(o - 4));
		else
			bs_all(s);
	} else if (o < 12) {
		tcp_ack(f, d, &v, &span);
		bs_field_window(s, v, span, 4, (int)(o - 8), be_get(p + l4 + 8, (int)(o - 8)));
	} else if (o == 12) {	/* data offset; NS 0 */
		size_t most = len / 4 < 15 ? len / 4 : 15;
		int after_fin = f->have_first && f->dir[d].fin, dns = is_dns(f, S, off);
		for (size_t doff = after_fin ? most : 5; doff <= most; doff++)
			if (!dns || dns_tcp_payload_ok(len - 4 * doff))
				bs_add(s, (int)(doff << 4));
	} else if (o == 13) {
		tcp_flags(f, d, S->end - S->pay, s);
	} else if (o == 14 || o == 15) {
		bs_all(s);	/* window */
	} else if (o == 16 || o == 17) {
		if (S->pay == l4 + 20 && S->end == S->pay)	/* (A) */
			bs_field_value(s, written_checksum(f, S, l4 + 16, PROTO_TCP), 2, (int)(o - 16));
		else
			bs_all(s);
	} else if (o < 20) {
		bs_add(s, 0);	/* urgent pointer */
	} else if (off < S->pay) {
		tcp_option(p, l4 + 20, S->pay, off, (p[l4 + 13] & TCP_SYN) != 0, s);
	} else if (is_dns(f, S, off)) {	/* the message's length, then the message */
		if (off < S->pay + 2)
			bs_field_value(s, S->end - S->pay - 2, 2, (int)(off - S->pay));
		else
			dns_byte(g, S, off - dns_start(S), s);
	} else {
		bs_all(s);
	}
}

static void udp_byte(const struct gram *g, const struct shape *S, int d, size_t off, struct bset *s)
{
	const struct gram_flow *f = g->f;
	size_t l4 = S->l4, o = off - l4;
	if (o < 4) {
		if (f->have_first) {
			bs_field_value(s, f->port[o < 2 ? d : !d], 2, (int)(o & 1));
		} else {
			bs_all(s);
			if ((o & 1) && !dns_size_ok(S->end - l4 - 8))
				for (int v = 0; v < 256; v++)	/* no DNS port: no room for DNS */
					if (dns_port((uint64_t)f->frame[off - 1] << 8 | (uint64_t)v))
						s->w[v >> 6] &= ~(1ull << (v & 63));
		}
	} else if (o < 6) {
		bs_field_value(s, S->end - l4, 2, (int)(o - 4));
	} else if (o < 8) {
		if (S->end == l4 + 8)	/* (A) */
			bs_field_value(s, written_checksum(f, S, l4 + 6, PROTO_UDP), 2, (int)(o - 6));
		else if (o == 7 && S->ipv == 6 && f->frame[l4 + 6] == 0)
			bs_range(s, 1, 255);	/* 0 means none, which IPv6 forbids */
		else
			bs_all(s);
	} else if (is_dns(f, S, off)) {
		dns_byte(g, S, off - dns_start(S), s);
	} else {
		bs_all(s);
	}
}

static void icmp_byte(const struct gram *g, const struct shape *S, size_t off, struct bset *s)
{
	const struct gram_flow *f = g->f;
	size_t l4 = S->l4, o = off - l4;
	int request = S->ipv == 4 ? 8 : 128, reply = S->ipv == 4 ? 0 : 129;
	int type = o > 0 ? f->frame[l4] : -1;
	int echo = type == request || type == reply;
	if (o == 0) {
		bs_add(s, request);
		bs_add(s, reply);
		if (f->have_first)
			bs_add(s, f->icmp_type);
	} else if (o == 1) {
		bs_add(s, echo || !f->have_first ? 0 : f->icmp_code);
	} else if ((o == 4 || o == 5) && echo && f->have_first && f->icmp_echo) {
		bs_field_value(s, f->icmp_id, 2, (int)(o - 4));
	} else {
		bs_all(s);	/* checksum (B), identifier, sequence, data */
	}
}

/* ------------------------------------------------------------------ one frame byte */

/* The bytes direction d allows at frame offset off (the shape S of the
 * bytes before it). */
void frame_set(const struct gram *g, const struct shape *S, int d, size_t off, struct bset *s)
{
	const struct gram_flow *f = g->f;
	bs_clear(s);
	if (S->l3 == UNKNOWN || off < S->l3) {
		link_byte(f, d, off, s);
	} else if (!S->ipv) {	/* raw IP: the version */
		if (f->have_first) {
			f->ipv == 4 ? bs_add(s, 0x45) : bs_range(s, 0x60, 0x6f);
		} else {
			if (f->linktype != LT_IPV6)
				bs_add(s, 0x45);
			if (f->linktype != LT_IPV4)
				bs_range(s, 0x60, 0x6f);
		}
	} else if (off < S->l4) {
		(S->ipv == 4 ? ip4_byte : ip6_byte)(g, S, d, off, s);
	} else if (S->end != UNKNOWN && off < S->end) {
		if (f->opaque || !has_grammar(S->ipv, S->proto))
			bs_all(s);
		else if (S->proto == PROTO_TCP)
			tcp_byte(g, S, d, off, s);
		else if (S->proto == PROTO_UDP)
			udp_byte(g, S, d, off, s);
		else
			icmp_byte(g, S, off, s);
	}
}
