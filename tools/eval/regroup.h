/* regroup.h: whether generated flows come back as themselves: the packets
 * of each generated flow (a token record) against the flows pcap2flow(1)
 * makes of the capture tok2pcap(1) wrote from the records. A generated flow
 * regroups when its packets all come back, all in one flow, and that flow
 * holds nothing else. Packets are matched by their bytes (the records
 * carry no time stamps of their own: tok2pcap gives them their times). */
#ifndef TGPT_REGROUP_H
#define TGPT_REGROUP_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct regroup_pkt;

struct regroup {
	struct regroup_pkt *pkt;	/* every generated packet, sorted by its bytes */
	size_t n_pkt;
	uint8_t *bytes;
	uint64_t records;	/* generated flows (token records) */
	uint64_t flows;		/* flows pcap2flow made */
	uint64_t *flow_of;	/* per record: the flow of its packets (UINT64_MAX: none yet) */
	uint8_t *broken;	/* per record: packets in two flows, or lost */
	uint64_t *owners;	/* per flow: records in it (capped at 2) */
	uint8_t *foreign;	/* per flow: a packet of no record */
	size_t flows_cap;
};

/* Reads the token records of path ("-": stdin). Exits 66 when it cannot
 * be opened, 65 when it is damaged. */
void regroup_open(struct regroup *r, const char *path);
/* One flow of the generated capture, in pcap2flow's order. */
void regroup_flow(struct regroup *r, const struct flow_rec *f);
/* Records that came back as exactly one flow. */
uint64_t regroup_alone(const struct regroup *r);
void regroup_free(struct regroup *r);

#endif
