/* coherence.c: the TCP handshake and sequence/acknowledgement checks of a
 * flow record (see coherence.h). Sequence arithmetic is modulo 2^32
 * (RFC 793): a - b as a signed 32-bit number says which comes first. */
#include "coherence.h"

#include <string.h>

#include "features.h"
#include "packet.h"

#define PROTO_TCP 6

enum stage { OPEN, SYN_SENT, SYN_ACKED, ESTABLISHED };

struct tcp_state {
	enum stage stage;
	uint32_t isn[2];  /* [0] initiator, [1] responder */
	uint32_t next[2]; /* where each side's data so far ends */
	uint32_t ack[2];  /* each side's highest acknowledgement */
	int acked[2];     /* whether ack[] holds one */
};

static int32_t seq_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

static int fail(const char **why, const char *what)
{
	if (why)
		*why = what;
	return 0;
}

/* The space a segment takes in its side's sequence: payload, SYN, FIN. */
static uint32_t seq_space(const struct pkt_fields *p)
{
	return p->tcp_payload + !!(p->tcp_flags & TCP_SYN) + !!(p->tcp_flags & TCP_FIN);
}

/* A segment of the established connection (the handshake's last ACK too). */
static int established(struct tcp_state *s, const struct pkt_fields *p, int d, const char **why)
{
	uint8_t fl = p->tcp_flags;
	if (fl & TCP_SYN) {
		/* a SYN or SYN-ACK sent again: nothing new */
		if (p->tcp_seq == s->isn[d])
			return 1;
		return fail(why, "SYN inside the connection");
	}
	int32_t from = seq_diff(p->tcp_seq, s->next[d]);
	if (from > 0)
		return fail(why, "sequence gap: data missing or out of order");
	uint32_t end = p->tcp_seq + seq_space(p);
	if (seq_diff(end, s->next[d]) > 0)
		s->next[d] = end; /* new data, perhaps after some sent again */
	if (fl & TCP_ACK) {
		if (s->acked[d] && seq_diff(p->tcp_ack, s->ack[d]) < 0)
			return fail(why, "acknowledgement going backwards");
		if (seq_diff(p->tcp_ack, s->next[!d]) > 0)
			return fail(why, "acknowledgement of data never sent");
		if (!s->acked[d] || seq_diff(p->tcp_ack, s->ack[d]) > 0)
			s->ack[d] = p->tcp_ack;
		s->acked[d] = 1;
	}
	return 1;
}

/* One packet. Returns 1 to go on, 0 when incoherent, 2 when a refusal
 * ended the handshake coherently. */
static int step(struct tcp_state *s, const struct pkt_fields *p, int d, const char **why)
{
	uint8_t fl = p->tcp_flags;
	int syn = (fl & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	int syn_ack = (fl & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK);
	switch (s->stage) {
	case OPEN:
		if (d != 0 || !syn)
			return fail(why, "no SYN opens the flow");
		s->isn[0] = p->tcp_seq;
		s->next[0] = p->tcp_seq + seq_space(p);
		s->stage = SYN_SENT;
		return 1;
	case SYN_SENT:
		if (d == 0 && syn)
			return p->tcp_seq == s->isn[0] ? 1 : fail(why, "a second SYN with another sequence number");
		if (d == 1 && (fl & TCP_RST))
			return (fl & TCP_ACK) && p->tcp_ack == s->next[0] ? 2
				: fail(why, "a RST that does not acknowledge the SYN");
		if (d != 1 || !syn_ack)
			return fail(why, "no SYN-ACK answers the SYN");
		if (p->tcp_ack != s->next[0])
			return fail(why, "the SYN-ACK acknowledges another sequence number");
		s->isn[1] = p->tcp_seq;
		s->next[1] = p->tcp_seq + seq_space(p);
		s->ack[1] = p->tcp_ack;
		s->acked[1] = 1;
		s->stage = SYN_ACKED;
		return 1;
	case SYN_ACKED:
		if ((d == 0 && syn && p->tcp_seq == s->isn[0]) || (d == 1 && syn_ack && p->tcp_seq == s->isn[1]))
			return 1;
		if (d == 0 && (fl & TCP_ACK) && !(fl & TCP_SYN) && p->tcp_ack != s->next[1])
			return fail(why, "the third packet does not acknowledge the SYN-ACK");
		if (!(fl & TCP_RST) && (d != 0 || !(fl & TCP_ACK)))
			return fail(why, "no ACK completes the handshake");
		s->stage = ESTABLISHED;
		return established(s, p, d, why);
	default:
		return established(s, p, d, why);
	}
}

int tcp_flow_check(const struct flow_rec *f, const char **why)
{
	struct pkt_fields p;
	if (why)
		*why = NULL;
	if (f->n_packets == 0)
		return -1;
	const struct packet *first = &f->pkt[0];
	int decoded = pkt_fields_decode(f->linktype, first->data, first->caplen, first->wirelen, &p);
	if (f->proto != PROTO_TCP && !(decoded && p.proto == PROTO_TCP))
		return -1;

	struct tcp_state s;
	memset(&s, 0, sizeof s);
	for (size_t i = 0; i < f->n_packets; i++) {
		const struct packet *pk = &f->pkt[i];
		if (!pkt_fields_decode(f->linktype, pk->data, pk->caplen, pk->wirelen, &p) ||
		    p.proto != PROTO_TCP || !p.has_tcp || p.tcp_hlen < 20)
			return fail(why, "a packet that is not TCP, or its header cut");
		int rc = step(&s, &p, pk->dir != first->dir, why);
		if (rc == 0)
			return 0;
		if (rc == 2)
			return i + 1 == f->n_packets ? 1 : fail(why, "packets after the refusal");
	}
	if (s.stage != ESTABLISHED)
		return fail(why, "handshake incomplete");
	return 1;
}
