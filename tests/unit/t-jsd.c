/* t-jsd.c: unit tests of jsdiv's math and features (tools/eval): the
 * divergences on cases worked by hand (0 for equal, 1 for disjoint,
 * symmetric), the sparse histogram pair, the fixed binnings at their edges,
 * the k-fingerprinting features of hand-made flows, and the decoding of a
 * packet's fields. The grouping of packets into flows is pcap2flow's (its
 * tests: tests/cli/pcap2flow.t). */
#include <stdlib.h>
#include <string.h>

#include "../../tools/eval/divergence.h"
#include "../../tools/eval/features.h"
#include "../tap.h"

#define EPS 1e-12

/* ------------------------------------------------------------ divergences */

static void test_dense(void)
{
	struct divergence d;
	const double same[] = { 1, 2, 3, 4 };
	ok(divergence_dense(same, same, 4, &d) == 0, "equal: computed");
	is_near(d.jsd, 0, EPS, "equal: jsd 0");
	is_near(d.tvd, 0, EPS, "equal: tvd 0");
	is_near(d.hellinger, 0, EPS, "equal: hellinger 0");

	/* the same distribution from other counts */
	const double twice[] = { 2, 4, 6, 8 };
	divergence_dense(same, twice, 4, &d);
	is_near(d.jsd, 0, EPS, "proportional counts: jsd 0");

	const double a[] = { 3, 1, 0, 0 }, b[] = { 0, 0, 5, 5 };
	divergence_dense(a, b, 4, &d);
	is_near(d.jsd, 1, EPS, "disjoint: jsd 1");
	is_near(d.tvd, 1, EPS, "disjoint: tvd 1");
	is_near(d.hellinger, 1, EPS, "disjoint: hellinger 1");

	/* by hand: M = (1/4, 1/2, 1/4); KL(P||M) = 1/2 log2 2 + 1/2 log2 1 = 1/2,
	 * likewise KL(Q||M), so JSD = 1/2; TVD = (1/2 + 0 + 1/2) / 2 = 1/2;
	 * sum sqrt(p q) = 1/2, Hellinger = sqrt(1/2) */
	const double p[] = { 0.5, 0.5, 0 }, q[] = { 0, 0.5, 0.5 };
	divergence_dense(p, q, 3, &d);
	is_near(d.jsd, 0.5, EPS, "P=(1/2,1/2,0) Q=(0,1/2,1/2): jsd 0.5");
	is_near(d.tvd, 0.5, EPS, "... tvd 0.5");
	is_near(d.hellinger, 0.70710678118654752, EPS, "... hellinger sqrt(1/2)");
	/* the same as counts */
	const double pc[] = { 2, 2, 0 }, qc[] = { 0, 7, 7 };
	divergence_dense(pc, qc, 3, &d);
	is_near(d.jsd, 0.5, EPS, "counts (2,2,0) (0,7,7): jsd 0.5");

	/* by hand: P = (1, 0), Q = (1/2, 1/2), M = (3/4, 1/4):
	 * KL(P||M) = log2(4/3), KL(Q||M) = 1/2 log2(2/3) + 1/2 log2 2,
	 * JSD = (log2(4/3) + 1/2 log2(2/3) + 1/2) / 2 = 0.311278...;
	 * TVD 1/2; Hellinger sqrt(1 - sqrt(1/2)) */
	const double p2[] = { 1, 0 }, q2[] = { 0.5, 0.5 };
	divergence_dense(p2, q2, 2, &d);
	is_near(d.jsd, 0.31127812445913283, 1e-12, "P=(1,0) Q=(1/2,1/2): jsd 0.3113");
	is_near(d.tvd, 0.5, EPS, "... tvd 0.5");
	is_near(d.hellinger, sqrt(1 - sqrt(0.5)), EPS, "... hellinger sqrt(1 - sqrt(1/2))");

	/* symmetry */
	const double u[] = { 5, 1, 0, 9, 2 }, v[] = { 1, 1, 4, 3, 0 };
	struct divergence uv, vu;
	divergence_dense(u, v, 5, &uv);
	divergence_dense(v, u, 5, &vu);
	is_near(uv.jsd, vu.jsd, EPS, "symmetric: jsd(u,v) = jsd(v,u)");
	is_near(uv.tvd, vu.tvd, EPS, "symmetric: tvd");
	is_near(uv.hellinger, vu.hellinger, EPS, "symmetric: hellinger");
	ok(uv.jsd > 0 && uv.jsd < 1, "in between: 0 < jsd < 1");
	ok(uv.jsd <= uv.tvd, "jsd <= tvd");

	const double zero[] = { 0, 0 }, neg[] = { 1, -1 }, one[] = { 1, 1 };
	ok(divergence_dense(zero, one, 2, &d) < 0, "an empty side is refused");
	ok(divergence_dense(one, neg, 2, &d) < 0, "a negative count is refused");
	const double nan_[] = { 1, NAN };
	ok(divergence_dense(one, nan_, 2, &d) < 0, "a NaN count is refused");
}

static void test_hist2(void)
{
	struct hist2 h;
	struct divergence d, dd;
	hist2_init(&h);
	ok(hist2_divergence(&h, &d) < 0, "hist2: both sides empty: undefined");
	hist2_add(&h, 7, 0);
	ok(hist2_divergence(&h, &d) == 1 && d.jsd == 1 && d.tvd == 1 && d.hellinger == 1,
	   "hist2: one side empty: all 1");
	hist2_free(&h);

	/* the hand case through the sparse pair: keys 10, 20, 30 */
	hist2_add(&h, 10, 0);
	hist2_add(&h, 20, 0);
	hist2_add(&h, 20, 1);
	hist2_add(&h, 30, 1);
	ok(hist2_divergence(&h, &d) == 0, "hist2: defined");
	is_near(d.jsd, 0.5, EPS, "hist2: hand case jsd 0.5");
	is_near(d.hellinger, 0.70710678118654752, EPS, "hist2: hand case hellinger");
	is_u64(hist2_count(&h, 20, 1), 1, "hist2: count of a bin");
	is_u64(hist2_count(&h, 99, 0), 0, "hist2: count of an unseen bin");
	hist2_free(&h);

	/* many keys: growth keeps every count, and agrees with the dense form */
	enum { N = 5000 };
	static double p[N], q[N];
	for (uint64_t k = 0; k < N; k++) {
		uint64_t np = k % 7, nq = (k * 13) % 5;
		for (uint64_t i = 0; i < np; i++)
			hist2_add(&h, k * 1000003, 0);
		for (uint64_t i = 0; i < nq; i++)
			hist2_add(&h, k * 1000003, 1);
		p[k] = (double)np, q[k] = (double)nq;
	}
	int same = 1;
	for (uint64_t k = 0; k < N; k++)
		same &= hist2_count(&h, k * 1000003, 0) == (uint64_t)p[k] &&
			hist2_count(&h, k * 1000003, 1) == (uint64_t)q[k];
	ok(same, "hist2: 5000 keys counted after growth");
	hist2_divergence(&h, &d);
	divergence_dense(p, q, N, &dd);
	is_near(d.jsd, dd.jsd, 1e-12, "hist2: jsd as the dense form");
	is_near(d.tvd, dd.tvd, 1e-12, "hist2: tvd as the dense form");
	is_near(d.hellinger, dd.hellinger, 1e-12, "hist2: hellinger as the dense form");
	size_t n;
	struct hist_bin *b = hist2_sorted(&h, &n);
	int sorted = 1;
	for (size_t i = 1; i < n; i++)
		sorted &= b[i - 1].key < b[i].key;
	ok(sorted && n == h.used, "hist2: sorted bins");
	free(b);
	hist2_free(&h);
}

/* ------------------------------------------------------------ binnings */

static void test_binning(void)
{
	is_u64(bin_linear(0.15, 0.05, 20), 3, "linear: 0.15 opens bin 3 despite rounding");
	is_u64(bin_linear(0.6, 0.05, 20), 12, "linear: 0.6 in bin 12");
	is_u64(bin_linear(1.0, 0.05, 20), 19, "linear: 1.0 in the last bin");
	is_u64(bin_linear(0, 0.05, 20), 0, "linear: 0 in bin 0");
	is_u64(bin_linear(-3, 16, 4097), 0, "linear: negative in bin 0");
	is_u64(bin_linear(1514, 16, 4097), 94, "linear: 1514 bytes in bin 94");
	is_u64(bin_linear(65535, 16, 4097), 4095, "linear: 65535 in bin 4095");
	is_u64(bin_linear(70000, 16, 4097), 4096, "linear: beyond 65535: overflow bin");

	is_u64(bin_log(-0.5, 1e-6, 10, 10), 0, "log: negative: key 0");
	is_u64(bin_log(0, 1e-6, 10, 10), 1, "log: zero: key 1");
	is_u64(bin_log(1e-6, 1e-6, 10, 10), 2, "log: the first edge opens key 2");
	is_u64(bin_log(1e-5, 1e-6, 10, 10), 12, "log: one decade up: key 12");
	is_u64(bin_log(9.9e-6, 1e-6, 10, 10), 11, "log: just below the decade: key 11");
	is_u64(bin_log(2e-6, 1e-6, 10, 10), 5, "log: 2e-6 (10^0.301) in key 5");
	is_u64(bin_log(9999, 1e-6, 10, 10), 101, "log: below the top edge: key 101");
	is_u64(bin_log(1e4, 1e-6, 10, 10), 102, "log: the top edge and above: key 102");
	is_near(bin_log_edge(12, 1e-6, 10), 1e-5, 1e-18, "log: edge of key 12");
	is_near(bin_log_edge(1, 1e-6, 10), 0, 0, "log: edge of key 1 is 0");

	is_u64(bin_count(0, 100), 0, "count: 0 exact");
	is_u64(bin_count(99, 100), 99, "count: 99 exact");
	is_u64(bin_count(100, 100), 100, "count: 100 opens the log bins");
	is_u64(bin_count(125, 100), 100, "count: 125 below 10^2.1");
	is_u64(bin_count(126, 100), 101, "count: 126 above 10^2.1");
	is_u64(bin_count(1000, 100), 110, "count: 1000 one decade up");
	is_near(bin_count_edge(101, 100), 125.89254117941673, 1e-9, "count: edge of key 101");
	is_near(bin_count_edge(42, 100), 42, 0, "count: edge of an exact key");
}

/* ------------------------------------------------------------ k-fp features */

static void test_chunk_sums(void)
{
	double out[20];
	uint8_t seq[21];
	for (int i = 0; i < 21; i++)
		seq[i] = (uint8_t)i;
	/* chunkIt(list(range(21)), 20) in Python: [0], [1], ..., [18], [19, 20] */
	kfp_chunk_sums(seq, 21, out, 20);
	int ok_ = 1;
	for (int i = 0; i < 19; i++)
		ok_ &= out[i] == i;
	ok(ok_ && out[19] == 39, "chunkIt(range(21), 20): singles, then 19+20");

	/* chunkIt([7, 7, 1], 20) makes 21 pieces: [7] at 6, [7] at 13, [1] at 20;
	 * the 21st is folded into the 20th */
	const uint8_t conc[] = { 7, 7, 1 };
	kfp_chunk_sums(conc, 3, out, 20);
	double sum = 0;
	for (int i = 0; i < 20; i++)
		sum += out[i];
	ok(out[6] == 7 && out[13] == 7 && out[19] == 1 && sum == 15, "chunkIt([7,7,1], 20) as in Python");
	kfp_chunk_sums(conc, 0, out, 20);
	ok(out[0] == 0 && out[19] == 0, "chunkIt([], 20): all zero");
}

static void test_flow_features(void)
{
	struct flow_acc a;
	struct flow_features ff;
	flow_acc_init(&a);
	/* out in out out in: ordering list (0, 2, 3) */
	const int dir[] = { 0, 1, 0, 0, 1 };
	const uint32_t len[] = { 60, 1514, 60, 100, 40 };
	double iat[5];
	for (int i = 0; i < 5; i++)
		iat[i] = flow_acc_add(&a, 1000000000ull + (uint64_t)i * 250000000ull, len[i], dir[i]);
	flow_acc_features(&a, &ff);
	is_near(iat[0], 0, 0, "iat: 0 for the first packet");
	is_near(iat[3], 0.25, 1e-12, "iat: 0.25 s");
	is_u64(ff.packets, 5, "flow: 5 packets");
	is_u64(ff.bytes, 1774, "flow: 1774 bytes");
	is_near(ff.duration, 1.0, 1e-12, "flow: 1 s");
	is_u64(ff.in_pkts, 2, "f1: 2 incoming");
	is_near(ff.out_frac, 0.6, 1e-12, "f2: 3/5 outgoing");
	is_near(ff.in_frac, 0.4, 1e-12, "f3: 2/5 incoming");
	/* np.std([0, 2, 3]) = sqrt(((5/3)^2 + (1/3)^2 + (4/3)^2) / 3) = sqrt(14/9) */
	is_near(ff.out_order_std, sqrt(14.0 / 9.0), 1e-12, "f4: std of (0, 2, 3)");
	is_u64(ff.out_pkts, 3, "f5: 3 outgoing");
	is_near(ff.alt_conc_sum, 3, 0, "f6: concentration (3) summed");
	is_near(ff.alt_conc[19], 3, 0, "f6: chunkIt([3], 20) puts it last");

	/* 45 packets, every third outgoing: concentrations (7, 7, 1) */
	flow_acc_reset(&a);
	for (int i = 0; i < 45; i++)
		flow_acc_add(&a, (uint64_t)i * 1000, 100, i % 3 != 0);
	flow_acc_features(&a, &ff);
	is_u64(ff.out_pkts, 15, "45 packets: 15 outgoing");
	is_u64(ff.in_pkts, 30, "45 packets: 30 incoming");
	/* ordering list 0, 3, ..., 42: 3 x (0..14), variance 9 (15^2 - 1) / 12 */
	is_near(ff.out_order_std, sqrt(168.0), 1e-9, "45 packets: f4 = sqrt(168)");
	ok(ff.alt_conc[6] == 7 && ff.alt_conc[13] == 7 && ff.alt_conc[19] == 1,
	   "45 packets: alternative concentration as k-FP's");
	is_near(ff.alt_conc_sum, 15, 0, "45 packets: f6 = 15 (= f5, the chunks partition the list)");

	/* a flow the other way round: the first packet defines outgoing */
	flow_acc_reset(&a);
	flow_acc_add(&a, 5, 10, 0);
	flow_acc_features(&a, &ff);
	ok(ff.out_pkts == 1 && ff.in_pkts == 0 && ff.out_order_std == 0 && ff.duration == 0,
	   "one packet: out 1, std 0, duration 0");
	flow_acc_reset(&a);
	flow_acc_features(&a, &ff);
	ok(ff.packets == 0 && ff.out_frac == 0, "no packets: zeros");
	flow_acc_free(&a);
}

/* ------------------------------------------------------------ packets */

/* Ethernet + IPv4 + TCP, 54 bytes, sequence and acknowledgement 0. */
static size_t tcp_frame(uint8_t *f, const uint8_t *src, const uint8_t *dst, uint16_t sport,
			uint16_t dport, uint8_t flags)
{
	memset(f, 0, 54);
	f[12] = 0x08, f[13] = 0x00;
	uint8_t *ip = f + 14;
	ip[0] = 0x45, ip[3] = 40, ip[8] = 63, ip[9] = 6;
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	uint8_t *tcp = ip + 20;
	tcp[0] = (uint8_t)(sport >> 8), tcp[1] = (uint8_t)sport;
	tcp[2] = (uint8_t)(dport >> 8), tcp[3] = (uint8_t)dport;
	tcp[12] = 5 << 4, tcp[13] = flags, tcp[14] = 0xfa, tcp[15] = 0xf0;
	return 54;
}

static const uint8_t A[4] = { 10, 0, 0, 1 }, B[4] = { 10, 0, 0, 2 };

static void test_decode(void)
{
	uint8_t frame[64];
	struct pkt_fields f;
	size_t n = tcp_frame(frame, A, B, 40000, 443, 0x12);
	ok(pkt_fields_decode(1, frame, n, 60, &f) == 1, "decode: IPv4 TCP");
	ok(f.ip_version == 4 && memcmp(f.src_ip, A, 4) == 0 && memcmp(f.dst_ip, B, 4) == 0,
	   "decode: addresses");
	ok(f.has_ports && f.src_port == 40000 && f.dst_port == 443, "decode: ports");
	ok(f.ttl == 63 && f.proto == 6, "decode: ttl and protocol");
	ok(f.has_tcp && f.tcp_flags == 0x12 && f.tcp_window == 0xfaf0, "decode: flags and window");
	is_int(f.wirelen, 60, "decode: wire length as given");
	ok(pkt_fields_decode(1, frame, 40, 60, &f) == 1 && f.has_ports && !f.has_tcp,
	   "decode: TCP cut after the ports: no flags");
	frame[12] = 0x08, frame[13] = 0x06; /* ARP */
	ok(pkt_fields_decode(1, frame, n, 60, &f) == 0, "decode: ARP is not IP");
}

int main(void)
{
	test_dense();
	test_hist2();
	test_binning();
	test_chunk_sums();
	test_flow_features();
	test_decode();
	return tap_done();
}
