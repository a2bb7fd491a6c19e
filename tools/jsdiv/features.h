/* features.h: what jsdiv(1) compares between real and generated traffic, and
 * what realism-eval's discriminator will learn from: the header fields of
 * each IP packet, the features of each flow (the six k-fingerprinting
 * features the TrafficGPT paper uses, after Hayes & Danezis 2016, plus size
 * and duration), and the grouping of a capture's packets into bidirectional
 * flows the way pcap2flow(1) groups them. No I/O: callers feed packets. */
#ifndef TGPT_FEATURES_H
#define TGPT_FEATURES_H

#include <stddef.h>
#include <stdint.h>

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

/* ------------------------------------------------------------ grouping */

/* Groups IP packets into bidirectional flows as pcap2flow(1) does: the key is
 * IP version, protocol, both addresses, both ports (TCP and UDP only) and the
 * VLAN ids; a flow ends after IDLE_NS without packets (capture clock: the
 * latest timestamp seen), on a TCP RST, with the packet that acknowledges the
 * second of the FINs of both directions, a linger of min(2 s, idle) after
 * FINs both ways when that ACK is not seen (a SYN without ACK ends it at once
 * and opens the next), and at 2^24 packets. Each ended flow goes to the DONE
 * callback. */
typedef void (*flow_done_fn)(const struct flow_features *ff, void *ctx);

struct flow_table {
	struct open_flow **bucket;
	size_t mask, n_open;
	uint64_t idle_ns, linger_ns, now_ns, packets, flows;
	flow_done_fn done;
	void *ctx;
};

void flow_table_init(struct flow_table *t, uint64_t idle_ns, flow_done_fn done, void *ctx);
/* Adds one packet; returns its inter-arrival time within its flow (seconds;
 * 0 for a flow's first packet, which *first says). */
double flow_table_add(struct flow_table *t, uint64_t ts_ns, const struct pkt_fields *f,
		      int *first);
/* Ends every open flow (end of the capture). */
void flow_table_finish(struct flow_table *t);
/* Frees the table; flows still open are dropped unreported (call
 * flow_table_finish first to count them). */
void flow_table_free(struct flow_table *t);

#endif
