/* packet.c: the bounds-checked frame decoder of packet.h. Each layer checks
 * that the bytes it reads were captured before reading them, so a truncated
 * or hostile frame only stops the decoding early, never reads past caplen. */
#include "packet.h"

#include <string.h>

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd
#define ETH_VLAN 0x8100     /* 802.1Q */
#define ETH_QINQ 0x88a8     /* 802.1ad service tag */
#define ETH_QINQ_OLD 0x9100 /* pre-standard QinQ */
#define ETH_PPPOE_SESSION 0x8864
#define ETH_MPLS 0x8847
#define ETH_MPLS_MULTICAST 0x8848

#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_NONE_ 59
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_MOBILITY_ 135
#define IPPROTO_HIP_ 139
#define IPPROTO_SHIM6_ 140

/* Stacked tags or labels beyond these are not followed: no real network
 * nests deeper, and the limit keeps a crafted frame from walking far. */
#define MAX_TAGS 8

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Whether n bytes starting at off were captured. */
static int have(size_t caplen, size_t off, size_t n)
{
	return off <= caplen && n <= caplen - off;
}

/* have() for a header the decoding needs: when it was not captured whole,
 * pi says the frame was cut (a short snapshot length), not that it holds
 * something else. */
static int need(struct pkt_info *pi, size_t caplen, size_t off, size_t n)
{
	if (have(caplen, off, n))
		return 1;
	pi->cut = 1;
	return 0;
}

static void clear_info(struct pkt_info *pi)
{
	memset(pi, 0, sizeof *pi);
	pi->l2_addr_off[0] = pi->l2_addr_off[1] = -1;
	pi->vlan_off[0] = pi->vlan_off[1] = -1;
	pi->l3_off = -1;
	pi->src_off = pi->dst_off = -1;
	pi->l4_off = -1;
	pi->port_off = -1;
	pi->l4_payload_off = -1;
}

/* ------------------------------------------------------------ transport */

static void decode_tcp(const uint8_t *p, size_t caplen, size_t off, struct pkt_info *pi)
{
	if (!need(pi, caplen, off, 4))
		return;
	pi->has_ports = 1;
	pi->port_off = (int)off;
	pi->src_port = be16(p + off);
	pi->dst_port = be16(p + off + 2);
	if (!have(caplen, off, 20))
		return;
	pi->tcp_seq = be32(p + off + 4);
	pi->tcp_ack = be32(p + off + 8);
	pi->tcp_hlen = (uint8_t)((p[off + 12] >> 4) * 4);
	pi->tcp_flags = p[off + 13];
	pi->tcp_window = be16(p + off + 14);
	if (pi->tcp_hlen >= 20 && have(caplen, off, pi->tcp_hlen))
		pi->l4_payload_off = (int)(off + pi->tcp_hlen);
}

static void decode_udp(const uint8_t *p, size_t caplen, size_t off, struct pkt_info *pi)
{
	if (!need(pi, caplen, off, 4))
		return;
	pi->has_ports = 1;
	pi->port_off = (int)off;
	pi->src_port = be16(p + off);
	pi->dst_port = be16(p + off + 2);
	if (have(caplen, off, 8))
		pi->l4_payload_off = (int)(off + 8);
}

/* The transport header at off, when the IP layer reached one. */
static void decode_transport(const uint8_t *p, size_t caplen, size_t off, struct pkt_info *pi)
{
	if (pi->later_fragment)
		return;
	if (off >= caplen) {
		pi->cut = 1;
		return;
	}
	pi->l4_off = (int)off;
	switch (pi->proto) {
	case IPPROTO_TCP_:
		decode_tcp(p, caplen, off, pi);
		break;
	case IPPROTO_UDP_:
		decode_udp(p, caplen, off, pi);
		break;
	case IPPROTO_ICMP_:
	case IPPROTO_ICMPV6_:
		/* type, code, checksum and 4 bytes of rest-of-header */
		if (have(caplen, off, 8))
			pi->l4_payload_off = (int)(off + 8);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------ IP */

/* IPv4 (RFC 791). The 20 fixed bytes must be there for the addresses; the
 * options may be cut, which leaves the transport absent. */
static int decode_ipv4(const uint8_t *p, size_t caplen, size_t off, struct pkt_info *pi)
{
	if (!need(pi, caplen, off, 20) || p[off] >> 4 != 4)
		return 0;
	size_t hlen = (size_t)(p[off] & 0x0f) * 4;
	if (hlen < 20)
		return 0;
	uint16_t frag = be16(p + off + 6);
	pi->l3_off = (int)off;
	pi->ip_version = 4;
	pi->ip_hlen = (uint8_t)hlen;
	pi->addr_len = 4;
	pi->ip_total_len = be16(p + off + 2);
	pi->ttl = p[off + 8];
	pi->proto = p[off + 9];
	pi->src_off = (int)off + 12;
	pi->dst_off = (int)off + 16;
	pi->fragment = (frag & 0x3fff) != 0;     /* MF set or offset non-zero */
	pi->later_fragment = (frag & 0x1fff) != 0;
	if (need(pi, caplen, off, hlen))
		decode_transport(p, caplen, off + hlen, pi);
	return 1;
}

static int is_ipv6_extension(uint8_t nh)
{
	switch (nh) {
	case IPPROTO_HOPOPTS_:
	case IPPROTO_ROUTING_:
	case IPPROTO_FRAGMENT_:
	case IPPROTO_AH_:
	case IPPROTO_DSTOPTS_:
	case IPPROTO_MOBILITY_:
	case IPPROTO_HIP_:
	case IPPROTO_SHIM6_:
		return 1;
	default:
		return 0;
	}
}

/* IPv6 (RFC 8200) and its extension headers. When an extension header is
 * cut, proto stays the number of that header and the transport is absent. */
static int decode_ipv6(const uint8_t *p, size_t caplen, size_t off, struct pkt_info *pi)
{
	if (!need(pi, caplen, off, 40) || p[off] >> 4 != 6)
		return 0;
	pi->l3_off = (int)off;
	pi->ip_version = 6;
	pi->ip_hlen = 40;
	pi->addr_len = 16;
	pi->ip_total_len = 40u + be16(p + off + 4);
	pi->ttl = p[off + 7];
	pi->src_off = (int)off + 8;
	pi->dst_off = (int)off + 24;

	uint8_t nh = p[off + 6];
	size_t at = off + 40;
	/* Every extension header is at least 8 bytes, so the walk ends. */
	while (is_ipv6_extension(nh)) {
		if (!need(pi, caplen, at, 8)) {
			pi->proto = nh;
			return 1;
		}
		size_t len;
		if (nh == IPPROTO_FRAGMENT_) {
			uint16_t fo = be16(p + at + 2);
			/* offset or more-fragments: an atomic fragment
			 * (both zero, RFC 6946) is a whole datagram */
			pi->fragment = (fo & 0xfff9) != 0;
			pi->later_fragment = (fo & 0xfff8) != 0;
			len = 8;
		} else if (nh == IPPROTO_AH_) {
			len = ((size_t)p[at + 1] + 2) * 4;
		} else {
			len = ((size_t)p[at + 1] + 1) * 8;
		}
		nh = p[at];
		at += len;
		if (pi->later_fragment)
			break;
	}
	pi->proto = nh;
	if (nh != IPPROTO_NONE_ && need(pi, caplen, at, 0))
		decode_transport(p, caplen, at, pi);
	return 1;
}

/* The IP header at off: by the ethertype when there is one, else (ethertype
 * 0) by its version nibble. */
static int decode_ip(const uint8_t *p, size_t caplen, size_t off, uint16_t ethertype,
		     struct pkt_info *pi)
{
	if (ethertype == 0 && need(pi, caplen, off, 1))
		ethertype = p[off] >> 4 == 4 ? ETH_IPV4 : p[off] >> 4 == 6 ? ETH_IPV6 : 0;
	if (ethertype == ETH_IPV4)
		return decode_ipv4(p, caplen, off, pi);
	if (ethertype == ETH_IPV6)
		return decode_ipv6(p, caplen, off, pi);
	return 0;
}

/* ------------------------------------------------------------ link layers */

/* What follows an ethertype: VLAN tags, PPPoE, MPLS, then IP. type is the
 * link layer's protocol field and off where its payload starts. */
static int decode_ethertype(const uint8_t *p, size_t caplen, uint16_t type, size_t off,
			    struct pkt_info *pi)
{
	for (int tags = 0; (type == ETH_VLAN || type == ETH_QINQ || type == ETH_QINQ_OLD) &&
	     tags < MAX_TAGS; tags++) {
		if (!need(pi, caplen, off, 4)) {
			pi->ethertype = type;
			return 0;
		}
		if (pi->n_vlan < 2) {
			pi->vlan_off[pi->n_vlan] = (int)off;
			pi->vlan[pi->n_vlan] = be16(p + off) & 0x0fff;
			pi->n_vlan++;
		}
		type = be16(p + off + 2);
		off += 4;
	}
	pi->ethertype = type;

	if (type == ETH_PPPOE_SESSION) {
		/* version/type, code, session id, length, then the PPP protocol */
		if (!need(pi, caplen, off, 8))
			return 0;
		uint16_t ppp = be16(p + off + 6);
		off += 8;
		if (ppp == PPP_IPV4)
			return decode_ipv4(p, caplen, off, pi);
		if (ppp == PPP_IPV6)
			return decode_ipv6(p, caplen, off, pi);
		return 0;
	}
	if (type == ETH_MPLS || type == ETH_MPLS_MULTICAST) {
		/* Labels up to the bottom of the stack; the payload carries no
		 * type, so IP is recognised by its version nibble. */
		for (int labels = 0; labels < MAX_TAGS; labels++) {
			if (!need(pi, caplen, off, 4))
				return 0;
			int bottom = p[off + 2] & 0x01;
			off += 4;
			if (bottom)
				return decode_ip(p, caplen, off, 0, pi);
		}
		return 0;
	}
	if (type == ETH_IPV4 || type == ETH_IPV6)
		return decode_ip(p, caplen, off, type, pi);
	return 0;
}

static int decode_ethernet(const uint8_t *p, size_t caplen, struct pkt_info *pi)
{
	if (have(caplen, 6, 6)) {
		pi->l2_addr_off[0] = 6; /* source */
		pi->l2_addr_len[0] = 6;
	}
	if (have(caplen, 0, 6)) {
		pi->l2_addr_off[1] = 0; /* destination */
		pi->l2_addr_len[1] = 6;
	}
	if (!need(pi, caplen, 12, 2))
		return 0;
	if (be16(p + 12) >= 0x0600)
		return decode_ethertype(p, caplen, be16(p + 12), 14, pi);
	/* 802.3 with a length: only LLC/SNAP (AA AA 03, OUI) carries an
	 * ethertype on. */
	if (need(pi, caplen, 14, 8) && p[14] == 0xaa && p[15] == 0xaa && p[16] == 0x03)
		return decode_ethertype(p, caplen, be16(p + 20), 22, pi);
	return 0;
}

/* Linux cooked capture v1: packet type, ARPHRD, address length, 8 address
 * bytes, protocol. Only the sender's address is captured. */
static int decode_sll(const uint8_t *p, size_t caplen, struct pkt_info *pi)
{
	if (!need(pi, caplen, 0, 16))
		return 0;
	uint16_t alen = be16(p + 4);
	if (alen > 0) {
		pi->l2_addr_off[0] = 6;
		pi->l2_addr_len[0] = (uint8_t)(alen > 8 ? 8 : alen);
	}
	return decode_ethertype(p, caplen, be16(p + 14), 16, pi);
}

/* Linux cooked capture v2: protocol, reserved, ifindex, ARPHRD, packet
 * type, address length, 8 address bytes. */
static int decode_sll2(const uint8_t *p, size_t caplen, struct pkt_info *pi)
{
	if (!need(pi, caplen, 0, 20))
		return 0;
	uint8_t alen = p[11];
	if (alen > 0) {
		pi->l2_addr_off[0] = 12;
		pi->l2_addr_len[0] = alen > 8 ? 8 : alen;
	}
	return decode_ethertype(p, caplen, be16(p), 20, pi);
}

/* BSD loopback: a 4-byte address family, in the capturing host's byte order
 * for NULL and in network order for LOOP. Like tcpdump, a value with bits in
 * the upper half is taken as the other byte order. */
static int decode_loopback(const uint8_t *p, size_t caplen, struct pkt_info *pi)
{
	if (!need(pi, caplen, 0, 4))
		return 0;
	uint32_t family = le32(p);
	if (family & 0xffff0000u)
		family = be32(p);
	switch (family) {
	case 2: /* AF_INET everywhere */
		pi->ethertype = ETH_IPV4;
		return decode_ipv4(p, caplen, 4, pi);
	case 10: /* Linux */
	case 24: /* NetBSD, OpenBSD, BSD/OS */
	case 28: /* FreeBSD */
	case 30: /* Darwin */
		pi->ethertype = ETH_IPV6;
		return decode_ipv6(p, caplen, 4, pi);
	default:
		return 0;
	}
}

/* Raw IP: the version nibble decides, and LT_IPV4 / LT_IPV6 insist on it. */
static int decode_raw(const uint8_t *p, size_t caplen, int version, struct pkt_info *pi)
{
	if (!need(pi, caplen, 0, 1))
		return 0;
	int v = p[0] >> 4;
	if (version && v != version)
		return 0;
	if (v == 4) {
		pi->ethertype = ETH_IPV4;
		return decode_ipv4(p, caplen, 0, pi);
	}
	if (v == 6) {
		pi->ethertype = ETH_IPV6;
		return decode_ipv6(p, caplen, 0, pi);
	}
	return 0;
}

int pkt_decode(uint32_t linktype, const uint8_t *p, size_t caplen, struct pkt_info *pi)
{
	int ip;

	clear_info(pi);
	if (p == NULL)
		caplen = 0;
	switch (linktype) {
	case LT_ETHERNET:
		ip = decode_ethernet(p, caplen, pi);
		break;
	case LT_LINUX_SLL:
		ip = decode_sll(p, caplen, pi);
		break;
	case LT_LINUX_SLL2:
		ip = decode_sll2(p, caplen, pi);
		break;
	case LT_RAW:
	case LT_RAW_BSD12:
	case LT_RAW_BSD14:
		ip = decode_raw(p, caplen, 0, pi);
		break;
	case LT_IPV4:
		ip = decode_raw(p, caplen, 4, pi);
		break;
	case LT_IPV6:
		ip = decode_raw(p, caplen, 6, pi);
		break;
	case LT_NULL:
	case LT_LOOP:
		ip = decode_loopback(p, caplen, pi);
		break;
	default:
		ip = 0;
		break;
	}
	return ip && pi->ip_version != 0;
}

int pkt_mask_spans(const struct pkt_info *pi, unsigned mask, struct pkt_span *out)
{
	int n = 0;
	if (mask & PKT_MASK_MAC)
		for (int i = 0; i < 2; i++)
			if (pi->l2_addr_off[i] >= 0)
				out[n++] = (struct pkt_span){ pi->l2_addr_off[i], pi->l2_addr_len[i] };
	if ((mask & PKT_MASK_IP) && pi->ip_version) {
		out[n++] = (struct pkt_span){ pi->src_off, pi->addr_len };
		out[n++] = (struct pkt_span){ pi->dst_off, pi->addr_len };
	}
	if ((mask & PKT_MASK_PORT) && pi->has_ports)
		out[n++] = (struct pkt_span){ pi->port_off, 4 };
	return n;
}

int pkt_linktype_known(uint32_t linktype)
{
	switch (linktype) {
	case LT_NULL:
	case LT_ETHERNET:
	case LT_RAW:
	case LT_RAW_BSD12:
	case LT_RAW_BSD14:
	case LT_LOOP:
	case LT_LINUX_SLL:
	case LT_IPV4:
	case LT_IPV6:
	case LT_LINUX_SLL2:
		return 1;
	default:
		return 0;
	}
}

const char *pkt_linktype_name(uint32_t linktype)
{
	switch (linktype) {
	case LT_NULL:
		return "NULL";
	case LT_ETHERNET:
		return "EN10MB";
	case LT_RAW:
	case LT_RAW_BSD12:
	case LT_RAW_BSD14:
		return "RAW";
	case LT_LOOP:
		return "LOOP";
	case LT_LINUX_SLL:
		return "LINUX_SLL";
	case LT_IPV4:
		return "IPV4";
	case LT_IPV6:
		return "IPV6";
	case LT_LINUX_SLL2:
		return "LINUX_SLL2";
	default:
		return NULL;
	}
}

/* ------------------------------------------------------------ validation */

/* pkt_validate: whether the headers of a frame agree with each other and
 * with its lengths (packet.h). Each check names what it found wrong. */

#define ETH_MIN_PAYLOAD 46 /* Ethernet pads shorter payloads */
#define ETH_FCS 4

static int invalid(const char **why, const char *what)
{
	if (why)
		*why = what;
	return 0;
}

uint64_t pkt_sum16(const uint8_t *p, size_t n, uint64_t sum)
{
	for (; n > 1; p += 2, n -= 2)
		sum += be16(p);
	if (n)
		sum += (uint64_t)p[0] << 8;
	return sum;
}

uint16_t pkt_fold16(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The link header every frame of the type has, before any tags. */
static size_t link_header_len(uint32_t linktype)
{
	switch (linktype) {
	case LT_ETHERNET:
		return 14;
	case LT_LINUX_SLL:
		return 16;
	case LT_LINUX_SLL2:
		return 20;
	case LT_NULL:
	case LT_LOOP:
		return 4;
	default:
		return 0;
	}
}

/* Bytes on the wire after the IP packet: Ethernet pads payloads shorter
 * than its minimum (cooked and raw captures of such frames keep that
 * padding), and some captures keep the 4-byte frame check sequence. */
static int trailer_allowed(uint32_t linktype, size_t l3, size_t ip_end, uint32_t wirelen)
{
	if (ip_end >= wirelen)
		return 1;
	if (linktype == LT_NULL || linktype == LT_LOOP)
		return 0;
	if (wirelen - l3 <= ETH_MIN_PAYLOAD + ETH_FCS)
		return 1;
	return linktype == LT_ETHERNET && wirelen - ip_end == ETH_FCS;
}

/* A frame pkt_decode found no IP in: only its link layer is judged. */
static int validate_not_ip(uint32_t linktype, const uint8_t *p, size_t caplen, uint32_t wirelen,
			   const struct pkt_info *pi, const char **why)
{
	int complete = caplen == wirelen;
	switch (linktype) {
	case LT_RAW:
	case LT_RAW_BSD12:
	case LT_RAW_BSD14:
	case LT_IPV4:
	case LT_IPV6:
		if (pi->ethertype == 0)
			return invalid(why, "not an IP packet on a raw IP link (version field)");
		break;
	default:
		break;
	}
	if (pi->ethertype == ETH_IPV4 || pi->ethertype == ETH_IPV6)
		/* the link layer says IP, but the header did not decode */
		return complete ? invalid(why, "IP header cut, of the wrong version, or IHL below 5") : 1;
	if (pi->ethertype == ETH_VLAN || pi->ethertype == ETH_QINQ || pi->ethertype == ETH_QINQ_OLD)
		return complete ? invalid(why, "VLAN tag cut") : 1;
	if (linktype == LT_ETHERNET && be16(p + 12) < 0x0600) {
		uint16_t len = be16(p + 12);
		if (len > 1500 || len > wirelen - 14)
			return invalid(why, "802.3 length field beyond the frame");
	}
	return 1;
}

/* The pseudo-header's sum (RFC 793, RFC 8200 8.1) for a transport segment
 * of len bytes. */
static uint64_t pseudo_sum(const uint8_t *p, const struct pkt_info *pi, size_t len)
{
	uint64_t sum = pkt_sum16(p + pi->src_off, pi->addr_len, 0);
	sum = pkt_sum16(p + pi->dst_off, pi->addr_len, sum);
	return sum + pi->proto + (len & 0xffff) + (len >> 16);
}

/* A TCP or UDP checksum: right, or what offloading leaves (the folded
 * pseudo-header sum, to be completed by the card). */
static int checksum_ok(const uint8_t *p, const struct pkt_info *pi, size_t l4, size_t len,
		       size_t field)
{
	uint64_t pseudo = pseudo_sum(p, pi, len);
	if (pkt_fold16(pkt_sum16(p + l4, len, pseudo)) == 0xffff)
		return 1;
	return be16(p + l4 + field) == pkt_fold16(pseudo);
}

/* The transport header from l4 to end (the IP packet's end by its header).
 * whole: the datagram was captured entire and is not a fragment. */
static int validate_transport(const uint8_t *p, size_t caplen, const struct pkt_info *pi, size_t l4,
			      size_t end, int whole, const char **why)
{
	size_t len = end > l4 ? end - l4 : 0;
	switch (pi->proto) {
	case IPPROTO_TCP_: {
		if (len < 20)
			return invalid(why, "TCP header beyond the IP packet");
		if (!have(caplen, l4, 13))
			return 1;
		size_t doff = (size_t)(p[l4 + 12] >> 4) * 4;
		if (doff < 20)
			return invalid(why, "TCP data offset below 5");
		if (doff > len)
			return invalid(why, "TCP header longer than the IP packet");
		if (whole && !checksum_ok(p, pi, l4, len, 16))
			return invalid(why, "TCP checksum");
		return 1;
	}
	case IPPROTO_UDP_: {
		if (len < 8)
			return invalid(why, "UDP header beyond the IP packet");
		if (!have(caplen, l4, 8))
			return 1;
		size_t ulen = be16(p + l4 + 4);
		if (ulen < 8)
			return invalid(why, "UDP length below 8");
		if (pi->fragment ? ulen < len : ulen != len)
			return invalid(why, "UDP length differs from the IP payload length");
		if (!whole)
			return 1;
		if (be16(p + l4 + 6) == 0)
			return pi->ip_version == 4 ? 1 : invalid(why, "UDP checksum zero over IPv6");
		return checksum_ok(p, pi, l4, len, 6) ? 1 : invalid(why, "UDP checksum");
	}
	case IPPROTO_ICMP_:
		if (pi->ip_version != 4)
			return 1;
		if (len < 8)
			return invalid(why, "ICMP message shorter than 8 bytes");
		if (whole && pkt_fold16(pkt_sum16(p + l4, len, 0)) != 0xffff)
			return invalid(why, "ICMP checksum");
		return 1;
	case IPPROTO_ICMPV6_:
		if (pi->ip_version != 6)
			return 1;
		if (len < 4)
			return invalid(why, "ICMPv6 message shorter than 4 bytes");
		if (whole && pkt_fold16(pkt_sum16(p + l4, len, pseudo_sum(p, pi, len))) != 0xffff)
			return invalid(why, "ICMPv6 checksum");
		return 1;
	default:
		return 1;
	}
}

/* The IP packet's length by its header, checked against the frame: a
 * length of 0 in a packet longer than the field can say (GRO's and big
 * TCP's giant packets) stands for the rest of the frame. Returns 0 (and
 * *why) when it does not fit. */
static int ip_length_fits(uint32_t linktype, const struct pkt_info *pi, uint32_t wirelen,
			  size_t *tot, const char **why)
{
	size_t l3 = (size_t)pi->l3_off, avail = wirelen - l3;
	size_t fixed = pi->ip_version == 4 ? 0 : 40;
	*tot = pi->ip_total_len;
	if (*tot == fixed && avail - fixed > 0xffff)
		*tot = avail;
	if (pi->ip_version == 4 && *tot < pi->ip_hlen)
		return invalid(why, "IPv4 total length shorter than its header");
	if (*tot > avail)
		return invalid(why, pi->ip_version == 4 ? "IPv4 total length beyond the frame"
							: "IPv6 payload length beyond the frame");
	if (!trailer_allowed(linktype, l3, l3 + *tot, wirelen))
		return invalid(why, "frame longer than its IP packet");
	return 1;
}

static int validate_ipv4(uint32_t linktype, const uint8_t *p, size_t caplen, uint32_t wirelen,
			 const struct pkt_info *pi, const char **why)
{
	size_t l3 = (size_t)pi->l3_off, hlen = pi->ip_hlen, tot;
	if (!ip_length_fits(linktype, pi, wirelen, &tot, why))
		return 0;
	/* the total length covers the header, so only a snaplen cuts it */
	if (!have(caplen, l3, hlen))
		return 1;
	/* 0: left to offloading, as on the capturing host's own packets */
	if (be16(p + l3 + 10) != 0 && pkt_fold16(pkt_sum16(p + l3, hlen, 0)) != 0xffff)
		return invalid(why, "IPv4 header checksum");
	if (pi->later_fragment)
		return 1;
	int whole = have(caplen, l3, tot) && !pi->fragment;
	return validate_transport(p, caplen, pi, l3 + hlen, l3 + tot, whole, why);
}

static int validate_ipv6(uint32_t linktype, const uint8_t *p, size_t caplen, uint32_t wirelen,
			 const struct pkt_info *pi, const char **why)
{
	size_t l3 = (size_t)pi->l3_off, tot;
	if (!ip_length_fits(linktype, pi, wirelen, &tot, why))
		return 0;
	if (pi->later_fragment || pi->proto == IPPROTO_NONE_)
		return 1;
	if (pi->l4_off < 0) {
		/* the extension headers ran to the end of what was captured */
		if (caplen == wirelen)
			return invalid(why, "IPv6 extension headers leave no room for the transport");
		return 1;
	}
	if ((size_t)pi->l4_off > l3 + tot)
		return invalid(why, "IPv6 extension headers run past the payload");
	int whole = have(caplen, l3, tot) && !pi->fragment;
	return validate_transport(p, caplen, pi, (size_t)pi->l4_off, l3 + tot, whole, why);
}

int pkt_validate(uint32_t linktype, const uint8_t *p, size_t caplen, uint32_t wirelen,
		 const char **why)
{
	struct pkt_info pi;
	if (why)
		*why = NULL;
	if (p == NULL || caplen == 0)
		return invalid(why, "empty frame");
	if (caplen > wirelen)
		return invalid(why, "captured length exceeds the wire length");
	if (!pkt_linktype_known(linktype))
		return invalid(why, "unknown link type");
	if (caplen < link_header_len(linktype))
		return invalid(why, "link-layer header cut");
	if (!pkt_decode(linktype, p, caplen, &pi))
		return validate_not_ip(linktype, p, caplen, wirelen, &pi, why);
	if (pi.ip_version == 4)
		return validate_ipv4(linktype, p, caplen, wirelen, &pi, why);
	return validate_ipv6(linktype, p, caplen, wirelen, &pi, why);
}

/* Whether a and b (decoded from pa, pb) are of one flow, b as a is (1),
 * reversed (1), or not (0). */
static int same_flow(const struct pkt_info *a, const uint8_t *pa, const struct pkt_info *b,
		     const uint8_t *pb)
{
	if (a->ip_version != b->ip_version || a->proto != b->proto || a->n_vlan != b->n_vlan ||
	    memcmp(a->vlan, b->vlan, sizeof a->vlan) != 0 || a->has_ports != b->has_ports)
		return 0;
	const uint8_t *as = pa + a->src_off, *ad = pa + a->dst_off;
	const uint8_t *bs = pb + b->src_off, *bd = pb + b->dst_off;
	size_t n = a->addr_len;
	if (!memcmp(as, bs, n) && !memcmp(ad, bd, n) && a->src_port == b->src_port &&
	    a->dst_port == b->dst_port)
		return 1;
	return !memcmp(as, bd, n) && !memcmp(ad, bs, n) && a->src_port == b->dst_port &&
	       a->dst_port == b->src_port;
}

int pkt_validate_flow(uint32_t linktype, const uint8_t *p, size_t caplen, uint32_t wirelen,
		      const uint8_t *first, size_t first_caplen, const char **why)
{
	struct pkt_info pi, fi;
	if (!pkt_validate(linktype, p, caplen, wirelen, why))
		return 0;
	if (!pkt_decode(linktype, p, caplen, &pi))
		return invalid(why, "a frame that is not IP (of no flow)");
	if (first && pkt_decode(linktype, first, first_caplen, &fi) && !same_flow(&fi, first, &pi, p))
		return invalid(why, "a packet of another flow (addresses, ports)");
	return 1;
}
