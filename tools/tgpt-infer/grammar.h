/* grammar.h: the decoding grammar of generated flows (issue 14): a per-flow
 * state machine that, position by position, gives the sampler either the
 * one token that must come (forced) or the set of tokens that may (a
 * mask), and is told every token actually emitted, so that whatever the
 * model's quality every generated flow is one flow of valid packets that
 * pcap2flow(1) regroups whole, and its TCP holds together as realism-eval's
 * coherence check (tools/eval/coherence.h) wants. The model keeps every
 * choice the guarantees leave free: direction, lengths, flags within the
 * TCP state machine, TTLs and addresses of the first packets, window, TCP
 * options, payload bytes, time intervals, and when the flow ends.
 *
 * Positions. A flow is tokens (tgpt-stream(5)): labels (ids >= 258, a
 * conditional model's, ignored), then packets of START, a link-type token,
 * 8 time tokens and one token per frame byte, then END. The grammar counts
 * every token and knows at each one which field of which layer it is in.
 *
 * What each position may hold (d: the packet's direction, 0 as the flow's
 * first packet, 1 reverse; "habit": what a direction's first packet chose,
 * forced on its later packets):
 *  - START / END between packets: START when some direction may send and a
 *    smallest packet still fits the token budget (max_tokens, END
 *    included); END when the flow may end: after its first packet, and for
 *    TCP once the handshake is done (or refused); END alone after a RST or
 *    once both FINs are acknowledged (pcap2flow ends the flow there; a
 *    packet after it would be another flow), and when nothing fits.
 *  - Link type: the pinned token (cfg.link_token), else the first packet's
 *    among those with a grammar (Ethernet 1; raw IP 12, 14, 101, 228, 229;
 *    BSD loopback 0, 108; Linux cooked 113; 255 when escape_linktype is
 *    276, cooked v2), then that one for every packet.
 *  - Time interval (binary64 seconds, big-endian): 0 for the first packet;
 *    then finite, >= 0 and at most max_interval (pcap2flow's idle timeout,
 *    less a millisecond of time-stamp rounding), and once both FINs are
 *    sent at most what remains of pcap2flow's linger (2 s). Positive
 *    binary64 numbers order as their bit patterns, so this is a range of
 *    8-byte integers, masked byte by byte like every range below.
 *  - Link header: Ethernet: the first packet's MACs free (source not a
 *    group address), its type IPv4 or IPv6 (0800, 86dd) or one VLAN tag
 *    (8100, the tag free) then one of those; later packets the flow's MACs,
 *    swapped for d = 1, and the same tag and type (a flow to a group
 *    address goes one way, and is not TCP). Cooked and loopback
 *    headers: a direction's first packet fills the fields pkt_validate and
 *    Wireshark read (protocol or family as the IP version, ARPHRD Ethernet,
 *    address length 6, packet type 0..4), the address bytes free; then the
 *    habit. Raw IP: the version nibble (4 with IHL 5, or 6) is the choice.
 *  - IPv4: version 4 and IHL 5 (no options); TOS free; total length: the
 *    packet's length (below); ID: free on a direction's first packet, then
 *    0 if that was 0, else above the previous by 1 to GRAM_ID_STEP (the
 *    first packet's habit: zero or counting); flags DF or none (habit),
 *    never a fragment; TTL free but not 0 on a direction's first packet,
 *    then constant; protocol TCP, UDP or ICMP on the first packet (another
 *    only when a prompt's first packet has it), then the flow's; header
 *    checksum (below); addresses free on the first packet, then the
 *    flow's, swapped for d = 1.
 *  - IPv6: version 6, traffic class free, flow label habit, payload length
 *    the packet's length, next header TCP, UDP or ICMPv6 (no extension
 *    headers; others from a prompt), hop limit as TTL, addresses as IPv4.
 *  - Length: the IP length field is sampled, high byte first, within what
 *    fits: the transport's smallest header, max_frame bytes a frame, the
 *    token budget, 65535; a TCP direction that has sent its FIN only
 *    header-sized lengths (no data after FIN). The frame then ends exactly
 *    where that length says: no trailer, no snaplen cut. UDP's length is
 *    written from it.
 *  - TCP: ports free on the first packet, then the flow's (swapped for d =
 *    1); the state machine of coherence.h without retransmissions:
 *      first packet (generated): SYN (ECE, CWR free), seq free, ack 0;
 *      after the SYN: only d = 1, SYN-ACK (ECE free) or RST-ACK, its seq
 *        free, ack = ISN + 1;
 *      after the SYN-ACK: only d = 0, seq = ISN + 1, ack = the peer's ISN +
 *        1, ACK with PSH / FIN free, or RST;
 *      then either side: seq = where its data so far ends (payload, SYN and
 *        FIN count), ack from its last ack to where the peer's data ends
 *        (forced to the latter while it has acknowledged nothing), ACK set
 *        and PSH (with data), FIN (once a side), ECE, CWR free, or RST
 *        without data;
 *      a flow whose first packet (from a prompt) is no SYN continues
 *        unsynchronised: each side's seq where its data ends, the other
 *        side's first seq where the first side's ack points.
 *    Data offset 5 to 15 within the length; NS, URG and the urgent pointer
 *    0; options a sequence of EOL (then zeros), NOP, MSS, window scale
 *    (shift <= 14), SACK-permitted (those three on SYNs only), timestamps,
 *    and SACK blocks (not on SYNs), each at most once, kind and length
 *    forced to fit, their values free.
 *  - UDP: ports as TCP; length written; checksum (below), never 0 over IPv6.
 *  - ICMP / ICMPv6 (generated first packets): echo request or reply (8, 0
 *    / 128, 129), code 0, the identifier the flow's, the sequence free.
 *  - DNS (a UDP payload to or from port 53, 5353 or 5355, which Wireshark
 *    dissects as DNS): a message that fills the payload exactly: counts it
 *    can hold, names of labels (at most 63 bytes, 255 in all) ending in the
 *    root or a pointer to a label of an earlier name, and records of type
 *    A, NS, CNAME, PTR, MX, TXT or AAAA whose data fits the type; the Z
 *    flag 0. A payload too short for a DNS message takes no DNS port.
 *  - Payload: free.
 *
 * Checksums. A checksum comes before the bytes it covers. Three ways, the
 * cheapest that applies, decided when the checksum's position comes:
 *  (A) written: every byte after it is known (forced): a TCP segment
 *      without options or data, an empty UDP datagram, and every IPv4
 *      header but the first packet's (its addresses are the flow's; a
 *      direction still open does not matter: the sum does not change when
 *      the addresses swap).
 *  (B) fixed up: the checksum's two bytes are sampled like any free field,
 *      and the packet's last two bytes, when they are free (payload, but
 *      of a DNS message only an address's or a text's; ICMP's sequence),
 *      are written so that the sum comes out right. Free of cost; the
 *      model loses the choice of those two bytes.
 *  (C) re-fed: the stream's state is saved before the checksum (gram_pos's
 *      save), the checksum is sampled as a placeholder, and when the last
 *      byte it covers is fed the grammar computes it: the caller writes it
 *      over the placeholder in the flow (gram_patch), restores the saved
 *      state and feeds the tokens from the checksum on again (forced, no
 *      sampling). The first packet's IPv4 header (10 tokens), TCP segments
 *      of less than two data bytes with options (at most 43), one-byte UDP
 *      payloads, DNS messages that end in a name or a question.
 * So the recurrent state is always fed what the pcap will hold (the issue's
 * wish), never a placeholder it keeps. Trade-off: (B) costs nothing but
 * two payload bytes of every data packet; (C) costs the re-fed steps (a
 * model step each, without the sampler) and a state copy; a placeholder
 * kept in the state would cost nothing and condition the model on bytes
 * the pcap does not hold; generating the payload first would need a model
 * trained on another token order. Forced tokens skip the sampler, not the
 * model's output head (a few per cent of a step: not worth a second kind
 * of step). Measured (make bench BENCH=infer, docs/RESULTS.md): grammar
 * and raw generation at the same tokens/s; re-fed tokens are under 1 %
 * of the tokens generated.
 *
 * Directions. After the first packet a packet's direction is open until a
 * byte tells: at each position the grammar takes the union of what each
 * still-possible direction allows, and the token the model picks keeps the
 * directions that allow it (usually the first destination MAC or address
 * byte decides). A direction that cannot send now (TCP's handshake) is not
 * among them.
 *
 * Prompts. A prompt's tokens are fed as they are (gram_feed given = 1):
 * the grammar reads them rather than checks them, and a prompt packet once
 * complete sets the flow's state (addresses, habits, TCP sequence). A
 * prompt the grammar cannot continue (an unknown link type, a fragment,
 * IPv4 options, IPv6 extension headers, QinQ, a packet of another flow)
 * leaves the flow ended after its last whole packet: END is forced there
 * (gram_next gives GRAM_STUCK inside a packet, which the caller drops). A
 * prompt that ends inside a packet is continued to the length its header
 * gives.
 *
 * Other flows. pcap2flow would join two generated flows with the same
 * addresses and ports. cfg.taken, when set, tells whether a flow of the
 * same run already uses an endpoint (address, peer address, port,
 * protocol, IP version, VLAN): on a generated first packet the source
 * port's low byte (for ICMP, the destination address's last byte) is
 * masked to endpoints not taken. gram_needs_keys says when the next
 * position asks; gram_flow_key gives the flow's endpoints to register as
 * soon as its first packet holds them. */
#ifndef TGPT_GRAMMAR_H
#define TGPT_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#define GRAM_START 256
#define GRAM_END 257
#define GRAM_TOKENS 258		/* the ids a mask covers: bytes, START, END */

#define GRAM_SAMPLE (-1)	/* gram_pos.token: choose from the mask */
#define GRAM_STUCK (-2)		/* inside a packet the flow cannot continue */
#define GRAM_ID_STEP 1024	/* largest IPv4 ID increment on a counting direction */

/* One side of a flow as pcap2flow keys it. */
struct gram_endpoint {
	uint8_t ip_version, proto, n_vlan, pad;
	uint16_t vlan, port;	/* port 0 for protocols without */
	uint8_t addr[16], peer[16];	/* IPv4 in the first 4 bytes, the rest 0 */
};

struct gram_cfg {
	int link_token;		/* every packet's link-type token, or -1 */
	uint32_t escape_linktype;	/* the link type of token 255 (0: none) */
	size_t max_tokens;	/* of the flow: labels, prompt and END included */
	size_t max_frame;	/* bytes of one frame (<= 65535 + link header) */
	double max_interval;	/* seconds between packets: the idle timeout (120) */
	double linger;		/* seconds after both FINs (pcap2flow's 2) */
	/* Nonzero when another flow of the run uses the endpoint. NULL: none. */
	int (*taken)(void *user, const struct gram_endpoint *e);
	void *taken_user;
};

void gram_cfg_default(struct gram_cfg *c);

/* What may come at the next position (gram_next). */
struct gram_pos {
	int token;		/* the forced token, GRAM_SAMPLE, or GRAM_STUCK */
	int save;		/* save the stream's state before feeding it (C) */
};

struct gram_flow;	/* grammar-private.h */

struct gram {
	struct gram_cfg cfg;
	struct gram_flow *f;
};

/* Exits with EX_OSERR when memory runs out. */
void gram_init(struct gram *g, const struct gram_cfg *c);
void gram_free(struct gram *g);
/* A new flow. */
void gram_reset(struct gram *g);

/* The next position: the forced token, or GRAM_SAMPLE with mask[0 ..
 * GRAM_TOKENS) set to 1 for the allowed tokens (at least one), 0 for the
 * others, or GRAM_STUCK. Call before every token; for a prompt's (given)
 * only save is answered (mask untouched). */
struct gram_pos gram_next(struct gram *g, unsigned char *mask, int given);
/* Whether the next position's mask asks cfg.taken (a generated first
 * packet's key byte): the caller may wait until the flows before this one
 * have registered their keys, so that flows do not depend on scheduling. */
int gram_needs_keys(const struct gram *g);

/* The token emitted (given: from a prompt, read rather than checked).
 * Returns 1 when a checksum deferred by (C) is now known (gram_patch), 0
 * otherwise. A generated token outside gram_next's answer is a caller's
 * bug: the flow is stuck from there. */
int gram_feed(struct gram *g, int tok, int given);
/* After gram_feed returned 1: the flow's tokens at [*at, *at + 2) become
 * bytes[0..2) (counting every token fed since gram_reset); the state saved
 * before token *at is to be restored and tokens *at .. (last fed) fed
 * again. */
void gram_patch(const struct gram *g, size_t *at, uint8_t bytes[2]);

/* Once the first packet's bytes hold them (its ports, or its addresses
 * for protocols without): its two endpoints (returns 1), else 0. */
int gram_flow_key(const struct gram *g, struct gram_endpoint e[2]);
/* Why the flow can go no further (a static phrase), NULL while it can. */
const char *gram_stopped(const struct gram *g);
/* Tokens fed since gram_reset; packets completed. */
size_t gram_tokens(const struct gram *g);
long gram_packets(const struct gram *g);

#endif
