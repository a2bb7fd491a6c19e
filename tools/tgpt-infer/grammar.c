/* grammar.c: the decoding grammar of grammar.h: where each position of a
 * flow is (link header, IP header, transport header, payload), the bytes
 * each still-possible direction allows there, the checksums, and the
 * flow's state after each packet (habits, TCP sequence and stage). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "grammar.h"
#include "packet.h"

#define TIME_TOKENS 8
#define FIXED 9			/* link type and time tokens after START */
#define LINK_MAX 24		/* longest link header: cooked v2 (20), Ethernet + tag (18) */
#define UNKNOWN ((size_t)-1)
#define NS_PER_S 1e9
#define TIME_MARGIN_S 1e-3	/* pcap time stamps round (microseconds) */

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd
#define ETH_VLAN 0x8100
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define TCP_PSH 0x08
#define TCP_ECE 0x40
#define TCP_CWR 0x80

/* ------------------------------------------------------------------ byte sets */

struct bset {
	uint64_t w[4];
};

static void bs_clear(struct bset *s)
{
	memset(s, 0, sizeof *s);
}

static void bs_add(struct bset *s, int v)
{
	s->w[v >> 6] |= 1ull << (v & 63);
}

static int bs_has(const struct bset *s, int v)
{
	return v >= 0 && v < 256 && (s->w[v >> 6] >> (v & 63) & 1);
}

/* Adds lo .. hi (inclusive), a word at a time. */
static void bs_range(struct bset *s, int lo, int hi)
{
	if (lo > hi)
		return;
	for (int w = lo >> 6; w <= hi >> 6; w++) {
		int a = w == lo >> 6 ? lo & 63 : 0, b = w == hi >> 6 ? hi & 63 : 63;
		uint64_t upto = b == 63 ? ~0ull : (1ull << (b + 1)) - 1;
		s->w[w] |= upto & ~((1ull << a) - 1);
	}
}

static void bs_one(struct bset *s, int v)
{
	bs_clear(s);
	bs_add(s, v);
}

static void bs_all(struct bset *s)
{
	memset(s->w, 0xff, sizeof s->w);
}

static int bs_empty(const struct bset *s)
{
	return !(s->w[0] | s->w[1] | s->w[2] | s->w[3]);
}

/* The only member, or -1 when there are none or several. */
static int bs_only(const struct bset *s)
{
	int v = -1;
	for (int i = 0; i < 4; i++) {
		if (!s->w[i])
			continue;
		if (v >= 0 || (s->w[i] & (s->w[i] - 1)))
			return -1;
		v = i * 64 + __builtin_ctzll(s->w[i]);
	}
	return v;
}

/* The set as a mask of 256 bytes, 1 for a member (a byte of bits at a
 * time: masks are filled at every sampled position). */
static void bs_to_mask(const struct bset *s, unsigned char *mask)
{
	static uint64_t spread[256];	/* byte i of spread[b]: bit i of b */
	if (!spread[255])
		for (int b = 0; b < 256; b++)
			for (int i = 0; i < 8; i++)
				spread[b] |= (uint64_t)(b >> i & 1) << (8 * i);
	if (!~(s->w[0] & s->w[1] & s->w[2] & s->w[3])) {
		memset(mask, 1, 256);	/* a free byte, the commonest */
		return;
	}
	for (int w = 0; w < 4; w++)
		for (int k = 0; k < 8; k++) {
			uint64_t bytes = spread[s->w[w] >> (8 * k) & 0xff];
			for (int i = 0; i < 8; i++)
				mask[w * 64 + k * 8 + i] = (unsigned char)(bytes >> (8 * i));
		}
}

/* Byte k (0: most significant) of an n-byte big-endian field whose first k
 * bytes make pre, for a value in [lo, hi]: the bytes some completion
 * within the range allows. */
static void bs_field_range(struct bset *s, uint64_t lo, uint64_t hi, int n, int k, uint64_t pre)
{
	if (lo > hi)
		return;
	int rest = 8 * (n - 1 - k);
	uint64_t base = pre << 8, a = lo >> rest, b = hi >> rest;
	if (b < base || a > base + 255)
		return;
	bs_range(s, a > base ? (int)(a - base) : 0, b < base + 255 ? (int)(b - base) : 255);
}

/* The same for a value that is v (a forced field). */
static void bs_field_value(struct bset *s, uint64_t v, int n, int k)
{
	bs_add(s, (int)(v >> (8 * (n - 1 - k)) & 0xff));
}

/* Values from lo up (modulo 2^(8n)) by 1 to span (a counter or a window). */
static void bs_field_window(struct bset *s, uint64_t lo, uint64_t span, int n, int k, uint64_t pre)
{
	uint64_t top = n == 8 ? UINT64_MAX : (1ull << (8 * n)) - 1;
	lo &= top;
	uint64_t hi = lo + span - 1;
	if (span == 0)
		return;
	if (hi > top || hi < lo) {	/* wraps */
		bs_field_range(s, lo, top, n, k, pre);
		bs_field_range(s, 0, hi & top, n, k, pre);
	} else {
		bs_field_range(s, lo, hi, n, k, pre);
	}
}

static uint64_t be_get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int32_t seq_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

/* ------------------------------------------------------------------ state */

/* What one direction repeats, and where its TCP sequence is. */
struct dir {
	int seen;		/* it has sent a packet: its habits hold */
	int link_known;
	uint8_t link[LINK_MAX];	/* its link header */
	uint8_t ttl, df;	/* TTL or hop limit; IPv4 byte 6 */
	uint16_t id;		/* its last IPv4 ID */
	int id_zero;		/* its IDs are all 0 */
	uint32_t label;		/* IPv6 flow label (20 bits) */
	int known;		/* nxt holds where its data so far ends */
	uint32_t nxt;
	int acked;		/* ack holds its highest acknowledgement */
	uint32_t ack;
	int fin, fin_acked;	/* sent its FIN (ending at fin_next); the peer acked it */
	uint32_t fin_next;
};

enum tcp_stage { T_NONE, T_SYN_SENT, T_SYN_ACKED, T_OPEN, T_CLOSED };

/* A checksum of the packet being fed: [0] IPv4 header, [1] transport. */
enum cs_state { CS_NONE, CS_WRITTEN, CS_OPEN };
struct csum {
	enum cs_state state;
	size_t field;		/* frame offset of its two bytes */
	size_t end;		/* the end of what it covers */
	int generated;		/* a byte from the field on was generated */
	int saved;		/* the caller saved the state before the field */
};

/* Where the layers of the packet being fed are (from its bytes so far);
 * UNKNOWN (or 0 for ipv, -1 for proto) until the bytes say. */
struct shape {
	size_t l3, l4, end, pay;
	int ipv, proto;
};

/* Where a DNS message (a UDP payload to or from port 53, 5353 or 5355)
 * is after its bytes so far, for dns_set. */
enum dns_part { D_HEADER, D_NAME, D_QFIX, D_RRFIX, D_RDATA, D_END };
enum dns_rdata { RD_BYTES, RD_NAME, RD_MX, RD_TXT };
#define DNS_TARGETS 32
struct dns_walk {
	size_t at, len;		/* message bytes walked; the message's length */
	enum dns_part part;
	uint16_t count[4];	/* questions, answers, authority, additional */
	int section;
	uint32_t left;		/* items of the section after the current one */
	size_t name_start;	/* the current name's first byte */
	size_t name_end;	/* an rdata name's end (exact), 0: an item's name */
	int label_left;		/* bytes of the current label still to come */
	int pointer;		/* after a pointer's first byte */
	size_t fix_start;	/* first byte of the fixed part after a name */
	uint16_t type, rdlen;
	size_t rdata_end;
	enum dns_rdata rdata;
	int txt_left;		/* bytes of the current TXT string still to come */
	uint16_t target[DNS_TARGETS];	/* labels of the names so far */
	int n_target, n_done;	/* of them; those of finished names (a pointer's) */
	struct bset sizes;	/* the sizes the current name may take in all */
};

struct gram_flow {
	size_t n;		/* tokens fed */
	long packets;		/* whole packets */
	const char *stop;	/* why the flow goes no further */
	int ended;		/* END fed */
	/* the flow, from its first packet */
	int have_first;
	int lt_token;
	uint32_t linktype;
	size_t link_len;	/* link header, tags included */
	int ipv, proto, opaque;	/* opaque: a protocol without a grammar (a prompt's) */
	uint8_t addr[2][16];	/* [0] the first packet's source */
	uint16_t port[2];
	uint8_t n_vlan;
	uint16_t vlan;
	int icmp_echo;
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id;
	struct dir dir[2];
	enum tcp_stage tcp;
	int closing;		/* both FINs sent */
	int64_t closing_ns;	/* time since the second FIN */
	/* the packet being fed */
	int open;		/* START fed, not yet whole */
	size_t start;		/* token index of its START */
	int pos;		/* tokens after START */
	int lt_pos;		/* its link-type token */
	uint8_t time[TIME_TOKENS];
	uint8_t *frame;
	size_t off, cap;
	int cand;		/* bit per direction still possible */
	int given, gen;		/* some of its tokens were given / generated */
	struct csum cs[2];
	int fix_valid;		/* fix-up bytes for the packet's last two */
	uint8_t fix[2];
	int patch;		/* gram_patch's answer is ready */
	size_t patch_at;
	uint8_t patch_bytes[2];
	/* gram_next's sets per direction, for gram_feed */
	struct bset set[2];
	int set_ok;
	int save_pending;	/* gram_next asked for a save before this token */
	int started;		/* a START was fed (what came before were labels) */
	struct dns_walk dns;	/* the packet's DNS message, walked this far */
};

static void finish_packet(struct gram *g);

void gram_cfg_default(struct gram_cfg *c)
{
	*c = (struct gram_cfg){
		.link_token = -1, .max_tokens = 12032, .max_frame = 65535 + 64,
		.max_interval = 120.0, .linger = 2.0,
	};
}

void gram_init(struct gram *g, const struct gram_cfg *c)
{
	g->cfg = *c;
	g->f = xcalloc(1, sizeof *g->f);
	g->f->cap = c->max_frame + 1;
	g->f->frame = xmalloc(g->f->cap);
	gram_reset(g);
}

void gram_free(struct gram *g)
{
	if (g->f)
		free(g->f->frame);
	free(g->f);
	g->f = NULL;
}

void gram_reset(struct gram *g)
{
	struct gram_flow *f = g->f;
	uint8_t *frame = f->frame;
	size_t cap = f->cap;
	memset(f, 0, sizeof *f);
	f->frame = frame;
	f->cap = cap;
}

size_t gram_tokens(const struct gram *g)
{
	return g->f->n;
}

long gram_packets(const struct gram *g)
{
	return g->f->packets;
}

const char *gram_stopped(const struct gram *g)
{
	return g->f->stop;
}

/* ------------------------------------------------------------------ link types */

/* The link type of a link-type token (UINT32_MAX: the escape without a
 * link type given). */
static uint32_t token_linktype(const struct gram_cfg *c, int tok)
{
	if (tok != 255)
		return (uint32_t)tok;
	return c->escape_linktype ? c->escape_linktype : UINT32_MAX;
}

/* The link header's length without tags (0 for raw IP). */
static size_t link_base(uint32_t lt)
{
	switch (lt) {
	case LT_ETHERNET: return 14;
	case LT_LINUX_SLL: return 16;
	case LT_LINUX_SLL2: return 20;
	case LT_NULL:
	case LT_LOOP: return 4;
	default: return 0;
	}
}

/* ------------------------------------------------------------------ shape */

static size_t min_l4(int proto)
{
	switch (proto) {
	case PROTO_TCP: return 20;
	case PROTO_UDP:
	case PROTO_ICMP:
	case PROTO_ICMPV6: return 8;
	default: return 0;
	}
}

/* The IP version a link header's protocol field names (0: neither). */
static int ethertype_ipv(unsigned type)
{
	return type == ETH_IPV4 ? 4 : type == ETH_IPV6 ? 6 : 0;
}

static int family_ipv(uint32_t fam)
{
	return fam == 2 ? 4 : fam == 10 || fam == 24 || fam == 28 || fam == 30 ? 6 : 0;
}

static int is_icmp(int ipv, int proto)
{
	return (ipv == 4 && proto == PROTO_ICMP) || (ipv == 6 && proto == PROTO_ICMPV6);
}

static int has_grammar(int ipv, int proto)
{
	return proto == PROTO_TCP || proto == PROTO_UDP || is_icmp(ipv, proto);
}

/* The shape of the packet being fed from its first n bytes. */
static struct shape shape_of(const struct gram_flow *f, size_t n)
{
	struct shape S = { UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, 0, -1 };
	const uint8_t *p = f->frame;
	switch (f->linktype) {
	case LT_ETHERNET:
		if (n >= 14 && be_get(p + 12, 2) != ETH_VLAN) {
			S.l3 = 14;
			S.ipv = ethertype_ipv((unsigned)be_get(p + 12, 2));
		} else if (n >= 18) {
			S.l3 = 18;
			S.ipv = ethertype_ipv((unsigned)be_get(p + 16, 2));
		}
		break;
	case LT_LINUX_SLL:
		if (n >= 16)
			S.l3 = 16, S.ipv = ethertype_ipv((unsigned)be_get(p + 14, 2));
		break;
	case LT_LINUX_SLL2:
		if (n >= 20)
			S.l3 = 20, S.ipv = ethertype_ipv((unsigned)be_get(p, 2));
		break;
	case LT_NULL:
		if (n >= 4)
			S.l3 = 4, S.ipv = family_ipv(p[0] | (uint32_t)p[1] << 8);
		break;
	case LT_LOOP:
		if (n >= 4)
			S.l3 = 4, S.ipv = family_ipv((uint32_t)be_get(p, 4));
		break;
	default:
		S.l3 = 0;
		if (n >= 1)
			S.ipv = p[0] >> 4 == 4 ? 4 : p[0] >> 4 == 6 ? 6 : 0;
		break;
	}
	if (S.l3 == UNKNOWN || !S.ipv)
		return S;
	size_t l3 = S.l3;
	S.l4 = l3 + (S.ipv == 4 ? 20 : 40);
	if (S.ipv == 4) {
		if (n > l3 + 3)
			S.end = l3 + be_get(p + l3 + 2, 2);
		if (n > l3 + 9)
			S.proto = p[l3 + 9];
	} else {
		if (n > l3 + 5)
			S.end = l3 + 40 + be_get(p + l3 + 4, 2);
		if (n > l3 + 6)
			S.proto = p[l3 + 6];
	}
	if (S.proto < 0)
		return S;
	if (S.proto == PROTO_TCP) {
		if (n > S.l4 + 12)
			S.pay = S.l4 + (size_t)(p[S.l4 + 12] >> 4) * 4;
	} else if (has_grammar(S.ipv, S.proto)) {
		S.pay = S.l4 + 8;
	} else {
		S.pay = S.l4;
	}
	return S;
}

/* ------------------------------------------------------------------ budgets */

/* Frame bytes the packet may have: max_frame, and the token budget with
 * END and reserve tokens after it. */
static size_t frame_room(const struct gram *g, size_t reserve)
{
	const struct gram_flow *f = g->f;
	size_t used = f->start + 1 + FIXED + 1 + reserve;
	size_t room = g->cfg.max_tokens > used ? g->cfg.max_tokens - used : 0;
	return room < g->cfg.max_frame ? room : g->cfg.max_frame;
}

/* The longest interval the next packet may take, in seconds (< 0: none). */
static double interval_room(const struct gram *g)
{
	const struct gram_flow *f = g->f;
	double room = g->cfg.max_interval - TIME_MARGIN_S;
	if (f->closing) {
		double left = g->cfg.linger - (double)f->closing_ns / NS_PER_S - TIME_MARGIN_S;
		room = left < room ? left : room;
	}
	return room;
}

/* The smallest frame a next packet can be (the largest smallest one for a
 * first packet: tagged Ethernet, IPv6, TCP). */
static size_t min_frame(const struct gram_flow *f)
{
	if (!f->have_first)
		return 18 + 40 + 20;
	return f->link_len + (f->ipv == 4 ? 20 : 40) + min_l4(f->proto);
}

/* Directions that may send in the flow's state (bits). */
static int may_send(const struct gram *g)
{
	const struct gram_flow *f = g->f;
	if (!f->have_first)
		return 1;
	if (interval_room(g) < 0)
		return 0;
	if (f->linktype == LT_ETHERNET && (f->dir[0].link[0] & 1))
		return 1;	/* to a group address: nobody answers from it */
	if (f->proto != PROTO_TCP || f->opaque)
		return 3;
	switch (f->tcp) {
	case T_NONE: return 1;
	case T_SYN_SENT: return 2;
	case T_SYN_ACKED: return 1;
	case T_OPEN: return 3;
	default: return 0;
	}
}

/* Whether the flow may end here (its TCP not inside the handshake). */
static int may_end(const struct gram_flow *f)
{
	if (!f->have_first)
		return 0;
	if (f->proto != PROTO_TCP || f->opaque)
		return 1;
	return f->tcp == T_OPEN || f->tcp == T_CLOSED;
}

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
static void mask_taken(const struct gram *g, const struct shape *S, size_t off, struct bset *s)
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

/* ------------------------------------------------------------------ DNS */

/* A UDP payload to or from port 53 (DNS), 5353 (mDNS) or 5355 (LLMNR) is a
 * DNS message that fills it exactly (Wireshark's dissector calls anything
 * else malformed): the header (the Z flag 0), counts the payload can hold,
 * names of labels ending in the root or a pointer to an earlier label,
 * questions, and records of type A, NS, CNAME, PTR, MX, TXT or AAAA whose
 * data length fits their type. IDs, flags, label bytes, types, classes,
 * TTLs and record data stay the model's. */
#define DNS_HEADER 12
#define DNS_QUESTION_MIN 5	/* the root name, type, class */
#define DNS_RR_MIN 12		/* the root name, type, class, TTL, length, a byte */

static int dns_port(uint64_t port)
{
	return port == 53 || port == 5353 || port == 5355;
}

/* Whether a DNS message can be len bytes: a header alone, or with items
 * that fill the rest (a question of 5 bytes, or of 7 and more). */
static int dns_size_ok(size_t len)
{
	return len == DNS_HEADER || len == DNS_HEADER + DNS_QUESTION_MIN ||
		len >= DNS_HEADER + DNS_QUESTION_MIN + 2;
}

/* Whether a TCP segment to or from port 53 can carry pay bytes: none, or
 * one DNS message after its 2-byte length (a message a segment, so that
 * none waits for another segment to be whole). */
static int dns_tcp_payload_ok(size_t pay)
{
	return pay == 0 || (pay >= 2 && dns_size_ok(pay - 2));
}

/* Whether a TCP segment of len bytes (header and data) to or from port 53
 * has a data offset that leaves it a DNS payload. */
static int dns_tcp_len_ok(size_t len)
{
	for (size_t doff = 5; doff <= 15 && 4 * doff <= len; doff++)
		if (dns_tcp_payload_ok(len - 4 * doff))
			return 1;
	return 0;
}

/* Whether the packet's payload is a DNS message (its ports fed): UDP to or
 * from port 53, 5353 or 5355, TCP to or from 53. */
static int is_dns(const struct gram_flow *f, const struct shape *S, size_t off)
{
	if (f->opaque || S->l4 == UNKNOWN || off < S->l4 + 4)
		return 0;
	uint64_t a = be_get(f->frame + S->l4, 2), b = be_get(f->frame + S->l4 + 2, 2);
	if (S->proto == PROTO_TCP)
		return a == 53 || b == 53;
	return S->proto == PROTO_UDP && (dns_port(a) || dns_port(b));
}

/* Where the packet's DNS message starts (TCP: after its length). */
static size_t dns_start(const struct shape *S)
{
	return S->pay + (S->proto == PROTO_TCP ? 2 : 0);
}

/* The least bytes nq questions and nrr records take. */
static size_t dns_least(uint32_t nq, uint32_t nrr)
{
	return (size_t)DNS_QUESTION_MIN * nq + (size_t)DNS_RR_MIN * nrr;
}

#define DNS_NAME_MAX 255
/* Whether nq questions and nrr records can take exactly r bytes (a
 * question is 5 bytes or 7 to 259; a record 12 and more). */
static int dns_fill(size_t r, uint32_t nq, uint32_t nrr)
{
	if (nq + nrr == 0)
		return r == 0;
	size_t least = dns_least(nq, nrr);
	if (nrr > 0)
		return r >= least;
	return r >= least && r != least + 1 && r <= (size_t)nq * (DNS_NAME_MAX + 4);
}

/* The questions and records after the current item. */
static void dns_rest(const struct dns_walk *w, uint32_t *nq, uint32_t *nrr)
{
	*nq = w->section == 0 ? w->left : 0;
	*nrr = w->section == 0 ? 0 : w->left;
	for (int i = w->section + 1; i < 4; i++)
		*nrr += w->count[i];
}

/* Whether a record of this type can hold rd bytes of data. */
static int dns_rdata_ok(uint16_t type, size_t rd)
{
	switch (type) {
	case 1: return rd == 4;			/* A */
	case 28: return rd == 16;		/* AAAA */
	case 2: case 5: case 12: return rd == 1 || (rd >= 3 && rd <= DNS_NAME_MAX);	/* a name */
	case 15: return rd == 3 || (rd >= 5 && rd <= 2 + DNS_NAME_MAX);	/* MX: preference, name */
	case 16: return rd >= 1;		/* TXT: strings */
	default: return 0;
	}
}

/* Whether a record of this type fits in x bytes with the rest after it. */
static int dns_type_fits(const struct dns_walk *w, uint16_t type, size_t x)
{
	uint32_t nq, nrr;
	dns_rest(w, &nq, &nrr);
	if (type == 1 || type == 28) {
		size_t rd = type == 1 ? 4 : 16;
		return x >= rd && dns_fill(x - rd, nq, nrr);
	}
	size_t least = dns_least(nq, nrr);
	for (size_t r = least; r <= least + 2 && r <= x; r++)	/* the rest near its least */
		if (dns_rdata_ok(type, x - r) && dns_fill(r, nq, nrr))
			return 1;
	return 0;
}

/* Whether the current name can take s bytes in all. */
static int dns_name_ok(const struct dns_walk *w, size_t s)
{
	if (s > DNS_NAME_MAX)
		return 0;
	if (w->name_end)
		return w->name_start + s == w->name_end;
	if (w->name_start + s > w->len)
		return 0;
	size_t after = w->len - w->name_start - s;
	uint32_t nq, nrr;
	dns_rest(w, &nq, &nrr);
	if (w->section == 0)
		return after >= 4 && dns_fill(after - 4, nq, nrr);
	return after >= 10 + 1 + dns_least(nq, nrr);
}

/* Whether the set holds a member from x on. */
static int bs_any_from(const struct bset *s, size_t x)
{
	for (size_t v = x; v < 256; v = (v | 63) + 1) {
		uint64_t word = s->w[v >> 6] >> (v & 63);
		if (word)
			return 1;
	}
	return 0;
}

/* Whether a name of u bytes so far (at a label's length byte) can still
 * end at one of its sizes: with the root, a pointer, or more labels. */
static int dns_name_can_end(const struct dns_walk *w, size_t u)
{
	return (u + 1 < 256 && bs_has(&w->sizes, (int)(u + 1))) ||
		(w->n_done && u + 2 < 256 && bs_has(&w->sizes, (int)(u + 2))) ||
		bs_any_from(&w->sizes, u + 3);
}

static void dns_start_name(struct dns_walk *w, size_t end)
{
	w->part = D_NAME;
	w->name_start = w->at;
	w->name_end = end;
	w->label_left = 0;
	w->pointer = 0;
	bs_clear(&w->sizes);	/* its sizes, once */
	for (size_t s = 1; s <= DNS_NAME_MAX; s++)
		if (dns_name_ok(w, s))
			bs_add(&w->sizes, (int)s);
}

/* The next item (question or record), or the message's end. */
static void dns_next_item(struct dns_walk *w)
{
	if (w->left > 0) {
		w->left--;
		dns_start_name(w, 0);
		return;
	}
	while (++w->section < 4)
		if (w->count[w->section]) {
			w->left = w->count[w->section] - 1u;
			dns_start_name(w, 0);
			return;
		}
	w->part = D_END;
}

static void dns_name_done(struct dns_walk *w)
{
	w->n_done = w->n_target;	/* its labels: pointer targets now (no loops) */
	if (w->name_end) {	/* rdata: the record ends */
		dns_next_item(w);
		return;
	}
	w->part = w->section == 0 ? D_QFIX : D_RRFIX;
	w->fix_start = w->at;
}

/* The record's data begins (its length just fed). */
static void dns_rdata_start(struct dns_walk *w)
{
	w->rdata_end = w->at + w->rdlen;
	w->txt_left = 0;
	switch (w->type) {
	case 2: case 5: case 12: w->rdata = RD_NAME; break;
	case 15: w->rdata = RD_MX; break;
	case 16: w->rdata = RD_TXT; break;
	default: w->rdata = RD_BYTES; break;
	}
	if (w->rdlen == 0)
		dns_next_item(w);
	else if (w->rdata == RD_NAME)
		dns_start_name(w, w->rdata_end);
	else
		w->part = D_RDATA;
}

/* The walk over one more byte b of the message m. */
static void dns_step(struct dns_walk *w, const uint8_t *m, uint8_t b)
{
	size_t at = w->at++;
	switch (w->part) {
	case D_HEADER:
		if (at >= 4 && (at & 1))
			w->count[(at - 4) / 2] = (uint16_t)(m[at - 1] << 8 | b);
		if (w->at == DNS_HEADER) {
			w->section = -1;
			w->left = 0;
			dns_next_item(w);
		}
		break;
	case D_NAME:
		if (w->pointer) {
			dns_name_done(w);
		} else if (w->label_left) {
			w->label_left--;
		} else if (b == 0) {
			dns_name_done(w);
		} else if (b >= 0xc0) {
			w->pointer = 1;
		} else {
			if (w->n_target < DNS_TARGETS && at < 0x3fff)
				w->target[w->n_target++] = (uint16_t)at;
			w->label_left = b;
		}
		break;
	case D_QFIX:
		if (w->at == w->fix_start + 4)
			dns_next_item(w);
		break;
	case D_RRFIX:
		if (w->at == w->fix_start + 2)
			w->type = (uint16_t)(m[at - 1] << 8 | b);
		if (w->at == w->fix_start + 10) {
			w->rdlen = (uint16_t)(m[at - 1] << 8 | b);
			dns_rdata_start(w);
		}
		break;
	case D_RDATA:
		if (w->rdata == RD_TXT)
			w->txt_left = w->txt_left ? w->txt_left - 1 : b;
		if (w->rdata == RD_MX && w->at == w->fix_start + 12)
			dns_start_name(w, w->rdata_end);
		else if (w->at == w->rdata_end)
			dns_next_item(w);
		break;
	case D_END:
		break;
	}
}

/* The walk of the packet's DNS message to byte at (from where it is, or
 * from the start). */
static const struct dns_walk *dns_walk_to(const struct gram *g, const struct shape *S, size_t at)
{
	struct dns_walk *w = &g->f->dns;
	const uint8_t *m = g->f->frame + dns_start(S);
	size_t len = S->end - dns_start(S);
	if (w->len != len || w->at > at) {
		memset(w, 0, sizeof *w);
		w->len = len;
	}
	while (w->at < at)
		dns_step(w, m, m[w->at]);
	return w;
}

/* A count's values (its high byte when k is 0) that leave the message
 * fillable, the counts before it as fed and those after it free. */
static int dns_count_ok(const struct dns_walk *w, int i, uint32_t c)
{
	size_t r = w->len - DNS_HEADER;
	uint32_t nq = i == 0 ? c : w->count[0], nrr = 0;
	for (int j = 1; j < i; j++)
		nrr += w->count[j];
	if (i > 0)
		nrr += c;
	return dns_fill(r, nq, nrr) || (i < 3 && r >= dns_least(nq, nrr + 1));	/* records after */
}

static void dns_header_byte(const struct dns_walk *w, const uint8_t *m, struct bset *s)
{
	size_t at = w->at;
	if (at < 3) {
		bs_all(s);	/* ID, the flags' high byte */
		return;
	}
	if (at == 3) {
		for (int v = 0; v < 256; v++)
			if (!(v & 0x40))
				bs_add(s, v);	/* Z: 0 */
		return;
	}
	int i = (int)(at - 4) / 2;
	for (int v = 0; v < 256; v++) {
		if (at & 1) {
			if (dns_count_ok(w, i, (uint32_t)(m[at - 1] << 8 | v)))
				bs_add(s, v);
			continue;
		}
		if ((uint32_t)v << 8 > (w->len - DNS_HEADER) / DNS_QUESTION_MIN)
			break;	/* more than the message can hold */
		for (int lo = 0; lo < 256; lo++)	/* a high byte with a good low one */
			if (dns_count_ok(w, i, (uint32_t)(v << 8 | lo))) {
				bs_add(s, v);
				break;
			}
	}
}

static void dns_name_byte(const struct dns_walk *w, const uint8_t *m, struct bset *s)
{
	size_t u = w->at - w->name_start;
	if (w->pointer) {	/* a pointer's low byte: to an earlier name's label */
		for (int i = 0; i < w->n_done; i++)
			if (w->target[i] >> 8 == (m[w->at - 1] & 0x3f))
				bs_add(s, w->target[i] & 0xff);
		return;
	}
	if (w->label_left) {
		bs_all(s);
		return;
	}
	if (u + 1 < 256 && bs_has(&w->sizes, (int)(u + 1)))
		bs_add(s, 0);
	if (w->n_done && u + 2 < 256 && bs_has(&w->sizes, (int)(u + 2)))
		for (int i = 0; i < w->n_done; i++)
			bs_add(s, 0xc0 | w->target[i] >> 8);
	for (size_t k = 1; k <= 63 && u + 1 + k + 1 <= DNS_NAME_MAX; k++)
		if (dns_name_can_end(w, u + 1 + k))
			bs_add(s, (int)k);
}

static void dns_fixed_byte(const struct dns_walk *w, const uint8_t *m, struct bset *s)
{
	static const uint16_t types[] = { 1, 2, 5, 12, 15, 16, 28 };
	size_t o = w->at - w->fix_start, x = w->len - w->fix_start - 10;
	if (o == 0) {
		bs_add(s, 0);	/* the types' high byte */
	} else if (o == 1) {
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			if (dns_type_fits(w, types[i], x))
				bs_add(s, types[i]);
	} else if (o < 8) {
		bs_all(s);	/* class, TTL */
	} else {	/* the data's length */
		uint32_t nq, nrr;
		dns_rest(w, &nq, &nrr);
		for (int v = 0; v < 256; v++) {
			for (int lo = o == 9 ? v : 0; lo < (o == 9 ? v + 1 : 256); lo++) {
				size_t rd = o == 9 ? (size_t)(m[w->at - 1] << 8 | lo) : (size_t)(v << 8 | lo);
				if (rd <= x && dns_rdata_ok(w->type, rd) && dns_fill(x - rd, nq, nrr)) {
					bs_add(s, v);
					break;
				}
			}
		}
	}
}

/* The bytes byte `at` of the packet's DNS message may be. */
static void dns_byte(const struct gram *g, const struct shape *S, size_t at, struct bset *s)
{
	const struct dns_walk *w = dns_walk_to(g, S, at);
	const uint8_t *m = g->f->frame + dns_start(S);
	switch (w->part) {
	case D_HEADER: dns_header_byte(w, m, s); break;
	case D_NAME: dns_name_byte(w, m, s); break;
	case D_QFIX: bs_all(s); break;
	case D_RRFIX: dns_fixed_byte(w, m, s); break;
	case D_RDATA:
		if (w->rdata == RD_TXT && !w->txt_left) {
			size_t r = w->rdata_end - w->at;
			bs_range(s, 0, (int)(r - 1 < 255 ? r - 1 : 255));
		} else {
			bs_all(s);
		}
		break;
	case D_END: break;
	}
}

/* A DNS flow's IP length field: a payload a DNS message can fill (over
 * TCP, with some data offset). */
static void dns_length(const struct gram_flow *f, const struct shape *S, size_t field, int k,
	struct bset *s)
{
	if (!f->have_first || f->opaque)
		return;
	int udp = f->proto == PROTO_UDP && (dns_port(f->port[0]) || dns_port(f->port[1]));
	int tcp = f->proto == PROTO_TCP && (f->port[0] == 53 || f->port[1] == 53);
	if (!udp && !tcp)
		return;
	size_t under = (S->ipv == 4 ? 20 : 0) + (udp ? 8 : 0);	/* what the field counts besides */
	uint64_t pre = be_get(f->frame + field, k);
	for (int v = 0; v < 256; v++) {
		if (!bs_has(s, v))
			continue;
		int fits = 0;
		for (int lo = k ? v : 0; lo < (k ? v + 1 : 256) && !fits; lo++) {
			uint64_t len = k ? (pre << 8 | (uint64_t)lo) : ((uint64_t)v << 8 | (uint64_t)lo);
			fits = len >= under && (udp ? dns_size_ok(len - under) : dns_tcp_len_ok(len - under));
		}
		if (!fits)
			s->w[v >> 6] &= ~(1ull << (v & 63));
	}
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
	default:
		if (!f->have_first)
			bs_all(s);
		else
			bs_add(s, o < 16 ? f->addr[d][o - 12] : f->addr[!d][o - 16]);
		return;
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
	default:
		if (!f->have_first)
			bs_all(s);
		else
			bs_add(s, o < 24 ? f->addr[d][o - 8] : f->addr[!d][o - 24]);
		return;
	}
}

/* ------------------------------------------------------------------ TCP */

/* The sequence number direction d sends (1), or 0 when it is free. */
static int tcp_seq(const struct gram_flow *f, int d, uint32_t *seq)
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
static void tcp_ack(const struct gram_flow *f, int d, uint32_t *lo, uint32_t *span)
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
static void tcp_flags(const struct gram_flow *f, int d, size_t pay, struct bset *s)
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
static uint64_t pseudo_sum(const struct gram_flow *f, const struct shape *S, int proto)
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

/* ------------------------------------------------------------------ positions */

/* The bytes direction d allows at frame offset off (the shape S of the
 * bytes before it). */
static void frame_set(const struct gram *g, const struct shape *S, int d, size_t off, struct bset *s)
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

/* The transport checksum's field (UNKNOWN: none). */
static size_t l4_field(const struct shape *S)
{
	if (S->l4 == UNKNOWN || S->proto < 0)
		return UNKNOWN;
	if (S->proto == PROTO_TCP)
		return S->l4 + 16;
	if (S->proto == PROTO_UDP)
		return S->l4 + 6;
	if (is_icmp(S->ipv, S->proto))
		return S->l4 + 2;
	return UNKNOWN;
}

/* Whether the first byte of a checksum field at off will be written (A)
 * rather than left open (B, C), for a generated byte. */
static int written_here(const struct gram_flow *f, const struct shape *S, size_t off)
{
	if (S->ipv == 4 && off == S->l3 + 10)
		return f->have_first;
	if (S->proto == PROTO_TCP)
		return S->pay == S->l4 + 20 && S->end == S->pay;
	if (S->proto == PROTO_UDP)
		return S->end == S->l4 + 8;
	return 0;
}

/* Where a checksum field of the packet starts at off: 0 IPv4 header, 1
 * transport, -1 neither. */
static int field_at(const struct shape *S, size_t off)
{
	if (S->l3 != UNKNOWN && S->ipv == 4 && off == S->l3 + 10)
		return 0;
	if (S->end != UNKNOWN && off == l4_field(S))
		return 1;
	return -1;
}

/* The first free byte a fix-up (B) may write: payload (a DNS message's
 * only as fix_applies finds it), or ICMP's sequence. */
static size_t fix_from(const struct gram_flow *f, const struct shape *S)
{
	if (S->end != UNKNOWN && is_dns(f, S, S->end))
		return S->end;	/* a DNS message's end: not known to be free */
	return is_icmp(S->ipv, S->proto) ? S->l4 + 6 : S->pay;
}

/* The fix-up bytes (B): the packet's last two, so that the transport sum
 * comes out right with the checksum as it was sampled. */
static void compute_fix(struct gram_flow *f, const struct shape *S)
{
	size_t l4 = S->l4, end = S->end;
	int pseudo = S->proto == PROTO_UDP || S->proto == PROTO_TCP || S->proto == PROTO_ICMPV6;
	uint64_t sum = pkt_sum16(f->frame + l4, end - 2 - l4, pseudo ? pseudo_sum(f, S, S->proto) : 0);
	uint16_t w = (uint16_t)(0xffff - pkt_fold16(sum));
	if ((end - 2 - l4) % 2 == 0) {	/* the two bytes are one word */
		f->fix[0] = (uint8_t)(w >> 8);
		f->fix[1] = (uint8_t)w;
	} else {	/* the low half of one word and the high half of the last */
		f->fix[0] = (uint8_t)w;
		f->fix[1] = (uint8_t)(w >> 8);
	}
	f->fix_valid = 1;
}

/* Whether the fix-up applies at off (a generated byte). */
static int fix_applies(const struct gram *g, const struct shape *S, size_t off)
{
	const struct gram_flow *f = g->f;
	const struct csum *c = &f->cs[1];
	if (c->state != CS_OPEN || S->end == UNKNOWN || off + 2 != S->end)
		return 0;
	if (is_dns(f, S, off)) {	/* when it ends in an address's or a text's bytes */
		if (off < dns_start(S))
			return 0;
		const struct dns_walk *w = dns_walk_to(g, S, off - dns_start(S));
		if (w->part != D_RDATA || (w->rdata != RD_BYTES && !(w->rdata == RD_TXT &&
				w->txt_left >= 2)))
			return 0;
	} else if (off < fix_from(f, S)) {
		return 0;
	}
	if (S->proto == PROTO_UDP && S->ipv == 4 && be_get(f->frame + c->field, 2) == 0)
		return 0;	/* no checksum */
	return 1;
}

/* Whether a generated checksum field starts at off that neither (A) nor
 * (B) will settle: (C) needs the state saved before it. */
static int must_save(const struct gram_flow *f, const struct shape *S, size_t off)
{
	int which = field_at(S, off);
	if (which < 0 || written_here(f, S, off))
		return 0;
	return which == 0 || S->end < fix_from(f, S) + 2;
}

/* The directions a packet's given bytes fit (replayed when generation
 * takes over inside a packet that began in the prompt). */
static int replay(const struct gram *g, int cand)
{
	struct gram_flow *f = g->f;
	int fits = 0;
	for (int d = 0; d < 2; d++) {
		if (!(cand >> d & 1))
			continue;
		int ok = 1;
		for (size_t k = 0; k < f->off && ok; k++) {
			struct shape S = shape_of(f, k);
			struct bset s;
			frame_set(g, &S, d, k, &s);
			ok = bs_has(&s, f->frame[k]);
		}
		fits |= ok << d;
	}
	return fits;
}

static struct gram_pos boundary(const struct gram *g, unsigned char *mask)
{
	const struct gram_flow *f = g->f;
	struct gram_pos pos = { GRAM_SAMPLE, 0 };
	if (f->ended) {
		pos.token = GRAM_STUCK;
		return pos;
	}
	if (f->packets == 0 && !f->stop) {
		pos.token = GRAM_START;
		return pos;
	}
	int fits = f->n + 1 + FIXED + min_frame(f) + 1 <= g->cfg.max_tokens;
	int start = !f->stop && fits && may_send(g);
	int end = !start || may_end(f);
	if (start != end) {
		pos.token = start ? GRAM_START : GRAM_END;
		return pos;
	}
	memset(mask, 0, GRAM_TOKENS);
	mask[GRAM_START] = mask[GRAM_END] = 1;
	return pos;
}

/* The sets of the link-type and time positions (the same for every
 * direction). */
static void fixed_set(const struct gram *g, struct bset *s)
{
	const struct gram_flow *f = g->f;
	bs_clear(s);
	if (f->pos == 0) {
		if (f->have_first) {
			bs_add(s, f->lt_token);
		} else if (g->cfg.link_token >= 0) {
			if (pkt_linktype_known(token_linktype(&g->cfg, g->cfg.link_token)))
				bs_add(s, g->cfg.link_token);
		} else {
			for (int t = 0; t < 256; t++)
				if (pkt_linktype_known(token_linktype(&g->cfg, t)))
					bs_add(s, t);
		}
		return;
	}
	int k = f->pos - 1;
	double room = interval_room(g);
	if (!f->have_first || room < 0) {
		bs_add(s, 0);	/* the first packet's interval is 0 */
		return;
	}
	uint64_t top;
	memcpy(&top, &room, sizeof top);	/* positive doubles order as their bits */
	bs_field_range(s, 0, top, TIME_TOKENS, k, be_get(f->time, k));
}

struct gram_pos gram_next(struct gram *g, unsigned char *mask, int given)
{
	struct gram_flow *f = g->f;
	struct gram_pos pos = { GRAM_SAMPLE, 0 };
	f->set_ok = 0;
	f->save_pending = 0;
	if (given) {	/* only the save: a checksum left open */
		if (f->open && f->pos >= FIXED) {
			struct shape S = shape_of(f, f->off);
			pos.save = f->save_pending = field_at(&S, f->off) >= 0;
		}
		return pos;
	}
	if (f->open && f->pos >= FIXED && !f->stop && !f->gen) {
		/* a prompt's packet: whole by its IP length, or no IP at all */
		struct shape S = shape_of(f, f->off);
		if (S.end != UNKNOWN ? f->off >= S.end : S.l3 != UNKNOWN && !S.ipv &&
				f->off >= S.l3 + (S.l3 == 0))
			finish_packet(g);
	}
	if (!f->open)
		return boundary(g, mask);
	if (f->stop) {
		pos.token = GRAM_STUCK;
		return pos;
	}
	if (f->pos < FIXED) {
		fixed_set(g, &f->set[0]);
		f->set[1] = f->set[0];
	} else {
		if (f->given && !f->gen) {	/* the prompt ended inside this packet */
			f->cand = replay(g, f->cand);
			if (!f->cand) {
				f->stop = "a prompt packet the grammar cannot continue";
				pos.token = GRAM_STUCK;
				return pos;
			}
		}
		struct shape S = shape_of(f, f->off);
		for (int d = 0; d < 2; d++)
			if (f->cand >> d & 1)
				frame_set(g, &S, d, f->off, &f->set[d]);
		if (!f->have_first && g->cfg.taken && gram_needs_keys(g))
			mask_taken(g, &S, f->off, &f->set[0]);
		if (fix_applies(g, &S, f->off))
			compute_fix(f, &S);
		if (f->fix_valid && S.end != UNKNOWN && f->off + 2 >= S.end) {
			int v = f->fix[f->off + 2 - S.end];
			for (int d = 0; d < 2; d++)
				bs_one(&f->set[d], v);
		}
		pos.save = f->save_pending = must_save(f, &S, f->off);
	}
	struct bset all;
	bs_clear(&all);
	for (int d = 0; d < 2; d++)
		if (f->pos < FIXED || (f->cand >> d & 1))
			for (int i = 0; i < 4; i++)
				all.w[i] |= f->set[d].w[i];
	f->set_ok = 1;
	if (bs_empty(&all)) {
		f->stop = "no byte fits (budget or bug)";
		pos.token = GRAM_STUCK;
		return pos;
	}
	int only = bs_only(&all);
	if (only >= 0) {
		pos.token = only;
		return pos;
	}
	bs_to_mask(&all, mask);
	mask[GRAM_START] = mask[GRAM_END] = 0;
	return pos;
}

int gram_needs_keys(const struct gram *g)
{
	const struct gram_flow *f = g->f;
	if (!g->cfg.taken || !f->open || f->have_first || f->pos < FIXED)
		return 0;
	struct shape S = shape_of(f, f->off);
	if (S.ipv == 0 || S.proto < 0 || S.l4 == UNKNOWN)
		return 0;
	if (S.proto == PROTO_TCP || S.proto == PROTO_UDP)
		return f->off == S.l4 + 1;
	if (is_icmp(S.ipv, S.proto))
		return f->off == S.l4 - 1;	/* the destination address's last byte */
	return 0;
}

/* ------------------------------------------------------------------ packets done */

/* Why the grammar cannot go on from a whole packet (a prompt's: generated
 * ones always fit), NULL when it can. */
static const char *unsupported(const struct gram_flow *f, const struct pkt_info *pi, int ip)
{
	if (!pkt_linktype_known(f->linktype))
		return "a link type without a grammar";
	if (!ip)
		return "a frame that is not IP";
	size_t l3 = (size_t)pi->l3_off;
	int tags = f->linktype == LT_ETHERNET ? 1 : 0;
	if (pi->n_vlan > tags || l3 != link_base(f->linktype) + 4u * pi->n_vlan)
		return "a link header the grammar does not make";
	if (pi->ip_version == 4 && pi->ip_hlen != 20)
		return "IPv4 options";
	if (pi->fragment)
		return "a fragment";
	if (pi->ip_version == 6 && f->frame[l3 + 6] != pi->proto)
		return "IPv6 extension headers";
	size_t hdr = pi->ip_version == 4 ? 20 : 40;
	if (pi->ip_total_len < hdr + (has_grammar(pi->ip_version, pi->proto) ? min_l4(pi->proto) : 0))
		return "an IP length shorter than its headers";
	if (f->off < l3 + pi->ip_total_len)
		return "a packet cut short";
	if (pi->proto == PROTO_TCP && pi->l4_payload_off < 0)
		return "a TCP header longer than its packet";
	if (f->have_first && (pi->ip_version != f->ipv || pi->proto != f->proto))
		return "a packet of another flow";
	return NULL;
}

/* The directions (bits) whose addresses, ports and tags the packet has. */
static int key_directions(const struct gram_flow *f, const struct pkt_info *pi)
{
	const uint8_t *src = f->frame + pi->src_off, *dst = f->frame + pi->dst_off;
	if (pi->n_vlan != f->n_vlan || (pi->n_vlan && pi->vlan[0] != f->vlan))
		return 0;
	int m = 0;
	for (int d = 0; d < 2; d++) {
		if (memcmp(src, f->addr[d], pi->addr_len) || memcmp(dst, f->addr[!d], pi->addr_len))
			continue;
		if (pi->has_ports && (pi->src_port != f->port[d] || pi->dst_port != f->port[!d]))
			continue;
		m |= 1 << d;
	}
	return m;
}

static void first_packet(struct gram_flow *f, const struct pkt_info *pi)
{
	const uint8_t *p = f->frame;
	size_t l3 = (size_t)pi->l3_off;
	f->have_first = 1;
	f->ipv = pi->ip_version;
	f->proto = pi->proto;
	f->opaque = !has_grammar(f->ipv, f->proto);
	f->link_len = l3;
	memset(f->addr, 0, sizeof f->addr);
	memcpy(f->addr[0], p + pi->src_off, pi->addr_len);
	memcpy(f->addr[1], p + pi->dst_off, pi->addr_len);
	f->port[0] = pi->has_ports ? pi->src_port : 0;
	f->port[1] = pi->has_ports ? pi->dst_port : 0;
	f->n_vlan = pi->n_vlan;
	f->vlan = pi->n_vlan ? pi->vlan[0] : 0;
	if (is_icmp(f->ipv, f->proto) && pi->l4_off >= 0 && f->off >= (size_t)pi->l4_off + 6) {
		size_t l4 = (size_t)pi->l4_off;
		int request = f->ipv == 4 ? 8 : 128, reply = f->ipv == 4 ? 0 : 129;
		f->icmp_type = p[l4];
		f->icmp_code = p[l4 + 1];
		f->icmp_echo = p[l4] == request || p[l4] == reply;
		f->icmp_id = (uint16_t)be_get(p + l4 + 4, 2);
	}
	if (f->linktype == LT_ETHERNET) {	/* the reverse: the MACs swapped */
		struct dir *r = &f->dir[1];
		memcpy(r->link, p, l3);
		memcpy(r->link, p + 6, 6);
		memcpy(r->link + 6, p, 6);
		r->link_known = 1;
	}
	f->tcp = T_NONE;
}

/* A direction's habits, from its packet. */
static void habits(struct gram_flow *f, int d, const struct pkt_info *pi)
{
	struct dir *D = &f->dir[d];
	const uint8_t *p = f->frame;
	size_t l3 = (size_t)pi->l3_off;
	memcpy(D->link, p, l3);
	D->link_known = 1;
	D->ttl = pi->ttl;
	if (f->ipv == 4) {
		uint16_t id = (uint16_t)be_get(p + l3 + 4, 2);
		D->id_zero = (D->seen ? D->id_zero : 1) && id == 0;
		D->id = id;
		D->df = p[l3 + 6] & 0x40;
	} else {
		D->label = (uint32_t)be_get(p + l3 + 1, 3) & 0xfffff;
	}
	D->seen = 1;
}

/* The TCP state after a segment of direction d (generated segments move
 * it as the grammar planned; a prompt's are read as they come). */
static void tcp_update(struct gram_flow *f, int d, const struct pkt_info *pi)
{
	struct dir *me = &f->dir[d], *peer = &f->dir[!d];
	uint8_t fl = pi->tcp_flags;
	uint32_t pay = pi->ip_total_len - pi->ip_hlen - (uint32_t)((size_t)pi->l4_payload_off -
		(size_t)pi->l4_off);
	uint32_t end = pi->tcp_seq + pay + !!(fl & TCP_SYN) + !!(fl & TCP_FIN);
	if (fl & TCP_RST) {
		f->tcp = T_CLOSED;
		return;
	}
	int syn = (fl & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	int syn_ack = (fl & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK);
	switch (f->tcp) {
	case T_NONE: f->tcp = syn ? T_SYN_SENT : T_OPEN; break;
	case T_SYN_SENT:
		if (d == 1)
			f->tcp = syn_ack ? T_SYN_ACKED : T_OPEN;
		break;
	case T_SYN_ACKED:
		if (d == 0 && !(fl & TCP_SYN))
			f->tcp = T_OPEN;
		break;
	default: break;
	}
	if (!me->known || seq_diff(end, me->nxt) > 0)
		me->nxt = end;
	me->known = 1;
	if (fl & TCP_ACK) {
		if (!me->acked || seq_diff(pi->tcp_ack, me->ack) > 0)
			me->ack = pi->tcp_ack;
		me->acked = 1;
		/* pcap2flow: a FIN is acked by an ack at or past its end */
		if (peer->fin && seq_diff(pi->tcp_ack, peer->fin_next) >= 0)
			peer->fin_acked = 1;
	}
	if ((fl & TCP_FIN) && !me->fin) {
		me->fin = 1;
		me->fin_next = end;
		if (peer->fin && !f->closing) {
			f->closing = 1;
			f->closing_ns = 0;
		}
	}
	if (me->fin_acked && peer->fin_acked)
		f->tcp = T_CLOSED;	/* pcap2flow ends the flow here */
}

/* The packet's interval in nanoseconds (0 when not a number >= 0). */
static int64_t interval_ns(const uint8_t *t)
{
	uint64_t bits = be_get(t, TIME_TOKENS);
	double dt;
	memcpy(&dt, &bits, sizeof dt);
	if (!(dt >= 0) || dt > 1e9)
		return 0;
	return (int64_t)llround(dt * NS_PER_S);
}

/* The packet is whole: what the grammar needs of it, its direction, and
 * the flow's state after it. */
static void finish_packet(struct gram *g)
{
	struct gram_flow *f = g->f;
	struct pkt_info pi;
	f->open = 0;
	if (f->stop)
		return;
	int ip = pkt_decode(f->linktype, f->frame, f->off, &pi);
	const char *why = unsupported(f, &pi, ip);
	int d = 0;
	if (!why && f->have_first) {
		int m = key_directions(f, &pi);
		if (m & f->cand)
			m &= f->cand;
		if (!m)
			why = "a packet of another flow";
		d = m & 1 ? 0 : 1;
	}
	if (why) {
		f->stop = why;
		return;
	}
	if (!f->have_first)
		first_packet(f, &pi);
	if (f->closing)
		f->closing_ns += interval_ns(f->time);
	habits(f, d, &pi);
	if (f->proto == PROTO_TCP && !f->opaque)
		tcp_update(f, d, &pi);
	f->packets++;
}

/* ------------------------------------------------------------------ feeding */

/* A checksum's region is whole: when it was left open and some of it was
 * generated, the right value goes in (a patch for the caller to re-feed,
 * unless it is right already, as a fix-up makes it). */
static void settle(struct gram *g, const struct shape *S, int which)
{
	struct gram_flow *f = g->f;
	struct csum *c = &f->cs[which];
	c->state = CS_WRITTEN;
	if (!c->generated)
		return;	/* a prompt's packet as it was captured */
	uint8_t *field = f->frame + c->field;
	size_t from = which ? S->l4 : S->l3, to = which ? S->end : S->l3 + 20;
	int pseudo = which && (S->proto != PROTO_ICMP || S->ipv != 4);
	uint64_t base = pseudo ? pseudo_sum(f, S, S->proto) : 0;
	if (which && S->proto == PROTO_UDP && S->ipv == 4 && be_get(field, 2) == 0)
		return;	/* no checksum */
	if (pkt_fold16(pkt_sum16(f->frame + from, to - from, base)) == 0xffff &&
			!(which && S->proto == PROTO_UDP && be_get(field, 2) == 0))
		return;
	field[0] = field[1] = 0;
	uint16_t cs = (uint16_t)~pkt_fold16(pkt_sum16(f->frame + from, to - from, base));
	if (cs == 0 && which && S->proto == PROTO_UDP)
		cs = 0xffff;
	field[0] = (uint8_t)(cs >> 8);
	field[1] = (uint8_t)cs;
	if (!c->saved) {
		f->stop = "a checksum left open with no state saved before it";
		return;
	}
	f->patch = 1;
	f->patch_at = f->start + 1 + FIXED + c->field;
	f->patch_bytes[0] = field[0];
	f->patch_bytes[1] = field[1];
}

static void open_packet(struct gram *g)
{
	struct gram_flow *f = g->f;
	f->open = 1;
	f->started = 1;
	f->start = f->n - 1;
	f->pos = 0;
	f->off = 0;
	f->given = f->gen = 0;
	f->fix_valid = 0;
	memset(f->cs, 0, sizeof f->cs);
	memset(&f->dns, 0, sizeof f->dns);
	f->cand = f->have_first ? may_send(g) : 1;
	if (!f->cand)
		f->cand = 3;	/* a prompt's packet where none could be sent */
}

/* Whether a generated token is among gram_next's answer. */
static int allowed(struct gram *g, int tok)
{
	struct gram_flow *f = g->f;
	if (!f->open) {
		unsigned char mask[GRAM_TOKENS];
		struct gram_pos pos = boundary(g, mask);
		return pos.token >= 0 ? tok == pos.token : pos.token == GRAM_SAMPLE &&
			(tok == GRAM_START || tok == GRAM_END) && mask[tok];
	}
	if (!f->set_ok || tok < 0 || tok > 255)
		return 0;
	for (int d = 0; d < 2; d++)
		if ((f->pos < FIXED || (f->cand >> d & 1)) && bs_has(&f->set[d], tok))
			return 1;
	return 0;
}

/* A frame byte: into the frame, with the checksums' bookkeeping. */
static void feed_byte(struct gram *g, int tok, int given)
{
	struct gram_flow *f = g->f;
	if (f->off + 1 >= f->cap) {
		f->stop = "a frame longer than max_frame";
		return;
	}
	struct shape S = shape_of(f, f->off);
	int which = field_at(&S, f->off);
	for (int i = 0; i < 2; i++)
		if (f->cs[i].state == CS_OPEN)
			f->cs[i].generated |= !given;
	if (which >= 0) {
		struct csum *c = &f->cs[which];
		c->state = !given && written_here(f, &S, f->off) ? CS_WRITTEN : CS_OPEN;
		c->field = f->off;
		c->saved = f->save_pending;
		c->generated = !given;
	}
	f->frame[f->off++] = (uint8_t)tok;
	S = shape_of(f, f->off);
	if (f->cs[0].state == CS_OPEN && S.ipv == 4 && f->off == S.l3 + 20)
		settle(g, &S, 0);
	if (!given && S.end != UNKNOWN && f->off >= S.end) {
		if (f->cs[1].state == CS_OPEN)
			settle(g, &S, 1);
		finish_packet(g);
	}
}

int gram_feed(struct gram *g, int tok, int given)
{
	struct gram_flow *f = g->f;
	int ok = given || allowed(g, tok);
	f->n++;
	f->patch = 0;
	f->set_ok = 0;
	if (f->ended) {
		f->stop = f->stop ? f->stop : "a token after END";
		return 0;
	}
	if (!ok && !f->stop)
		f->stop = "a generated token the grammar did not allow";
	if (tok == GRAM_START || tok == GRAM_END) {
		if (f->open)
			finish_packet(g);
		if (tok == GRAM_END)
			f->ended = 1;
		else
			open_packet(g);
		return 0;
	}
	if (tok < 0 || tok >= GRAM_TOKENS) {
		if (!f->started)
			return 0;	/* a label before the flow */
		f->stop = f->stop ? f->stop : "a special token inside the flow";
		return 0;
	}
	if (!f->open) {
		f->stop = f->stop ? f->stop : "a byte outside a packet";
		return 0;
	}
	if (!given && f->pos >= FIXED) {	/* the directions that allow it */
		int keep = 0;
		for (int d = 0; d < 2; d++)
			if ((f->cand >> d & 1) && bs_has(&f->set[d], tok))
				keep |= 1 << d;
		f->cand = keep ? keep : f->cand;
	}
	f->given |= given;
	f->gen |= !given;
	if (f->stop) {
		f->pos++;
		return 0;
	}
	if (f->pos == 0) {
		if (!f->have_first) {
			f->lt_token = tok;
			f->linktype = token_linktype(&g->cfg, tok);
			if (!pkt_linktype_known(f->linktype))
				f->stop = "a link type without a grammar";
		} else if (tok != f->lt_token) {
			f->stop = "a packet of another link type";
		}
	} else if (f->pos < FIXED) {
		f->time[f->pos - 1] = (uint8_t)tok;
	} else {
		feed_byte(g, tok, given);
	}
	f->pos++;
	return f->patch;
}

void gram_patch(const struct gram *g, size_t *at, uint8_t bytes[2])
{
	*at = g->f->patch_at;
	bytes[0] = g->f->patch_bytes[0];
	bytes[1] = g->f->patch_bytes[1];
}

int gram_flow_key(const struct gram *g, struct gram_endpoint e[2])
{
	const struct gram_flow *f = g->f;
	uint8_t addr[2][16];
	uint16_t port[2] = { 0, 0 };
	struct gram_endpoint k;
	memset(&k, 0, sizeof k);
	if (f->have_first) {
		k.ip_version = (uint8_t)f->ipv, k.proto = (uint8_t)f->proto;
		k.n_vlan = f->n_vlan, k.vlan = f->vlan;
		memcpy(addr, f->addr, sizeof addr);
		memcpy(port, f->port, sizeof port);
	} else {	/* the first packet's bytes, once they hold the key */
		struct shape S = shape_of(f, f->off);
		int ports = S.proto == PROTO_TCP || S.proto == PROTO_UDP;
		if (!f->open || S.proto < 0 || S.l4 == UNKNOWN || f->off < S.l4 + (ports ? 4 : 0))
			return 0;
		size_t src = S.l3 + (S.ipv == 4 ? 12 : 8), len = S.ipv == 4 ? 4 : 16;
		memset(addr, 0, sizeof addr);
		memcpy(addr[0], f->frame + src, len);
		memcpy(addr[1], f->frame + src + len, len);
		if (ports) {
			port[0] = (uint16_t)be_get(f->frame + S.l4, 2);
			port[1] = (uint16_t)be_get(f->frame + S.l4 + 2, 2);
		}
		k.ip_version = (uint8_t)S.ipv, k.proto = (uint8_t)S.proto;
		if (f->linktype == LT_ETHERNET && S.l3 == 18)
			k.n_vlan = 1, k.vlan = (uint16_t)(be_get(f->frame + 14, 2) & 0x0fff);
	}
	for (int s = 0; s < 2; s++) {
		e[s] = k;
		e[s].port = port[s];
		memcpy(e[s].addr, addr[s], 16);
		memcpy(e[s].peer, addr[!s], 16);
	}
	return 1;
}
