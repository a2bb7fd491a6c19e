/* grammar-dns.c: DNS messages that hold together (grammar.h): a UDP
 * payload to or from a DNS port, or a DNS-over-TCP segment, walked byte by
 * byte (header, names, questions, records) so that the counts, names and
 * lengths drawn always make a whole message. */
#include <string.h>

#include "grammar-private.h"

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

int dns_port(uint64_t port)
{
	return port == 53 || port == 5353 || port == 5355;
}

/* Whether a DNS message can be len bytes: a header alone, or with items
 * that fill the rest (a question of 5 bytes, or of 7 and more). */
int dns_size_ok(size_t len)
{
	return len == DNS_HEADER || len == DNS_HEADER + DNS_QUESTION_MIN ||
		len >= DNS_HEADER + DNS_QUESTION_MIN + 2;
}

/* Whether a TCP segment to or from port 53 can carry pay bytes: none, or
 * one DNS message after its 2-byte length (a message a segment, so that
 * none waits for another segment to be whole). */
int dns_tcp_payload_ok(size_t pay)
{
	return pay == 0 || (pay >= 2 && dns_size_ok(pay - 2));
}

/* Whether a TCP segment of len bytes (header and data) to or from port 53
 * has a data offset that leaves it a DNS payload. */
int dns_tcp_len_ok(size_t len)
{
	for (size_t doff = 5; doff <= 15 && 4 * doff <= len; doff++)
		if (dns_tcp_payload_ok(len - 4 * doff))
			return 1;
	return 0;
}

/* Whether the packet's payload is a DNS message (its ports fed): UDP to or
 * from port 53, 5353 or 5355, TCP to or from 53. */
int is_dns(const struct gram_flow *f, const struct shape *S, size_t off)
{
	if (f->opaque || S->l4 == UNKNOWN || off < S->l4 + 4)
		return 0;
	uint64_t a = be_get(f->frame + S->l4, 2), b = be_get(f->frame + S->l4 + 2, 2);
	if (S->proto == PROTO_TCP)
		return a == 53 || b == 53;
	return S->proto == PROTO_UDP && (dns_port(a) || dns_port(b));
}

/* Where the packet's DNS message starts (TCP: after its length). */
size_t dns_start(const struct shape *S)
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
const struct dns_walk *dns_walk_to(const struct gram *g, const struct shape *S, size_t at)
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
void dns_byte(const struct gram *g, const struct shape *S, size_t at, struct bset *s)
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
void dns_length(const struct gram_flow *f, const struct shape *S, size_t field, int k,
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
