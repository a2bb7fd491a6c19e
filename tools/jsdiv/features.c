/* features.c: per-packet header fields, per-flow features (k-fingerprinting
 * after Hayes & Danezis 2016, as the TrafficGPT paper uses them) and the
 * grouping of packets into flows; see features.h and jsdiv(1). */
#include "features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "packet.h"

#define NS_PER_S 1000000000ull
#define PROTO_TCP 6
#define PROTO_UDP 17
/* pcap2flow's linger after FINs both ways, and its cap on a flow's packets
 * (record.h, MAX_FLOW_PACKETS): the same here, so the same flows come out. */
#define FIN_LINGER_NS (2 * NS_PER_S)
#define FLOW_MAX_PACKETS (1u << 24)

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

/* ------------------------------------------------------------ grouping */

struct flow_key {
	uint8_t a[16], b[16]; /* the lower endpoint first */
	uint16_t port_a, port_b;
	uint16_t vlan[2];
	uint8_t proto, ip_version, n_vlan, pad;
};

struct open_flow {
	struct open_flow *next; /* hash chain */
	struct flow_key key;
	uint64_t hash;
	uint8_t first_src[16];  /* sender of the first packet: outgoing */
	uint16_t first_port;
	uint64_t active_ns;     /* capture clock at the last packet */
	uint64_t closed_ns;     /* capture clock at the second FIN */
	uint32_t fin_next[2];   /* per direction: the sequence number after its FIN */
	uint8_t fin_seen;       /* bit per direction */
	uint8_t fin_acked;      /* bit per direction: its FIN acknowledged */
	uint8_t closing;        /* FINs seen both ways */
	struct flow_acc acc;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t key_hash(const struct flow_key *k)
{
	uint64_t w[sizeof *k / 8], h = 0x9e3779b97f4a7c15ull;
	memcpy(w, k, sizeof w);
	for (size_t i = 0; i < sizeof w / 8; i++)
		h = (h ^ mix64(w[i] + i)) * 0x100000001b3ull;
	return mix64(h);
}

static int tcp_or_udp(const struct pkt_fields *f)
{
	return f->proto == PROTO_TCP || f->proto == PROTO_UDP;
}

static void make_key(const struct pkt_fields *f, struct flow_key *k)
{
	uint16_t sp = 0, dp = 0;
	if (tcp_or_udp(f) && f->has_ports)
		sp = f->src_port, dp = f->dst_port;
	int cmp = memcmp(f->src_ip, f->dst_ip, 16);
	if (cmp == 0)
		cmp = (int)sp - (int)dp;
	int src_is_a = cmp <= 0;
	memset(k, 0, sizeof *k);
	memcpy(k->a, src_is_a ? f->src_ip : f->dst_ip, 16);
	memcpy(k->b, src_is_a ? f->dst_ip : f->src_ip, 16);
	k->port_a = src_is_a ? sp : dp;
	k->port_b = src_is_a ? dp : sp;
	k->proto = f->proto;
	k->ip_version = f->ip_version;
	k->n_vlan = f->n_vlan;
	k->vlan[0] = f->vlan[0];
	k->vlan[1] = f->vlan[1];
}

void flow_table_init(struct flow_table *t, uint64_t idle_ns, flow_done_fn done, void *ctx)
{
	memset(t, 0, sizeof *t);
	t->mask = 1023;
	t->bucket = xcalloc(t->mask + 1, sizeof *t->bucket);
	t->idle_ns = idle_ns;
	t->linger_ns = idle_ns < FIN_LINGER_NS ? idle_ns : FIN_LINGER_NS;
	t->done = done;
	t->ctx = ctx;
}

static void table_grow(struct flow_table *t)
{
	size_t n = (t->mask + 1) * 2;
	struct open_flow **b = xcalloc(n, sizeof *b);
	for (size_t i = 0; i <= t->mask; i++) {
		for (struct open_flow *f = t->bucket[i], *next; f; f = next) {
			next = f->next;
			f->next = b[f->hash & (n - 1)];
			b[f->hash & (n - 1)] = f;
		}
	}
	free(t->bucket);
	t->bucket = b;
	t->mask = n - 1;
}

/* Hands the flow's features on and frees it; *pp is its link in the chain. */
static void flow_end(struct flow_table *t, struct open_flow **pp)
{
	struct open_flow *f = *pp;
	struct flow_features ff;
	*pp = f->next;
	flow_acc_features(&f->acc, &ff);
	t->done(&ff, t->ctx);
	t->flows++;
	t->n_open--;
	flow_acc_free(&f->acc);
	free(f);
}

/* Whether the flow is over by the capture clock: idle too long, or closed
 * and its linger past. */
static int expired(const struct flow_table *t, const struct open_flow *f)
{
	if (f->closing)
		return t->now_ns - f->closed_ns > t->linger_ns;
	return t->now_ns - f->active_ns > t->idle_ns;
}

/* Ends the expired flows, so memory holds only the open ones. */
static void sweep(struct flow_table *t)
{
	for (size_t i = 0; i <= t->mask; i++) {
		struct open_flow **pp = &t->bucket[i];
		while (*pp)
			if (expired(t, *pp))
				flow_end(t, pp);
			else
				pp = &(*pp)->next;
	}
}

#define SWEEP_EVERY 65536

/* The chain link that points at f. */
static struct open_flow **link_of(struct flow_table *t, struct open_flow *f)
{
	struct open_flow **pp = &t->bucket[f->hash & t->mask];
	while (*pp != f)
		pp = &(*pp)->next;
	return pp;
}

/* TCP's part in ending a flow, after the packet joined it: a reset ends it,
 * and so does the packet that acknowledges the second FIN; until then FINs
 * both ways start the linger. Returns whether the flow ended. */
static int tcp_update(struct flow_table *t, struct open_flow *f, const struct pkt_fields *pf, int dir)
{
	int back = !dir;
	if (pf->tcp_flags & TCP_RST) {
		flow_end(t, link_of(t, f));
		return 1;
	}
	if ((pf->tcp_flags & TCP_FIN) && !(f->fin_seen & 1u << dir)) {
		f->fin_seen |= (uint8_t)(1u << dir);
		f->fin_next[dir] = pf->tcp_seq + pf->tcp_payload + 1;
	}
	if ((pf->tcp_flags & TCP_ACK) && (f->fin_seen & 1u << back) &&
	    (int32_t)(pf->tcp_ack - f->fin_next[back]) >= 0)
		f->fin_acked |= (uint8_t)(1u << back);
	if (f->fin_acked == 3) {
		flow_end(t, link_of(t, f));
		return 1;
	}
	if (f->closing)
		return 0;
	if (f->fin_seen == 3) {
		f->closing = 1;
		f->closed_ns = t->now_ns;
	} else {
		f->active_ns = t->now_ns;
	}
	return 0;
}

double flow_table_add(struct flow_table *t, uint64_t ts_ns, const struct pkt_fields *pf, int *first)
{
	struct flow_key key;
	make_key(pf, &key);
	uint64_t hash = key_hash(&key);
	if (ts_ns > t->now_ns)
		t->now_ns = ts_ns;
	if (++t->packets % SWEEP_EVERY == 0)
		sweep(t);

	uint8_t flags = pf->proto == PROTO_TCP ? pf->tcp_flags : 0;
	struct open_flow **pp = &t->bucket[hash & t->mask];
	while (*pp && !((*pp)->hash == hash && memcmp(&(*pp)->key, &key, sizeof key) == 0))
		pp = &(*pp)->next;
	struct open_flow *f = *pp;
	/* over by time, or a new connection on the key of a closed one (the
	 * link then points at the next flow of the chain, not at a match) */
	if (f && (expired(t, f) || (f->closing && (flags & (TCP_SYN | TCP_ACK)) == TCP_SYN))) {
		flow_end(t, pp);
		f = NULL;
	}
	if (!f) {
		f = xcalloc(1, sizeof *f);
		f->key = key;
		f->hash = hash;
		memcpy(f->first_src, pf->src_ip, 16);
		f->first_port = pf->src_port;
		f->active_ns = t->now_ns;
		f->next = t->bucket[hash & t->mask];
		t->bucket[hash & t->mask] = f;
		if (++t->n_open > t->mask + 1)
			table_grow(t);
	}
	int dir = !(memcmp(pf->src_ip, f->first_src, 16) == 0 &&
		    (!tcp_or_udp(pf) || !pf->has_ports || pf->src_port == f->first_port));
	/* a packet to itself (same address and port both ends) is outgoing */
	if (memcmp(pf->src_ip, pf->dst_ip, 16) == 0 && key.port_a == key.port_b)
		dir = 0;
	*first = f->acc.packets == 0;
	double iat = flow_acc_add(&f->acc, ts_ns, pf->wirelen, dir);

	if (pf->proto == PROTO_TCP && pf->has_tcp && pf->tcp_hlen) {
		if (tcp_update(t, f, pf, dir))
			return iat;
	} else if (!f->closing) {
		f->active_ns = t->now_ns;
	}
	if (f->acc.packets >= FLOW_MAX_PACKETS)
		flow_end(t, link_of(t, f));
	return iat;
}

void flow_table_finish(struct flow_table *t)
{
	for (size_t i = 0; i <= t->mask; i++)
		while (t->bucket[i])
			flow_end(t, &t->bucket[i]);
}

void flow_table_free(struct flow_table *t)
{
	for (size_t i = 0; t->bucket && i <= t->mask; i++)
		for (struct open_flow *f = t->bucket[i], *next; f; f = next) {
			next = f->next;
			flow_acc_free(&f->acc);
			free(f);
		}
	free(t->bucket);
	t->bucket = NULL;
	t->n_open = 0;
}
