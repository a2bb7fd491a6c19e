/* reader-private.h: what the two files of pcap2flow's capture reader
 * (reader.h) share, private to tools/pcap2flow: reader.c sniffs a file's
 * header and reads classic pcap, libpcap's captures and live interfaces;
 * pcapng.c reads the pcapng files of several link types that libpcap
 * refuses. Here: the sniffed header, the byte readers, pcapng's block
 * types, and the functions reader.c calls in pcapng.c. */
#ifndef PCAP2FLOW_READER_PRIVATE_H
#define PCAP2FLOW_READER_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reader.h"

/* What the start of a capture file says that libpcap does not tell: the
 * file's own timestamp precision and its LINKTYPE (pcap_datalink gives the
 * platform's DLT, which differs for some, e.g. raw IP). */
struct sniff {
	uint8_t *buf;
	size_t len, cap;
	int eof, error;       /* end of input, errno of a read error */
	int known;            /* a pcap or pcapng header was recognised */
	int classic;          /* pcap (not pcapng) */
	int big;              /* pcap: its fields are big-endian */
	int modified;         /* pcap: Kuznetzov's longer record headers */
	uint16_t major, minor; /* pcap: format version */
	uint8_t tsprec;
	uint32_t linktype;
	int has_linktype;
	int mixed;            /* pcapng: interfaces of several link types */
};

static inline uint32_t rd32(const uint8_t *p, int big)
{
	return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
		   : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static inline uint16_t rd16(const uint8_t *p, int big)
{
	return big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

/* ------------------------------------------------------------ pcapng (pcapng.c) */

#define NG_SHB 0x0a0d0d0au
#define NG_BOM 0x1a2b3c4du
#define NG_IDB 1u
#define NG_PB 2u  /* the obsolete packet block */
#define NG_SPB 3u
#define NG_EPB 6u
#define NG_OPT_TSRESOL 9
#define NG_OPT_TSOFFSET 14

/* Fills *ifc from an interface description block's body (sniffing reads
 * the link type and time resolution with it). */
void pcapng_parse_idb(const uint8_t *body, size_t len, int big, struct ng_iface *ifc);
/* Whether a seekable pcapng file has interfaces of several link types
 * beyond those the sniffer saw (libpcap would refuse it). */
int pcapng_scan_mixed(int fd, uint64_t start);
/* The pcapng reader of a capture c: open on f (c->ng set), its next
 * packet (1, 0 at the end, -1 with in->why), close (frees c->lts too). */
void pcapng_open(struct capture *c, FILE *f, const struct sniff *sn);
int pcapng_next(struct ng_in *in, struct capture *c, struct raw *raw);
void pcapng_close(struct capture *c);

#endif
