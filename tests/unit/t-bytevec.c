/* t-bytevec.c: realism-eval's byte vectors (tools/eval/bytevec.c) against
 * a reference written out by hand: for an Ethernet/IPv4/TCP frame, a short
 * IPv6/UDP one and an ARP one, every byte is the frame's but the masked
 * ones (MACs, IP addresses, ports at their known offsets), bytes past the
 * caplen and packets past the flow's end are -1, the intervals are the
 * packets' signed time differences. */
#include "../tap.h"
#include "../../tools/eval/bytevec.h"

#define K 4
#define N 64

static uint8_t eth_ipv4_tcp[80], eth_ipv6_udp[58], eth_arp[42];

/* Frame bytes: a pattern that is never 0, so a zero shows a mask. */
static void fill(uint8_t *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(1 + (seed + 7 * i) % 250);
}

static void make_frames(void)
{
	fill(eth_ipv4_tcp, sizeof eth_ipv4_tcp, 3);
	eth_ipv4_tcp[12] = 0x08, eth_ipv4_tcp[13] = 0x00;   /* IPv4 */
	eth_ipv4_tcp[14] = 0x45;                            /* version 4, IHL 5 */
	eth_ipv4_tcp[16] = 0, eth_ipv4_tcp[17] = 66;        /* total length 66 */
	eth_ipv4_tcp[20] = 0x40, eth_ipv4_tcp[21] = 0;      /* DF, no fragment */
	eth_ipv4_tcp[23] = 6;                               /* TCP */
	eth_ipv4_tcp[46] = 0x50;                            /* data offset 5 */

	fill(eth_ipv6_udp, sizeof eth_ipv6_udp, 11);
	eth_ipv6_udp[12] = 0x86, eth_ipv6_udp[13] = 0xdd;   /* IPv6 */
	eth_ipv6_udp[14] = 0x60;                            /* version 6 */
	eth_ipv6_udp[18] = 0, eth_ipv6_udp[19] = 8;         /* payload 8 */
	eth_ipv6_udp[20] = 17;                              /* UDP */

	fill(eth_arp, sizeof eth_arp, 29);
	eth_arp[12] = 0x08, eth_arp[13] = 0x06;             /* ARP */
}

/* 1 when byte j of a frame of this layout is masked. */
static int masked_ipv4_tcp(size_t j) { return j < 12 || (j >= 26 && j < 38); }
/* the IPv6/UDP frame is cut after the ports: addresses 22..53, ports 54..57 */
static int masked_ipv6_udp(size_t j) { return j < 12 || (j >= 22 && j < 58); }
static int masked_arp(size_t j) { return j < 12; }

static void check_packet(const float *v, const uint8_t *frame, size_t caplen,
			 int (*masked)(size_t), const char *what)
{
	int bytes_ok = 1, absent_ok = 1;
	for (size_t j = 0; j < N; j++) {
		float want = j >= caplen ? -1.0f : masked(j) ? 0.0f : (float)frame[j];
		if (v[j] != want) {
			if (j >= caplen)
				absent_ok = 0;
			else
				bytes_ok = 0;
			printf("#   %s: byte %zu is %g, want %g\n", what, j, v[j], want);
		}
	}
	char msg[128];
	snprintf(msg, sizeof msg, "%s: the frame's bytes, MACs, addresses and ports zeroed", what);
	ok(bytes_ok, msg);
	snprintf(msg, sizeof msg, "%s: -1 past its caplen", what);
	ok(absent_ok, msg);
}

int main(void)
{
	make_frames();
	struct packet pkt[3] = {
		{ .ts_ns = 1000000000ull, .caplen = sizeof eth_ipv4_tcp, .wirelen = 80, .data = eth_ipv4_tcp },
		{ .ts_ns = 1250000000ull, .caplen = sizeof eth_ipv6_udp, .wirelen = 62, .data = eth_ipv6_udp },
		{ .ts_ns = 1000000000ull, .caplen = sizeof eth_arp, .wirelen = 60, .data = eth_arp },
	};
	struct flow_rec f = { .linktype = 1, .n_packets = 3, .pkt = pkt };
	size_t len = byte_vector_len(K, N);
	is_u64(len, K * (N + 1), "K packets of N bytes and an interval each");
	float *v = malloc(len * sizeof *v);
	for (size_t i = 0; i < len; i++)
		v[i] = 12345.0f; /* every element must be written */
	byte_vector(&f, K, N, v);

	check_packet(v, eth_ipv4_tcp, sizeof eth_ipv4_tcp, masked_ipv4_tcp, "Ethernet/IPv4/TCP");
	check_packet(v + (N + 1), eth_ipv6_udp, sizeof eth_ipv6_udp, masked_ipv6_udp,
		     "Ethernet/IPv6/UDP cut at 58 bytes");
	check_packet(v + 2 * (N + 1), eth_arp, sizeof eth_arp, masked_arp, "ARP");
	is_near(v[N], 0, 0, "the first packet's interval is 0");
	is_near(v[(N + 1) + N], 0.25, 1e-7, "the second's is 0.25 s");
	is_near(v[2 * (N + 1) + N], -0.25, 1e-7, "a clock step back gives a negative interval");
	int absent = 1;
	for (size_t j = 3 * (N + 1); j < len; j++)
		absent &= v[j] == BYTEVEC_ABSENT;
	ok(absent, "a packet beyond the flow's end is -1 throughout, its interval too");

	/* n_bytes larger than any frame, one packet: the rest is -1 */
	float w[1 + 200];
	byte_vector(&f, 1, 200, w);
	ok(w[79] == (float)eth_ipv4_tcp[79] && w[80] == -1.0f && w[199] == -1.0f && w[200] == 0.0f,
	   "N past the frame: -1 from caplen on, then the interval");

	char name[32];
	is_str(byte_vector_name(0, N, name, sizeof name), "p0_b0", "name of the first byte");
	is_str(byte_vector_name(N, N, name, sizeof name), "p0_dt", "name of the first interval");
	is_str(byte_vector_name(2 * (N + 1) + 5, N, name, sizeof name), "p2_b5", "name of a later byte");
	free(v);
	return tap_done();
}
