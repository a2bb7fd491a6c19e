/* features.h: what jsdiv(1) compares between real and generated traffic and
 * what realism-eval(1)'s classifiers learn from: the header fields of each
 * IP packet, the features of each flow (the six k-fingerprinting features
 * the TrafficGPT paper uses, after Hayes & Danezis 2016, plus size and
 * duration), and one flow's feature vector. Flows are pcap2flow(1)'s flow
 * records: the grouping of packets into flows is its alone. No I/O. */
#ifndef TGPT_FEATURES_H
#define TGPT_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* ------------------------------------------------------------ packets */

/* The header fields of one IP packet. */
struct pkt_fields {
	uint8_t ip_version;  /* 4 or 6 */
	uint8_t addr_len;    /* 4 or 16; the addresses are zero-padded to 16 */
	uint8_t src_ip[16], dst_ip[16];
	uint8_t proto;       /* after IPv6 extension headers */
	uint8_t ttl;         /* TTL or hop limit */
	uint8_t has_ports;   /* TCP or UDP with its ports captured */
	uint16_t src_port, dst_port;
	uint8_t has_tcp;     /* TCP flags and window captured (20 header bytes) */
	uint8_t tcp_flags;
	uint16_t tcp_window; /* as on the wire, not scaled */
	uint8_t tcp_hlen;    /* TCP header length from its data offset */
	uint32_t tcp_seq, tcp_ack;
	uint32_t tcp_payload; /* payload bytes, from the IP length (or the wire
	                       * length when the IP length is 0) */
	uint8_t n_vlan;      /* VLAN ids, outer first: part of the flow key */
	uint16_t vlan[2];
	uint32_t wirelen;    /* length on the wire */
};

/* Decodes a captured frame (pcap LINKTYPE_ linktype) into f. Returns 1 for an
 * IP packet, 0 for anything else (f is then meaningless). Callers reading a
 * capture fix the lengths first as pcap2flow does: caplen at most 256 KiB
 * (record.h, MAX_PACKET_BYTES), wirelen at least caplen. */
int pkt_fields_decode(uint32_t linktype, const uint8_t *data, size_t caplen, uint32_t wirelen,
		      struct pkt_fields *f);

/* ------------------------------------------------------------ flows */

#define KFP_CHUNK 20   /* packets per concentration chunk */
#define KFP_ALT_CONC 20 /* sub-lists of the alternative concentration */

/* The features of one flow. "Outgoing" packets go the way of the flow's first
 * packet (client to server), "incoming" ones the other way. Numbering after
 * the TrafficGPT paper's Table III (f1..f6). */
struct flow_features {
	uint64_t packets, bytes; /* all packets; wire bytes */
	double duration;         /* seconds from first to last packet */
	uint64_t in_pkts;        /* f1 */
	double out_frac;         /* f2: outgoing / all */
	double in_frac;          /* f3: incoming / all */
	double out_order_std;    /* f4: population std-dev of the ordering list:
	                          * for each outgoing packet, the number of
	                          * packets before it in the flow */
	uint64_t out_pkts;       /* f5 */
	double alt_conc[KFP_ALT_CONC]; /* concentration list (outgoing packets
	                          * in each chunk of 20) cut by k-FP's chunkIt
	                          * into 20 sub-lists, each summed */
	double alt_conc_sum;     /* f6: the sum of alt_conc */
};

/* A flow's features, built one packet at a time. */
struct flow_acc {
	uint64_t first_ns, last_ns, packets, bytes;
	uint64_t n_dir[2];       /* [0] outgoing, [1] incoming */
	double order_mean, order_m2; /* Welford over the ordering list */
	uint8_t *conc;           /* outgoing packets per chunk of KFP_CHUNK */
	size_t n_conc, conc_cap;
};

void flow_acc_init(struct flow_acc *a);
/* Adds the next packet of the flow; dir 0 is outgoing (the direction of the
 * first packet), 1 incoming. Returns the time since the flow's previous
 * packet in seconds (0 for the first; negative when the clock stepped back). */
double flow_acc_add(struct flow_acc *a, uint64_t ts_ns, uint32_t wirelen, int dir);
/* The features of the packets added so far (zeros for none). */
void flow_acc_features(const struct flow_acc *a, struct flow_features *ff);
/* Forgets the packets, keeping the buffer. */
void flow_acc_reset(struct flow_acc *a);
void flow_acc_free(struct flow_acc *a);

/* k-FP's chunkIt(seq, num) (a list cut into num nearly equal, contiguous
 * pieces by float steps of len/num) with each piece summed into out[num]
 * (missing pieces are 0). */
void kfp_chunk_sums(const uint8_t *seq, size_t len, double *out, size_t num);

/* ------------------------------------------------------------ vectors */

/* One flow as a vector of numbers for a classifier (realism-eval(1),
 * FEATURES): for each of the first n_packets packets of the record its wire
 * length, direction (1: against the first packet), time since the previous
 * packet (seconds) and TCP flags; then the IP version, protocol, TTL and TCP
 * window of the first packet each way; with ports, the first packet's source
 * and destination ports; then the flow features above. Values a flow does
 * not have (packets beyond its end, the TCP flags of UDP) are NAN, which
 * XGBoost takes as missing. Every packet of the record counts, IP or not. */
#define FV_PER_PACKET 4
#define FV_HEADER 8
#define FV_PORTS 2
#define FV_FLOW 9
size_t flow_vector_len(unsigned n_packets, int ports);
/* Fills out[flow_vector_len(n_packets, ports)]; acc is scratch space. */
void flow_vector(const struct flow_rec *f, unsigned n_packets, int ports, struct flow_acc *acc,
		 float *out);
/* The name of element i ("len_3", "ttl_in", "f4_out_order_std", ...) in buf. */
const char *flow_vector_name(size_t i, unsigned n_packets, int ports, char *buf, size_t len);

#endif
