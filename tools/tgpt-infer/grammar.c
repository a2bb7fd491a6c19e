/* grammar.c: the decoding grammar of grammar.h: where each position of a
 * flow is (link header, IP header, transport header, payload), the
 * checksums, and the flow's state after each packet (habits, TCP sequence
 * and stage). The bytes each position allows are grammar-fields.c's, DNS
 * messages grammar-dns.c's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "grammar-private.h"

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
size_t frame_room(const struct gram *g, size_t reserve)
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

/* ------------------------------------------------------------------ positions */

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

