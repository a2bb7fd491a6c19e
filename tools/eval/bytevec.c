/* bytevec.c: a flow's first bytes, masked as tgpt's input, as a vector of
 * numbers for realism-eval's byte baseline (bytevec.h). */
#include <stdint.h>
#include <stdio.h>

#include "packet.h"
#include "bytevec.h"

size_t byte_vector_len(unsigned k_packets, unsigned n_bytes)
{
	return (size_t)k_packets * ((size_t)n_bytes + 1);
}

/* The masked fields of packet p, set to 0 among the n bytes in out. */
static void mask_bytes(uint32_t linktype, const struct packet *p, float *out, size_t n)
{
	struct pkt_info pi;
	struct pkt_span span[PKT_MASK_SPANS];
	pkt_decode(linktype, p->data, p->caplen, &pi);
	int spans = pkt_mask_spans(&pi, PKT_MASK_MAC | PKT_MASK_IP | PKT_MASK_PORT, span);
	for (int s = 0; s < spans; s++) {
		if (span[s].off < 0)
			continue;
		size_t end = (size_t)span[s].off + span[s].len;
		for (size_t j = (size_t)span[s].off; j < end && j < n; j++)
			out[j] = 0;
	}
}

void byte_vector(const struct flow_rec *f, unsigned k_packets, unsigned n_bytes, float *out)
{
	for (unsigned i = 0; i < k_packets; i++, out += n_bytes + 1) {
		if (i >= f->n_packets) {
			for (unsigned j = 0; j <= n_bytes; j++)
				out[j] = BYTEVEC_ABSENT;
			continue;
		}
		const struct packet *p = &f->pkt[i];
		size_t have = p->caplen < n_bytes ? p->caplen : n_bytes;
		for (size_t j = 0; j < n_bytes; j++)
			out[j] = j < have ? (float)p->data[j] : BYTEVEC_ABSENT;
		mask_bytes(f->linktype, p, out, have);
		/* signed nanoseconds, as flow2tok's interval (its exactness aside) */
		double dt = 0;
		if (i > 0) {
			uint64_t prev = f->pkt[i - 1].ts_ns, cur = p->ts_ns;
			dt = cur >= prev ? (double)(cur - prev) / 1e9 : -((double)(prev - cur) / 1e9);
		}
		out[n_bytes] = (float)dt;
	}
}

const char *byte_vector_name(size_t i, unsigned n_bytes, char *buf, size_t len)
{
	size_t per = (size_t)n_bytes + 1, pkt = i / per, at = i % per;
	if (at == n_bytes)
		snprintf(buf, len, "p%zu_dt", pkt);
	else
		snprintf(buf, len, "p%zu_b%zu", pkt, at);
	return buf;
}
