/* packet.h: a bounds-checked decoder of captured frames, link layer to
 * transport ports. pcap2flow keys flows with it, flow2tok masks addresses at
 * the offsets it finds, and the evaluators read header fields through it.
 * It never reads past caplen, whatever the bytes say. */
#ifndef TGPT_PACKET_H
#define TGPT_PACKET_H

#include <stddef.h>
#include <stdint.h>

/* pcap LINKTYPE_ values the decoder understands. */
#define LT_NULL 0         /* BSD loopback, host byte order family */
#define LT_ETHERNET 1
#define LT_RAW 101        /* raw IPv4 or IPv6 */
/* Old captures carry the BSDs' DLT_RAW values (12 on OpenBSD, 14 elsewhere)
 * in their headers; libpcap reads both as raw IP, and so do we. */
#define LT_RAW_BSD12 12
#define LT_RAW_BSD14 14
#define LT_LOOP 108       /* OpenBSD loopback, network byte order family */
#define LT_LINUX_SLL 113
#define LT_IPV4 228
#define LT_IPV6 229
#define LT_LINUX_SLL2 276

struct pkt_info {
	/* link layer */
	int l2_addr_off[2];   /* offsets of link addresses (MACs), -1 when none;
	                       * [0] source, [1] destination (SLL: source only) */
	uint8_t l2_addr_len[2];
	uint16_t ethertype;   /* after VLAN tags; 0 when unknown */
	uint8_t n_vlan;
	uint16_t vlan[2];     /* VLAN ids, outer first (more tags: first two) */
	int vlan_off[2];      /* offsets of the tags' TCI fields */
	int l3_off;           /* start of the IP header, -1 when not IP */
	/* IP */
	uint8_t ip_version;   /* 0, 4 or 6 */
	uint8_t ip_hlen;      /* IPv4 header length / 40 for IPv6 */
	uint8_t addr_len;     /* 4 or 16 */
	int src_off, dst_off; /* offsets of the addresses */
	uint8_t ttl;          /* TTL or hop limit */
	uint8_t proto;        /* transport protocol after IPv6 extension headers */
	uint32_t ip_total_len; /* from the header: IPv4 total length, IPv6 40 + payload length */
	int fragment;         /* part of a fragmented datagram */
	int later_fragment;   /* not the first fragment: no transport header */
	/* transport */
	int l4_off;           /* start of TCP/UDP/ICMP header, -1 when absent */
	int has_ports;        /* TCP or UDP with the ports captured */
	uint16_t src_port, dst_port;
	int port_off;         /* offset of the source port (dst port follows) */
	uint8_t tcp_flags;    /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 ... */
	uint8_t tcp_hlen;     /* TCP data offset in bytes */
	uint16_t tcp_window;
	uint32_t tcp_seq, tcp_ack;
	int l4_payload_off;   /* first byte after the transport header, -1 */
	/* The capture ended inside a header the decoding needed (link, IP,
	 * or the ports): what is absent above was cut off, not missing. */
	int cut;
};

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* Decodes as far as the bytes allow; fields not reached keep "absent" values
 * (offsets -1, versions 0). Returns 1 when the frame carries IP, 0 otherwise. */
int pkt_decode(uint32_t linktype, const uint8_t *p, size_t caplen, struct pkt_info *pi);

/* The fields masked in tgpt's classifier input (flow2tok --mask, realism-eval
 * --features bytes): link-layer addresses, IP addresses, TCP/UDP ports. */
#define PKT_MASK_MAC 1
#define PKT_MASK_IP 2
#define PKT_MASK_PORT 4
#define PKT_MASK_SPANS 5 /* two link addresses, two IP addresses, the ports */
struct pkt_span {
	int off;       /* from the start of the frame */
	unsigned len;
};
/* The spans of a decoded frame that the fields in mask occupy (those the
 * decoder found), at most PKT_MASK_SPANS into out; returns how many. Spans
 * may reach past the captured bytes: callers clip them. */
int pkt_mask_spans(const struct pkt_info *pi, unsigned mask, struct pkt_span *out);

/* Whether the decoder knows the link type at all. */
int pkt_linktype_known(uint32_t linktype);
/* The short name of a link type the decoder knows ("EN10MB", "RAW"), or
 * NULL. */
const char *pkt_linktype_name(uint32_t linktype);

/* Whether a captured frame's headers hold together, as a generator must
 * get them right (realism-eval(1), VALIDITY): lengths (captured against
 * wire length, IP total or payload length against the frame, header
 * lengths, TCP data offset, UDP length), versions (the link layer's type
 * against the IP version), the IPv4 header checksum, and, when the whole
 * datagram was captured and is not a fragment, the TCP, UDP, ICMP and
 * ICMPv6 checksums (checksums left to offloading, as captured on the
 * sending host, are accepted: an IPv4 header checksum of 0, a TCP or UDP
 * checksum holding only the pseudo-header's sum). What a short snaplen cut off
 * is not judged; Ethernet padding of short frames and a 4-byte frame check
 * sequence are allowed. Frames that are not IP are judged by their link
 * header only. Returns 1 when valid, else 0 with *why (when why is not
 * NULL) a static phrase naming the first inconsistency. */
int pkt_validate(uint32_t linktype, const uint8_t *p, size_t caplen, uint32_t wirelen,
		 const char **why);

/* pkt_validate for a packet inside an IP flow (the generator's check,
 * realism-eval's validity): also invalid when the frame is not IP (it
 * belongs to no flow), and, given first (the flow's first packet,
 * first_caplen bytes), when it is not of first's flow as it is or reversed:
 * its IP version, protocol, VLAN ids, addresses and TCP/UDP ports. */
int pkt_validate_flow(uint32_t linktype, const uint8_t *p, size_t caplen, uint32_t wirelen,
		      const uint8_t *first, size_t first_caplen, const char **why);

/* The one's-complement sum of RFC 1071 over n bytes added to sum, not yet
 * folded (bytes in network order; an odd last byte is the high half of a
 * word); and the sum folded to 16 bits. A checksum field holds the
 * complement of the folded sum of what it covers. */
uint64_t pkt_sum16(const uint8_t *p, size_t n, uint64_t sum);
uint16_t pkt_fold16(uint64_t sum);

#endif
