/* t-packet.c: unit tests of pkt_validate (common/packet.c): frames of real
 * captures (examples/data) and every packet of the synthetic captures of
 * mkpcap are valid; then each single corruption of a valid frame (lengths,
 * versions, header lengths, checksums, link layer) is caught and named,
 * while what is allowed (offloaded checksums, Ethernet padding and FCS, a
 * snaplen cut, IPv4 UDP without checksum, fragments) stays valid. */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "packet.h"
#include "../tap.h"

/* ------------------------------------------------------------ frames */

/* From examples/data (tcpdump -xx): real checksums, no offloading. */
static const char syn4_hex[] = /* http.pcap: IPv4 TCP SYN with options, 74 bytes */
	"027700000001027700000012080045000" "03c21b8400040060" "45e0a4d000c0a4d"
	"000198400050202" "8b8c800000000a002faf01c7a0000020405b40402080a0a879fe300000000"
	"0103030a";
static const char tcp6_hex[] = /* http.pcap: IPv6 TCP GET, 181 bytes */
	"0277000000010277000000118" "6dd600cf7cd007f0640fd77000000000000000000000000"
	"0119fd77000000000000000000000000" "0001a1d40050afdfc8a344326e8280180040"
	"72a600000101080af53f83a288d9bd624745" "54202f7374617469632f626c6f6230382e62"
	"696e20485454502f312e310d0a486f73743a205b666437373a3a315d0d0a55736572"
	"2d4167656e743a20746770742d6578616d706c652f302e310d0a4163636570743a20"
	"2a2f2a0d0a0d0a";
static const char udp4_hex[] = /* dns.pcap: IPv4 UDP query, 76 bytes */
	"0277000000010277000000110800450000" "3e5be3000040110a270a4d000b0a4d0001"
	"a92e0035002a567a0b0501200001000000000000066" "86f7374303204746770740474657374"
	"00001c0001";
static const char udp6_hex[] = /* dns.pcap: IPv6 UDP query with EDNS, 119 bytes */
	"0277000000010277000000118" "6dd60031cce00411140fd77000000000000000000000000"
	"0119fd77000000000000000000000000" "0001c88c00350041c8e48a08012000010000"
	"000000010668" "6f7374313204746770740474657374000001000100002904d000000000"
	"000c000a0008c410ac9a16212f24";
static const char icmp4_hex[] = /* icmp.pcap: IPv4 echo request, 162 bytes */
	"0277000000010277000000120800450000948e2b4000400197290a4d007a0a4d0001"
	"0800c963060900016601096b000000000d48020000000000" "101112131415161718191a1b"
	"1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d"
	"3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	"606162636465666768696a6b6c6d6e6f7071727374757677";
static const char icmp6_hex[] = /* icmp.pcap: ICMPv6 echo request, 126 bytes */
	"0277000000010277000000118" "6dd600cb98400483a40fd77000000000000000000000000"
	"0117fd77000000000000000000000000" "00018000bf02060600016601096b00000000"
	"a33b000000000000" "101112131415161718191a1b1c1d1e1f202122232425262728292a"
	"2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

struct frame {
	uint8_t b[512];
	size_t len;
};

static struct frame from_hex(const char *hex)
{
	struct frame f;
	memset(&f, 0, sizeof f);
	for (; hex[0] && hex[1]; hex += 2) {
		char byte[3] = { hex[0], hex[1], 0 };
		f.b[f.len++] = (uint8_t)strtoul(byte, NULL, 16);
	}
	return f;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}

/* The test's own RFC 1071 sum, folded. */
static unsigned csum(const uint8_t *p, size_t n, unsigned long sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += get16(p + i);
	if (n & 1)
		sum += (unsigned)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (unsigned)sum;
}

/* Recomputes the IPv4 header checksum of an Ethernet frame after an edit. */
static void fix_ip_checksum(struct frame *f)
{
	put16(f->b + 24, 0);
	put16(f->b + 24, ~csum(f->b + 14, (size_t)(f->b[14] & 15) * 4, 0) & 0xffff);
}

static int valid(uint32_t lt, const struct frame *f, const char **why)
{
	return pkt_validate(lt, f->b, f->len, (uint32_t)f->len, why);
}

/* ------------------------------------------------------------ valid frames */

static void test_real_frames(void)
{
	const char *const hex[] = { syn4_hex, tcp6_hex, udp4_hex, udp6_hex, icmp4_hex, icmp6_hex };
	const size_t len[] = { 74, 181, 76, 119, 162, 126 };
	const char *const what[] = { "IPv4 TCP SYN", "IPv6 TCP data", "IPv4 UDP", "IPv6 UDP",
				     "ICMP echo", "ICMPv6 echo" };
	for (int i = 0; i < 6; i++) {
		struct frame f = from_hex(hex[i]);
		const char *why = "unset";
		char msg[80];
		snprintf(msg, sizeof msg, "real frame: %s is valid", what[i]);
		int v = valid(LT_ETHERNET, &f, &why);
		ok(f.len == len[i] && v && why == NULL, msg);
		if (!v)
			printf("#   %s\n", why);
	}
}

/* Every packet of every kind of mkpcap capture (correct by construction). */
static void test_mkpcap(void)
{
	const char *bin = getenv("TGPT_TESTBIN");
	char mkpcap[2048];
	snprintf(mkpcap, sizeof mkpcap, "%s/mkpcap", bin ? bin : "build/tests");
	if (access(mkpcap, X_OK) != 0) {
		printf("ok %d # skip mkpcap not built\n", ++tap_count);
		return;
	}
	char dir[] = "/tmp/t-packet.XXXXXX";
	if (!mkdtemp(dir)) {
		ok(0, "mkpcap: a temporary directory");
		return;
	}
	const char *const kinds[] = { "tcp", "udp", "ipv6", "vlan", "truncated", "mixed", "sll",
				      "sll2", "raw", "null", "bulk" };
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		char path[4200], cmd[3 * 4200], errbuf[PCAP_ERRBUF_SIZE], msg[120];
		snprintf(path, sizeof path, "%s/%s.pcap", dir, kinds[k]);
		int n_cmd = snprintf(cmd, sizeof cmd, "%s %s --mb 1 -w %s 2>/dev/null || %s %s -w %s", mkpcap,
			 kinds[k], path, mkpcap, kinds[k], path);
		pcap_t *p = (size_t)n_cmd < sizeof cmd && system(cmd) == 0 ? pcap_open_offline(path, errbuf) : NULL;
		if (!p) {
			snprintf(msg, sizeof msg, "mkpcap %s: made and opened", kinds[k]);
			ok(0, msg);
			continue;
		}
		int dlt = pcap_datalink(p);
		uint32_t lt = dlt == DLT_RAW ? LT_RAW : (uint32_t)dlt;
		struct pcap_pkthdr *h;
		const u_char *bytes;
		unsigned n = 0, bad = 0;
		const char *why = NULL;
		while (pcap_next_ex(p, &h, &bytes) == 1) {
			n++;
			const char *w;
			if (!pkt_validate(lt, bytes, h->caplen, h->len, &w) && bad++ == 0)
				why = w;
		}
		pcap_close(p);
		unlink(path);
		snprintf(msg, sizeof msg, "mkpcap %s: all %u packets valid", kinds[k], n);
		ok(n > 0 && bad == 0, msg);
		if (bad)
			printf("#   %u invalid, the first: %s\n", bad, why);
	}
	rmdir(dir);
}

/* ------------------------------------------------------------ corruptions */

/* Checks that the frame is invalid for the reason expected. */
static void caught(uint32_t lt, const struct frame *f, uint32_t wirelen, const char *reason,
		   const char *what)
{
	const char *why = NULL;
	int v = pkt_validate(lt, f->b, f->len, wirelen, &why);
	char msg[160];
	snprintf(msg, sizeof msg, "%s: caught (%s)", what, reason);
	ok(!v && why && strcmp(why, reason) == 0, msg);
	if (v || !why || strcmp(why, reason) != 0)
		printf("#   got %s: %s\n", v ? "valid" : "invalid", why ? why : "(no reason)");
}

static void test_ipv4_tcp(void)
{
	const struct frame good = from_hex(syn4_hex);
	struct frame f;
	const char *ipdamage = "IP header cut, of the wrong version, or IHL below 5";

	f = good, f.b[24] ^= 0x01;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "IPv4 header checksum", "IPv4 checksum flipped");
	f = good, f.b[17] += 1, fix_ip_checksum(&f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "IPv4 total length beyond the frame", "total length + 1");
	f = good, f.b[17] -= 2, fix_ip_checksum(&f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "frame longer than its IP packet", "total length - 2");
	f = good, f.b[16] = 0, f.b[17] = 0, fix_ip_checksum(&f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "IPv4 total length shorter than its header",
	       "total length 0");
	f = good, f.b[14] = 0x65;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, ipdamage, "version 6 in an IPv4 frame");
	f = good, f.b[14] = 0x44;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, ipdamage, "IHL 4");
	f = good, f.b[14] = 0x46, fix_ip_checksum(&f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP data offset below 5",
	       "IHL 6: the TCP header moves (its offset is the checksum's 0x1c)");
	f = good, f.b[12] = 0x86, f.b[13] = 0xdd;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, ipdamage, "ethertype IPv6 on an IPv4 packet");
	f = good, f.b[46] = 0x40 | (f.b[46] & 0x0f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP data offset below 5", "TCP data offset 4");
	f = good, f.b[46] = 0xf0 | (f.b[46] & 0x0f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP header longer than the IP packet",
	       "TCP data offset 15");
	f = good, f.b[38] ^= 0x80;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP checksum", "TCP sequence number flipped");
	f = good, f.b[70] ^= 0x01;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP checksum", "TCP option byte flipped");
	f = good, f.b[27] ^= 0x01, fix_ip_checksum(&f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP checksum", "source address changed");
	f = good, f.len = 60;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "IPv4 total length beyond the frame", "frame cut short");
	f = good;
	caught(LT_ETHERNET, &f, (uint32_t)f.len - 1, "captured length exceeds the wire length",
	       "wire length below the captured length");

	/* allowed: a snaplen cut, an offloaded checksum, a frame check sequence */
	f = good;
	ok(pkt_validate(LT_ETHERNET, f.b, 60, 74, NULL), "a snaplen of 60: valid as far as captured");
	f = good, f.b[70] ^= 0x01;
	ok(pkt_validate(LT_ETHERNET, f.b, 64, 74, NULL), "the cut bytes are not judged");
	ok(!pkt_validate(LT_ETHERNET, f.b, 60, 75, NULL), "a snaplen cut with a wire length that does not fit");
	/* offloading leaves the folded pseudo-header sum: addresses, protocol, length */
	unsigned long pseudo = get16(f.b + 26) + get16(f.b + 28) + get16(f.b + 30) + get16(f.b + 32) + 6 + 40;
	f = good, put16(f.b + 50, csum(NULL, 0, pseudo));
	ok(valid(LT_ETHERNET, &f, NULL), "a checksum left to offloading (pseudo-header sum) is valid");
	f = good, put16(f.b + 50, csum(NULL, 0, pseudo) ^ 1);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP checksum", "an offloaded checksum off by one bit");
	f = good, f.len += 4;
	ok(valid(LT_ETHERNET, &f, NULL), "4 bytes of frame check sequence are allowed");
	f = good, f.len += 5;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "frame longer than its IP packet", "5 bytes of trailer");

	/* raw IP link types */
	f = good, memmove(f.b, f.b + 14, f.len - 14), f.len -= 14;
	ok(valid(LT_RAW, &f, NULL), "raw IP (101): valid");
	ok(valid(LT_IPV4, &f, NULL), "LINKTYPE_IPV4: valid");
	caught(LT_IPV6, &f, (uint32_t)f.len, "not an IP packet on a raw IP link (version field)",
	       "IPv4 on LINKTYPE_IPV6");
	f.len += 4;
	caught(LT_RAW, &f, (uint32_t)f.len, "frame longer than its IP packet", "raw IP: no FCS, no padding");
	f = good;
	caught(LT_RAW, &f, (uint32_t)f.len, "not an IP packet on a raw IP link (version field)",
	       "an Ethernet frame on a raw IP link");
}

static void test_ipv6_tcp(void)
{
	const struct frame good = from_hex(tcp6_hex);
	struct frame f;
	f = good, f.b[19] += 1;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "IPv6 payload length beyond the frame", "payload length + 1");
	f = good, f.b[19] -= 1;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "frame longer than its IP packet", "payload length - 1");
	f = good, f.b[14] = 0x40 | (f.b[14] & 0x0f);
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "IP header cut, of the wrong version, or IHL below 5",
	       "version 4 in an IPv6 frame");
	f = good, f.b[30] ^= 0x10;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP checksum", "IPv6 source address changed");
	f = good, f.b[20] = 17;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "UDP length differs from the IP payload length",
	       "next header UDP on a TCP segment");
	f = good, f.b[120] ^= 0x20;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "TCP checksum", "payload byte flipped");
	f = good, f.b[20] = 0; /* hop-by-hop options, whose length runs far past */
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "IPv6 extension headers leave no room for the transport",
	       "next header hop-by-hop on a TCP segment");
	f = good;
	ok(pkt_validate(LT_ETHERNET, f.b, 96, 181, NULL), "IPv6 cut by a snaplen of 96: valid");
}

static void test_udp_icmp(void)
{
	struct frame good = from_hex(udp4_hex), f;
	f = good, f.b[39] += 1;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "UDP length differs from the IP payload length", "UDP length + 1");
	f = good, f.b[38] = 0, f.b[39] = 7;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "UDP length below 8", "UDP length 7");
	f = good, f.b[41] ^= 0x04;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "UDP checksum", "UDP checksum flipped");
	f = good, f.b[60] ^= 0x04;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "UDP checksum", "DNS name byte flipped");
	f = good, f.b[40] = f.b[41] = 0;
	ok(valid(LT_ETHERNET, &f, NULL), "IPv4 UDP without a checksum (0) is valid");
	/* a first fragment: lengths checked, the checksum not (data is missing) */
	f = good, f.b[20] |= 0x20, f.b[60] ^= 0x04, fix_ip_checksum(&f);
	ok(valid(LT_ETHERNET, &f, NULL), "a first fragment: its checksum is not judged");
	f = good, f.b[21] = 0x10, fix_ip_checksum(&f);
	ok(valid(LT_ETHERNET, &f, NULL), "a later fragment: no transport header to judge");

	good = from_hex(udp6_hex);
	f = good, f.b[60] = f.b[61] = 0;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "UDP checksum zero over IPv6", "IPv6 UDP checksum 0");
	f = good, f.b[80] ^= 0x01;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "UDP checksum", "IPv6 UDP payload flipped");

	good = from_hex(icmp4_hex);
	f = good, f.b[100] ^= 0x01;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "ICMP checksum", "ICMP payload flipped");
	good = from_hex(icmp6_hex);
	f = good, f.b[100] ^= 0x01;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "ICMPv6 checksum", "ICMPv6 payload flipped");
	f = good, f.b[23] ^= 0x01;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "ICMPv6 checksum", "ICMPv6: source address changed");
}

/* A short frame: Ethernet pads it to 60 bytes on the wire. */
static void test_padding_and_link(void)
{
	struct frame f = from_hex(udp4_hex);
	/* an empty UDP datagram: 42 bytes, padded to 60 */
	put16(f.b + 16, 28);
	put16(f.b + 38, 8);
	put16(f.b + 40, 0);
	fix_ip_checksum(&f);
	f.len = 42;
	ok(valid(LT_ETHERNET, &f, NULL), "an empty UDP datagram: valid");
	f.len = 60;
	ok(valid(LT_ETHERNET, &f, NULL), "padded to the 60-byte minimum: valid");
	f.len = 64;
	ok(valid(LT_ETHERNET, &f, NULL), "padded, with a frame check sequence: valid");
	f.len = 70;
	caught(LT_ETHERNET, &f, (uint32_t)f.len, "frame longer than its IP packet", "padding beyond the minimum");

	struct frame arp = from_hex("ffffffffffff02770000001208060001080006040001027700000012"
				    "0a4d000c0000000000000a4d0001");
	ok(valid(LT_ETHERNET, &arp, NULL), "ARP: valid (link layer only)");
	arp.len = 10;
	caught(LT_ETHERNET, &arp, (uint32_t)arp.len, "link-layer header cut", "10 bytes of Ethernet");
	struct frame vlan = from_hex("ffffffffffff0277000000128100006408");
	caught(LT_ETHERNET, &vlan, (uint32_t)vlan.len, "VLAN tag cut", "a VLAN tag cut short");
	struct frame llc = from_hex("ffffffffffff027700000012002642420300000000");
	caught(LT_ETHERNET, &llc, (uint32_t)llc.len, "802.3 length field beyond the frame",
	       "an 802.3 length of 38 in a 21-byte frame");
	caught(12345, &arp, (uint32_t)arp.len, "unknown link type", "an unknown link type");
	ok(!pkt_validate(LT_ETHERNET, NULL, 0, 0, NULL), "an empty frame is invalid");
}

int main(void)
{
	test_real_frames();
	test_mkpcap();
	test_ipv4_tcp();
	test_ipv6_tcp();
	test_udp_icmp();
	test_padding_and_link();
	return tap_done();
}
