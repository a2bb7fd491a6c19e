/* bytevec.h: one flow as the numbers of an nPrint-style classifier (Holland
 * et al., CCS 2021), realism-eval --baseline --features bytes: the first
 * bytes of the first packets as tgpt's classifier sees them (masked as
 * flow2tok --mask mac,ip,port masks them), with each packet's time interval.
 * Flows are pcap2flow(1)'s flow records. No I/O. */
#ifndef TGPT_BYTEVEC_H
#define TGPT_BYTEVEC_H

#include <stddef.h>

#include "record.h"

/* What is written where a flow has no such packet, or a packet no such
 * captured byte (bytes are 0..255). */
#define BYTEVEC_ABSENT (-1.0f)

/* k_packets * (n_bytes + 1). */
size_t byte_vector_len(unsigned k_packets, unsigned n_bytes);

/* Fills out[byte_vector_len(k_packets, n_bytes)]: for each of the first
 * k_packets packets of f, its first n_bytes captured bytes from the link
 * header on, with the link-layer and IP addresses and the TCP/UDP ports
 * zeroed, then its time since the flow's previous packet in seconds (0 for
 * the first; negative when the clock stepped back), as tgpt's tokens carry
 * it. BYTEVEC_ABSENT for the bytes past a packet's caplen and for all of a
 * packet beyond the flow's end. */
void byte_vector(const struct flow_rec *f, unsigned k_packets, unsigned n_bytes, float *out);

/* The name of element i ("p0_b13", "p2_dt") in buf. */
const char *byte_vector_name(size_t i, unsigned n_bytes, char *buf, size_t len);

#endif
