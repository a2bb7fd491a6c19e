/* fields.c: jsdiv's fields, their binnings, and the histograms two sets of
 * traffic fill from flow records (see fields.h and jsdiv(1)). */
#include "fields.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const struct field_def field_defs[N_FIELDS] = {
	[F_SRC_IP] = { "src_ip", NULL, "address", BIN_ADDR, 0, 0, 0, 0, 0, 0 },
	[F_DST_IP] = { "dst_ip", NULL, "address", BIN_ADDR, 0, 0, 0, 0, 0, 0 },
	[F_SRC_PORT] = { "src_port", NULL, "port", BIN_EXACT, 0, 0, 0, 0, 0, 0 },
	[F_DST_PORT] = { "dst_port", NULL, "port", BIN_EXACT, 0, 0, 0, 0, 0, 0 },
	[F_PKT_LEN] = { "pkt_len", NULL, "bytes on the wire", BIN_LINEAR, 16, 0, 4097, 0, 0, 0 },
	[F_TTL] = { "ttl", NULL, "TTL or hop limit", BIN_EXACT, 0, 0, 0, 0, 0, 0 },
	[F_IP_PROTO] = { "ip_proto", NULL, "IP protocol", BIN_EXACT, 0, 0, 0, 0, 0, 0 },
	[F_TCP_FLAGS] = { "tcp_flags", NULL, "TCP flags", BIN_EXACT, 0, 0, 0, 0, 0, 0 },
	[F_TCP_WINDOW] = { "tcp_window", NULL, "TCP window (unscaled)", BIN_LINEAR, 256, 0, 256, 0, 0, 0 },
	[F_IAT] = { "iat", NULL, "seconds", BIN_LOG, 0, 1e-6, 0, 10, 10, 0 },
	[F_IN_PKTS] = { "in_pkts", "f1", "incoming packets", BIN_COUNT, 0, 0, 0, 0, 0, 100 },
	[F_OUT_FRAC] = { "out_frac", "f2", "fraction of outgoing packets", BIN_LINEAR, 0.05, 0, 20, 0, 0, 0 },
	[F_IN_FRAC] = { "in_frac", "f3", "fraction of incoming packets", BIN_LINEAR, 0.05, 0, 20, 0, 0, 0 },
	[F_OUT_ORDER_STD] = { "out_order_std", "f4", "std-dev of outgoing ordering", BIN_LOG, 0, 0.1, 0, 10, 9, 0 },
	[F_OUT_PKTS] = { "out_pkts", "f5", "outgoing packets", BIN_COUNT, 0, 0, 0, 0, 0, 100 },
	[F_ALT_CONC_SUM] = { "alt_conc_sum", "f6", "sum of alternative concentration", BIN_COUNT, 0, 0, 0, 0, 0, 100 },
	[F_FLOW_PKTS] = { "flow_pkts", NULL, "packets per flow", BIN_COUNT, 0, 0, 0, 0, 0, 100 },
	[F_FLOW_BYTES] = { "flow_bytes", NULL, "bytes per flow", BIN_LOG, 0, 1, 0, 10, 12, 0 },
	[F_DURATION] = { "duration", NULL, "seconds", BIN_LOG, 0, 1e-6, 0, 10, 10, 0 },
};

/* ------------------------------------------------------------ addresses */

/* An address's id: its version and 16 bytes interned. */
static uint32_t addr_id(struct intern *t, uint8_t version, const uint8_t *bytes)
{
	struct addr a;
	a.version = version;
	memcpy(a.bytes, bytes, 16);
	return intern_add(t, &a, sizeof a);
}

/* ------------------------------------------------------------ observing */

void field_set_init(struct field_set *s)
{
	memset(s, 0, sizeof *s);
	for (int i = 0; i < N_FIELDS; i++) {
		s->selected[i] = 1;
		hist2_init(&s->hist[i]);
	}
	flow_acc_init(&s->acc);
}

static uint64_t key_of(const struct field_def *d, double x)
{
	switch (d->bin) {
	case BIN_LINEAR:
		return bin_linear(x, d->width, d->nbins);
	case BIN_LOG:
		return bin_log(x, d->lo, d->per_decade, d->decades);
	case BIN_COUNT:
		return bin_count(x > 0 ? (uint64_t)x : 0, d->exact);
	default:
		return (uint64_t)x;
	}
}

static void observe(struct field_set *s, int side, int id, double x)
{
	if (s->selected[id])
		hist2_add(&s->hist[id], key_of(&field_defs[id], x), side);
}

static void observe_addr(struct field_set *s, int side, int id, uint8_t version, const uint8_t *bytes)
{
	if (s->selected[id])
		hist2_add(&s->hist[id], addr_id(&s->addrs, version, bytes), side);
}

/* One IP packet. ttl_known is 0 for a packet whose bytes did not decode. */
static void observe_packet(struct field_set *s, int side, const struct pkt_fields *f, int ttl_known,
			   double iat, int first)
{
	observe_addr(s, side, F_SRC_IP, f->ip_version, f->src_ip);
	observe_addr(s, side, F_DST_IP, f->ip_version, f->dst_ip);
	if (f->has_ports) {
		observe(s, side, F_SRC_PORT, f->src_port);
		observe(s, side, F_DST_PORT, f->dst_port);
	}
	observe(s, side, F_PKT_LEN, f->wirelen);
	if (ttl_known)
		observe(s, side, F_TTL, f->ttl);
	observe(s, side, F_IP_PROTO, f->proto);
	if (f->has_tcp) {
		observe(s, side, F_TCP_FLAGS, f->tcp_flags);
		observe(s, side, F_TCP_WINDOW, f->tcp_window);
	}
	if (!first)
		observe(s, side, F_IAT, iat);
	s->packets[side]++;
}

static void observe_flow(struct field_set *s, int side, const struct flow_features *ff)
{
	observe(s, side, F_IN_PKTS, (double)ff->in_pkts);
	observe(s, side, F_OUT_FRAC, ff->out_frac);
	observe(s, side, F_IN_FRAC, ff->in_frac);
	observe(s, side, F_OUT_ORDER_STD, ff->out_order_std);
	observe(s, side, F_OUT_PKTS, (double)ff->out_pkts);
	observe(s, side, F_ALT_CONC_SUM, ff->alt_conc_sum);
	observe(s, side, F_FLOW_PKTS, (double)ff->packets);
	observe(s, side, F_FLOW_BYTES, (double)ff->bytes);
	observe(s, side, F_DURATION, ff->duration);
	s->flows[side]++;
}

/* The fields of a packet: decoded from its bytes when they reach the IP
 * header, else, in a flow of IP packets, the flow's addresses and ports in
 * the packet's direction (*ttl_known then 0). Returns 0 for a packet that is
 * not IP. The record's ip_version is not needed for bytes that decode. */
static int packet_fields(const struct flow_rec *r, const struct packet *pk, struct pkt_fields *f,
			 int *ttl_known)
{
	*ttl_known = 1;
	if (pkt_fields_decode(r->linktype, pk->data, pk->caplen, pk->wirelen, f))
		return 1;
	if (r->ip_version == 0)
		return 0;
	*ttl_known = 0;
	memset(f, 0, sizeof *f);
	f->ip_version = r->ip_version;
	f->addr_len = r->ip_version == 6 ? 16 : 4;
	memcpy(f->src_ip, pk->dir ? r->dst_ip : r->src_ip, 16);
	memcpy(f->dst_ip, pk->dir ? r->src_ip : r->dst_ip, 16);
	f->proto = r->proto;
	f->has_ports = r->proto == 6 || r->proto == 17;
	f->src_port = pk->dir ? r->dst_port : r->src_port;
	f->dst_port = pk->dir ? r->src_port : r->dst_port;
	f->wirelen = pk->wirelen;
	return 1;
}

void field_set_add_flow(struct field_set *s, int side, const struct flow_rec *fr)
{
	struct flow_acc *acc = &s->acc;
	int first_dir = 0;
	flow_acc_reset(acc);
	for (size_t i = 0; i < fr->n_packets; i++) {
		const struct packet *pk = &fr->pkt[i];
		struct pkt_fields f;
		int ttl_known;
		if (!packet_fields(fr, pk, &f, &ttl_known)) {
			s->skipped[side]++;
			continue;
		}
		int first = acc->packets == 0;
		/* the first IP packet's direction is the flow's outgoing one */
		if (first)
			first_dir = pk->dir;
		double iat = flow_acc_add(acc, pk->ts_ns, pk->wirelen, pk->dir != first_dir);
		observe_packet(s, side, &f, ttl_known, iat, first);
	}
	if (acc->packets) {
		struct flow_features ff;
		flow_acc_features(acc, &ff);
		observe_flow(s, side, &ff);
	}
}

void field_set_warn_skipped(const struct field_set *s, int side, const char *name)
{
	uint64_t n = s->skipped[side];
	if (n)
		warnx("%s: %" PRIu64 " %s without an IP header left out of the fields", name, n,
		      plural(n, "frame", "frames"));
}

void field_set_free(struct field_set *s)
{
	for (int i = 0; i < N_FIELDS; i++)
		hist2_free(&s->hist[i]);
	intern_free(&s->addrs);
	flow_acc_free(&s->acc);
}

/* ------------------------------------------------------------ results */

void field_set_compare(const struct field_set *s, struct field_result res[N_FIELDS])
{
	for (int i = 0; i < N_FIELDS; i++) {
		res[i].defined = s->selected[i] && hist2_divergence(&s->hist[i], &res[i].d) >= 0;
		res[i].bins = s->hist[i].used;
	}
}

double field_mean_jsd(const struct field_result res[N_FIELDS], int flow_level)
{
	double sum = 0;
	int n = 0;
	for (int i = 0; i < N_FIELDS; i++)
		if (res[i].defined && field_is_flow(i) == flow_level) {
			sum += res[i].d.jsd;
			n++;
		}
	return n ? sum / n : NAN;
}
