/* grammar-private.h: what the three files of the decoding grammar
 * (grammar.h) share, private to tools/tgpt-infer: grammar.c walks a flow
 * token by token (its state, the positions, packets done, feeding),
 * grammar-fields.c says which bytes each position of a frame's headers
 * allows, grammar-dns.c keeps DNS messages whole. Here: the constants, byte
 * sets, the flow's state, and the functions one file calls in another. */
#ifndef TGPT_GRAMMAR_PRIVATE_H
#define TGPT_GRAMMAR_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

static inline void bs_clear(struct bset *s)
{
	memset(s, 0, sizeof *s);
}

static inline void bs_add(struct bset *s, int v)
{
	s->w[v >> 6] |= 1ull << (v & 63);
}

static inline int bs_has(const struct bset *s, int v)
{
	return v >= 0 && v < 256 && (s->w[v >> 6] >> (v & 63) & 1);
}

/* Adds lo .. hi (inclusive), a word at a time. */
static inline void bs_range(struct bset *s, int lo, int hi)
{
	if (lo > hi)
		return;
	for (int w = lo >> 6; w <= hi >> 6; w++) {
		int a = w == lo >> 6 ? lo & 63 : 0, b = w == hi >> 6 ? hi & 63 : 63;
		uint64_t upto = b == 63 ? ~0ull : (1ull << (b + 1)) - 1;
		s->w[w] |= upto & ~((1ull << a) - 1);
	}
}

static inline void bs_one(struct bset *s, int v)
{
	bs_clear(s);
	bs_add(s, v);
}

static inline void bs_all(struct bset *s)
{
	memset(s->w, 0xff, sizeof s->w);
}

static inline int bs_empty(const struct bset *s)
{
	return !(s->w[0] | s->w[1] | s->w[2] | s->w[3]);
}

/* The only member, or -1 when there are none or several. */
static inline int bs_only(const struct bset *s)
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
static inline void bs_to_mask(const struct bset *s, unsigned char *mask)
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
static inline void bs_field_range(struct bset *s, uint64_t lo, uint64_t hi, int n, int k, uint64_t pre)
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
static inline void bs_field_value(struct bset *s, uint64_t v, int n, int k)
{
	bs_add(s, (int)(v >> (8 * (n - 1 - k)) & 0xff));
}

/* Values from lo up (modulo 2^(8n)) by 1 to span (a counter or a window). */
static inline void bs_field_window(struct bset *s, uint64_t lo, uint64_t span, int n, int k, uint64_t pre)
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

static inline uint64_t be_get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static inline int32_t seq_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

static inline size_t min_l4(int proto)
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
static inline int ethertype_ipv(unsigned type)
{
	return type == ETH_IPV4 ? 4 : type == ETH_IPV6 ? 6 : 0;
}

static inline int family_ipv(uint32_t fam)
{
	return fam == 2 ? 4 : fam == 10 || fam == 24 || fam == 28 || fam == 30 ? 6 : 0;
}

static inline int is_icmp(int ipv, int proto)
{
	return (ipv == 4 && proto == PROTO_ICMP) || (ipv == 6 && proto == PROTO_ICMPV6);
}

static inline int has_grammar(int ipv, int proto)
{
	return proto == PROTO_TCP || proto == PROTO_UDP || is_icmp(ipv, proto);
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

/* grammar.c: */

/* Frame bytes the packet may have: max_frame, and the token budget with
 * END and reserve tokens after it. */
size_t frame_room(const struct gram *g, size_t reserve);

/* grammar-fields.c: the bytes of each header position */

/* A first packet's key byte: the values whose endpoint no other flow has. */
void mask_taken(const struct gram *g, const struct shape *S, size_t off, struct bset *s);
/* The sequence number direction d sends (1), or 0 when it is free. */
int tcp_seq(const struct gram_flow *f, int d, uint32_t *seq);
/* The acknowledgement numbers direction d may send: span values from lo. */
void tcp_ack(const struct gram_flow *f, int d, uint32_t *lo, uint32_t *span);
/* The flags direction d may send with a payload of pay bytes. */
void tcp_flags(const struct gram_flow *f, int d, size_t pay, struct bset *s);
/* The pseudo header's sum of the transport segment (RFC 793, 8200). */
uint64_t pseudo_sum(const struct gram_flow *f, const struct shape *S, int proto);
/* The bytes direction d allows at frame offset off (the shape S of the
 * bytes before it). */
void frame_set(const struct gram *g, const struct shape *S, int d, size_t off, struct bset *s);

/* grammar-dns.c: DNS messages */

/* A DNS port: 53 (DNS), 5353 (mDNS), 5355 (LLMNR). */
int dns_port(uint64_t port);
/* Whether a DNS message can be len bytes: a header alone, or with items
 * that fill the rest (a question of 5 bytes, or of 7 and more). */
int dns_size_ok(size_t len);
/* Whether a TCP segment to or from port 53 can carry pay bytes: none, or
 * one DNS message after its 2-byte length (a message a segment, so that
 * none waits for another segment to be whole). */
int dns_tcp_payload_ok(size_t pay);
/* Whether a TCP segment of len bytes (header and data) to or from port 53
 * has a data offset that leaves it a DNS payload. */
int dns_tcp_len_ok(size_t len);
/* Whether the packet's payload is a DNS message (its ports fed): UDP to or
 * from port 53, 5353 or 5355, TCP to or from 53. */
int is_dns(const struct gram_flow *f, const struct shape *S, size_t off);
/* Where the packet's DNS message starts (TCP: after its length). */
size_t dns_start(const struct shape *S);
/* The walk of the packet's DNS message to byte at (from where it is, or
 * from the start). */
const struct dns_walk *dns_walk_to(const struct gram *g, const struct shape *S, size_t at);
/* The bytes byte `at` of the packet's DNS message may be. */
void dns_byte(const struct gram *g, const struct shape *S, size_t at, struct bset *s);
/* A DNS flow's IP length field: a payload a DNS message can fill (over
 * TCP, with some data offset). */
void dns_length(const struct gram_flow *f, const struct shape *S, size_t field, int k,
	struct bset *s);

#endif
