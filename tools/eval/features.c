/* features.c: per-packet header fields, per-flow features (k-fingerprinting
 * after Hayes & Danezis 2016, as the TrafficGPT paper uses them) and the
 * flow vectors of the classifiers; see features.h, jsdiv(1), realism-eval(1). */
#include "features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "packet.h"

#define PROTO_TCP 6

/* ------------------------------------------------------------ packets */

int pkt_fields_decode(uint32_t linktype, const uint8_t *data, size_t caplen, uint32_t wirelen,
		      struct pkt_fields *f)
{
	struct pkt_info pi;
	memset(f, 0, sizeof *f);
	if (!pkt_decode(linktype, data, caplen, &pi))
		return 0;
	f->ip_version = pi.ip_version;
	f->addr_len = pi.addr_len;
	memcpy(f->src_ip, data + pi.src_off, pi.addr_len);
	memcpy(f->dst_ip, data + pi.dst_off, pi.addr_len);
	f->proto = pi.proto;
	f->ttl = pi.ttl;
	f->has_ports = (uint8_t)pi.has_ports;
	f->src_port = pi.src_port;
	f->dst_port = pi.dst_port;
	/* flags and window sit in the first 20 bytes of the TCP header */
	f->has_tcp = pi.proto == PROTO_TCP && pi.l4_off >= 0 && caplen >= (size_t)pi.l4_off + 20;
	if (f->has_tcp) {
		f->tcp_flags = pi.tcp_flags;
		f->tcp_window = pi.tcp_window;
		f->tcp_hlen = pi.tcp_hlen;
		f->tcp_seq = pi.tcp_seq;
		f->tcp_ack = pi.tcp_ack;
		uint32_t ip_len = pi.ip_total_len ? pi.ip_total_len : wirelen - (uint32_t)pi.l3_off;
		uint32_t headers = (uint32_t)(pi.l4_off - pi.l3_off) + pi.tcp_hlen;
		f->tcp_payload = ip_len > headers ? ip_len - headers : 0;
	}
	f->n_vlan = pi.n_vlan;
	f->vlan[0] = pi.vlan[0];
	f->vlan[1] = pi.vlan[1];
	f->wirelen = wirelen;
	return 1;
}

/* ------------------------------------------------------------ flow features */

void flow_acc_init(struct flow_acc *a)
{
	memset(a, 0, sizeof *a);
}

void flow_acc_reset(struct flow_acc *a)
{
	uint8_t *conc = a->conc;
	size_t cap = a->conc_cap;
	memset(a, 0, sizeof *a);
	a->conc = conc;
	a->conc_cap = cap;
}

void flow_acc_free(struct flow_acc *a)
{
	free(a->conc);
	flow_acc_init(a);
}

double flow_acc_add(struct flow_acc *a, uint64_t ts_ns, uint32_t wirelen, int dir)
{
	double iat = 0;
	uint64_t index = a->packets; /* packets before this one */
	if (index == 0)
		a->first_ns = ts_ns;
	else
		iat = (double)(int64_t)(ts_ns - a->last_ns) / 1e9;
	a->last_ns = ts_ns;
	a->packets++;
	a->bytes += wirelen;
	a->n_dir[dir != 0]++;

	/* a new chunk of KFP_CHUNK packets starts a new concentration count */
	if (index % KFP_CHUNK == 0) {
		grow((void **)&a->conc, &a->conc_cap, a->n_conc + 1, 1);
		a->conc[a->n_conc++] = 0;
	}
	if (dir == 0) {
		a->conc[a->n_conc - 1]++;
		/* Welford: the ordering list's std-dev without keeping it */
		double n = (double)a->n_dir[0], delta = (double)index - a->order_mean;
		a->order_mean += delta / n;
		a->order_m2 += delta * ((double)index - a->order_mean);
	}
	return iat;
}

/* chunkIt from the k-FP code, which steps a float "last" by len/num:
 *	while last < len: out.append(seq[int(last):int(last + avg)]); last += avg
 * The pieces are contiguous, so their sums add up to the whole list. */
void kfp_chunk_sums(const uint8_t *seq, size_t len, double *out, size_t num)
{
	for (size_t i = 0; i < num; i++)
		out[i] = 0;
	if (num == 0)
		return;
	double avg = (double)len / (double)num, last = 0;
	for (size_t piece = 0; last < (double)len; piece++, last += avg) {
		size_t from = (size_t)last, to = (size_t)(last + avg);
		double sum = 0;
		for (size_t i = from; i < to && i < len; i++)
			sum += seq[i];
		/* float steps can make one piece more than num (k-FP keeps it) */
		out[piece < num ? piece : num - 1] += sum;
	}
}

void flow_acc_features(const struct flow_acc *a, struct flow_features *ff)
{
	memset(ff, 0, sizeof *ff);
	if (a->packets == 0)
		return;
	ff->packets = a->packets;
	ff->bytes = a->bytes;
	ff->duration = (double)(int64_t)(a->last_ns - a->first_ns) / 1e9;
	ff->out_pkts = a->n_dir[0];
	ff->in_pkts = a->n_dir[1];
	ff->out_frac = (double)a->n_dir[0] / (double)a->packets;
	ff->in_frac = (double)a->n_dir[1] / (double)a->packets;
	/* numpy's np.std: the population std-dev, 0 for an empty list */
	ff->out_order_std = a->n_dir[0] ? sqrt(a->order_m2 / (double)a->n_dir[0]) : 0;
	kfp_chunk_sums(a->conc, a->n_conc, ff->alt_conc, KFP_ALT_CONC);
	for (size_t i = 0; i < KFP_ALT_CONC; i++)
		ff->alt_conc_sum += ff->alt_conc[i];
}

/* ------------------------------------------------------------ vectors */

static const char *const header_names[FV_HEADER] = {
	"ip_version", "ip_proto", "ttl_out", "ttl_in", "tcp_window_out", "tcp_window_in",
	"tcp_hlen_out", "tcp_hlen_in",
};
static const char *const per_packet_names[FV_PER_PACKET] = { "len", "dir", "iat", "tcp_flags" };
static const char *const port_names[FV_PORTS] = { "src_port", "dst_port" };
static const char *const flow_names[FV_FLOW] = {
	"f1_in_pkts", "f2_out_frac", "f3_in_frac", "f4_out_order_std", "f5_out_pkts",
	"f6_alt_conc_sum", "flow_pkts", "flow_bytes", "duration",
};

size_t flow_vector_len(unsigned n_packets, int ports)
{
	return (size_t)n_packets * FV_PER_PACKET + FV_HEADER + (ports ? FV_PORTS : 0) + FV_FLOW;
}

const char *flow_vector_name(size_t i, unsigned n_packets, int ports, char *buf, size_t len)
{
	size_t per = (size_t)n_packets * FV_PER_PACKET;
	if (i < per) {
		snprintf(buf, len, "%s_%zu", per_packet_names[i % FV_PER_PACKET], i / FV_PER_PACKET + 1);
		return buf;
	}
	i -= per;
	if (i < FV_HEADER)
		return snprintf(buf, len, "%s", header_names[i]), buf;
	i -= FV_HEADER;
	if (ports) {
		if (i < FV_PORTS)
			return snprintf(buf, len, "%s", port_names[i]), buf;
		i -= FV_PORTS;
	}
	snprintf(buf, len, "%s", i < FV_FLOW ? flow_names[i] : "?");
	return buf;
}

/* The header part: the first IP packet of each direction gives its TTL,
 * TCP window and TCP header length; the first IP packet of the flow its
 * version, protocol and ports. */
static void vector_headers(const struct flow_rec *f, int ports, float *out)
{
	int seen[2] = { 0, 0 }, any = 0;
	for (size_t i = 0; i < FV_HEADER; i++)
		out[i] = NAN;
	if (ports)
		out[FV_HEADER] = out[FV_HEADER + 1] = NAN;
	uint8_t first_dir = f->n_packets ? f->pkt[0].dir : 0;
	for (size_t i = 0; i < f->n_packets && !(seen[0] && seen[1]); i++) {
		const struct packet *pk = &f->pkt[i];
		struct pkt_fields pf;
		int d = pk->dir != first_dir;
		if (seen[d] || !pkt_fields_decode(f->linktype, pk->data, pk->caplen, pk->wirelen, &pf))
			continue;
		seen[d] = 1;
		if (!any) {
			any = 1;
			out[0] = pf.ip_version;
			out[1] = pf.proto;
			if (ports && pf.has_ports) {
				out[FV_HEADER] = pf.src_port;
				out[FV_HEADER + 1] = pf.dst_port;
			}
		}
		out[2 + d] = pf.ttl;
		if (pf.has_tcp) {
			out[4 + d] = pf.tcp_window;
			out[6 + d] = pf.tcp_hlen;
		}
	}
}

void flow_vector(const struct flow_rec *f, unsigned n_packets, int ports, struct flow_acc *acc,
		 float *out)
{
	float *hdr = out + (size_t)n_packets * FV_PER_PACKET;
	float *flow = hdr + FV_HEADER + (ports ? FV_PORTS : 0);
	uint8_t first_dir = f->n_packets ? f->pkt[0].dir : 0;

	flow_acc_reset(acc);
	for (size_t i = 0; i < f->n_packets; i++) {
		const struct packet *pk = &f->pkt[i];
		int d = pk->dir != first_dir;
		double iat = flow_acc_add(acc, pk->ts_ns, pk->wirelen, d);
		if (i >= n_packets)
			continue;
		float *v = out + i * FV_PER_PACKET;
		struct pkt_fields pf;
		v[0] = (float)pk->wirelen;
		v[1] = (float)d;
		v[2] = (float)iat;
		v[3] = pkt_fields_decode(f->linktype, pk->data, pk->caplen, pk->wirelen, &pf) &&
		       pf.has_tcp ? pf.tcp_flags : NAN;
	}
	for (size_t i = f->n_packets; i < n_packets; i++)
		for (size_t j = 0; j < FV_PER_PACKET; j++)
			out[i * FV_PER_PACKET + j] = NAN;
	vector_headers(f, ports, hdr);

	struct flow_features ff;
	flow_acc_features(acc, &ff);
	flow[0] = (float)ff.in_pkts;
	flow[1] = (float)ff.out_frac;
	flow[2] = (float)ff.in_frac;
	flow[3] = (float)ff.out_order_std;
	flow[4] = (float)ff.out_pkts;
	flow[5] = (float)ff.alt_conc_sum;
	flow[6] = (float)ff.packets;
	flow[7] = (float)ff.bytes;
	flow[8] = (float)ff.duration;
}
