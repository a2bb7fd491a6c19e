/* coherence.h: whether a TCP flow holds together as a connection, the
 * flow-level half of realism-eval(1)'s validity (pkt_validate in packet.h
 * is the packet-level half): a three-way handshake opens it, and then each
 * side's sequence numbers advance by what it sent and acknowledgements
 * never go back nor ahead of what the other side sent. */
#ifndef TGPT_COHERENCE_H
#define TGPT_COHERENCE_H

#include "record.h"

/* Judges one flow record. Returns 1 when it is TCP and coherent; 0 when it
 * is TCP and not, with *why (when why is not NULL) a static phrase naming
 * the first thing wrong; -1 when it is not a TCP flow (the record's
 * protocol and its first packet say so). The rules:
 *  - the first packet is a SYN (without ACK) from the initiator; the other
 *    side answers with a SYN-ACK acknowledging it, or refuses with a RST
 *    acknowledging it (a coherent flow too); the initiator's next packet
 *    acknowledges the SYN-ACK; a SYN or SYN-ACK may be sent again, with the
 *    same sequence number;
 *  - then, on each side, a segment starts where that side's data so far
 *    ends (its payload, and 1 for SYN and FIN, move that end), or before it:
 *    retransmissions, keep-alives and repacketized data are fine, a gap is
 *    not; a SYN in the middle is not;
 *  - an acknowledgement never goes below an earlier one of the same side
 *    nor beyond what the other side has sent;
 *  - every packet is TCP with its 20-byte header captured. */
int tcp_flow_check(const struct flow_rec *f, const char **why);

#endif
