/* pcap2flow: reads captures (pcap or pcapng files, or a live interface) and
 * writes their bidirectional flows as tgpt-stream(5) flow records, each flow
 * when it ends (idle timeout, TCP close, end of input), so memory holds only
 * the open flows. */
#define _GNU_SOURCE /* fopencookie: replays the sniffed header of a pipe */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "packet.h"
#include "record.h"
#include "stream.h"

static const char usage[] =
	"usage: pcap2flow [-aqv] [-c count] [-f filter] [-l label] [-o file] [-t secs] [file ...]\n"
	"       pcap2flow [-aqv] -i interface [-s snaplen] [-c count] [-f filter] [-l label] [-o file]\n"
	"                 [-t secs]\n"
	"Groups the packets of pcap/pcapng captures (or \"-\", stdin; the default) into\n"
	"bidirectional flows and writes them as a tgpt.flow msgpack stream.\n"
	"  -a, --all                keep every packet, not only TCP and UDP\n"
	"  -c, --count N            stop after N packets (that pass the filter)\n"
	"  -f, --filter EXPR        a pcap-filter(7) expression\n"
	"  -i, --interface IFACE    capture live from IFACE until SIGINT/SIGTERM\n"
	"  -l, --label LABEL        attach LABEL to every flow\n"
	"  -o, --output FILE        write to FILE (atomically) instead of stdout\n"
	"  -s, --snaplen BYTES      live capture: bytes kept per packet (262144)\n"
	"  -t, --idle-timeout SECS  end a flow after SECS without packets (120)\n"
	"      --force              write msgpack even to a terminal\n"
	"  -q, --quiet              no progress on the terminal\n"
	"  -v, --verbose            a summary on stderr at the end\n"
	"  -h, --help               this text\n"
	"  -V, --version            version and libraries\n";

#define NS_PER_S 1000000000ull
/* After FIN in both directions, the final ACKs still belong to the flow. */
#define FIN_LINGER_NS (2 * NS_PER_S)
#define LIVE_TIMEOUT_MS 100
#define LIVE_SNAPLEN 262144
#define PROGRESS_EVERY 16384
/* pcapng headers worth sniffing end long before this. */
#define SNIFF_MAX (1u << 20)

#define PROTO_TCP 6
#define PROTO_UDP 17

struct options {
	int all, force, quiet, verbose;
	uint64_t count;         /* 0: no limit */
	const char *filter, *label, *iface, *output;
	uint64_t idle_ns, linger_ns;
	int snaplen;
};

/* ------------------------------------------------------------ packet bytes */

/* A flow's packet bytes live in chunks that never move, so each packet
 * points straight at its bytes and growing a flow copies nothing. Chunk
 * sizes are powers of two from 512 B to 64 KiB, doubling as a flow grows;
 * a written flow hands its chunks back to free lists by size, so memory
 * follows the open flows and is reused rather than faulted in anew. A
 * packet too big for the largest size gets a chunk of its own. */
#define CHUNK_MIN_SHIFT 9
#define CHUNK_MAX_SHIFT 16
#define N_CLASSES (CHUNK_MAX_SHIFT - CHUNK_MIN_SHIFT + 1)
#define OWN_SIZE (-1)

struct chunk {
	struct chunk *next;
	size_t size, used;
	int size_class;        /* or OWN_SIZE */
	uint8_t data[];
};

struct chunk_pool {
	struct chunk *free[N_CLASSES];
};

static size_t class_size(int size_class)
{
	return (size_t)1 << (size_class + CHUNK_MIN_SHIFT);
}

static struct chunk *chunk_get(struct chunk_pool *pool, int size_class, size_t need)
{
	struct chunk *c;
	if (size_class != OWN_SIZE && (c = pool->free[size_class])) {
		pool->free[size_class] = c->next;
	} else {
		size_t size = size_class == OWN_SIZE ? need : class_size(size_class);
		c = xmalloc(sizeof *c + size);
		c->size = size;
		c->size_class = size_class;
	}
	c->next = NULL;
	c->used = 0;
	return c;
}

static void chunk_put(struct chunk_pool *pool, struct chunk *c)
{
	if (c->size_class == OWN_SIZE) {
		free(c);
		return;
	}
	c->next = pool->free[c->size_class];
	pool->free[c->size_class] = c;
}

static void chunk_pool_free(struct chunk_pool *pool)
{
	for (int i = 0; i < N_CLASSES; i++)
		while (pool->free[i]) {
			struct chunk *c = pool->free[i];
			pool->free[i] = c->next;
			free(c);
		}
}

/* ------------------------------------------------------------ flows */

/* The direction-agnostic key: endpoint a is the smaller (address, port). */
struct flow_key {
	uint8_t a[16], b[16];
	uint16_t port_a, port_b;
	uint16_t vlan[2];
	uint8_t proto, ip_version, n_vlan, pad[5]; /* pad: zero */
};
_Static_assert(sizeof(struct flow_key) == 48, "flow_key is hashed as six words");

enum { LINK_TIMER, LINK_AGE }; /* a flow's two list memberships */

struct link {
	struct flow *prev, *next;
};

struct flow {
	struct flow_key key;
	uint64_t hash;
	struct flow *hnext;    /* hash chain, or the free list */
	struct link link[2];   /* TIMER: the idle (LRU) or the closing list; AGE: by first packet */
	uint64_t id;
	uint64_t active_ns;    /* capture clock at the last packet; orders the LRU */
	uint64_t closed_ns;    /* capture clock at the second FIN */
	int src_is_a;          /* the first packet came from endpoint a */
	int closing;           /* FIN seen both ways: on the closing list */
	uint8_t fin_seen;      /* bit per direction */
	uint8_t fin_acked;     /* bit per direction whose FIN the other side acked */
	uint32_t fin_next[2];  /* sequence number after each direction's FIN */
	uint64_t first_ns, last_ns;
	uint64_t packets[2], bytes[2];
	struct packet *pkt;    /* each points into the chunks */
	size_t n_pkt, pkt_cap;
	struct chunk *chunks;  /* the packets' bytes, newest chunk first */
	int next_class;        /* size class of the flow's next chunk */
};

struct list {
	struct flow *head, *tail;
	int which;             /* LINK_TIMER or LINK_AGE */
};

static void list_append(struct list *l, struct flow *f)
{
	struct link *k = &f->link[l->which];
	k->prev = l->tail;
	k->next = NULL;
	if (l->tail)
		l->tail->link[l->which].next = f;
	else
		l->head = f;
	l->tail = f;
}

static void list_remove(struct list *l, struct flow *f)
{
	struct link *k = &f->link[l->which];
	if (k->prev)
		k->prev->link[l->which].next = k->next;
	else
		l->head = k->next;
	if (k->next)
		k->next->link[l->which].prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
}

/* One capture being read: what its flow records say about it. */
struct source {
	const char *name;       /* recorded in the flows: the path as given */
	const char *msgname;    /* for messages */
	uint32_t linktype, snaplen;
	uint8_t tsprec;
	uint32_t ts_scale;      /* pcap_pkthdr.ts.tv_usec units to ns */
	uint64_t next_id;
	uint64_t index;         /* packets libpcap returned so far */
	uint64_t now_ns;        /* the capture clock: latest timestamp seen */
	unsigned warned_caplen, warned_wirelen;
};

struct run {
	struct options opt;
	struct mp_writer out;
	struct atomic_file *out_file;
	struct source src;
	/* the flow table: chained hash, open flows on the lists */
	struct flow **bucket;
	size_t mask, n_open;
	struct list idle, closing, age;
	struct flow *free;      /* ended flows kept for their packet arrays */
	struct chunk_pool pool;
	struct flow *frame;     /* scratch flow of --all single frames */
	/* totals */
	uint64_t files, packets, filtered, skipped, flows, passed, lengths_fixed;
	int live_flush;         /* flush after each flow (live capture) */
	struct progress progress;
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
	uint64_t w[6], h = 0x9e3779b97f4a7c15ull;
	memcpy(w, k, sizeof w);
	for (int i = 0; i < 6; i++)
		h = (h ^ mix64(w[i] + (uint64_t)i)) * 0x100000001b3ull;
	return mix64(h);
}

static void table_init(struct run *r)
{
	r->mask = 1023;
	r->bucket = xcalloc(r->mask + 1, sizeof *r->bucket);
	r->idle.which = r->closing.which = LINK_TIMER;
	r->age.which = LINK_AGE;
}

/* Doubles the buckets when the chains would grow past one flow a bucket. */
static void table_grow(struct run *r)
{
	size_t n = (r->mask + 1) * 2;
	struct flow **b = xcalloc(n, sizeof *b);
	for (size_t i = 0; i <= r->mask; i++) {
		struct flow *f = r->bucket[i], *next;
		for (; f; f = next) {
			next = f->hnext;
			f->hnext = b[f->hash & (n - 1)];
			b[f->hash & (n - 1)] = f;
		}
	}
	free(r->bucket);
	r->bucket = b;
	r->mask = n - 1;
}

static struct flow *table_find(struct run *r, const struct flow_key *k, uint64_t h)
{
	for (struct flow *f = r->bucket[h & r->mask]; f; f = f->hnext)
		if (f->hash == h && memcmp(&f->key, k, sizeof *k) == 0)
			return f;
	return NULL;
}

static void table_unlink(struct run *r, struct flow *f)
{
	struct flow **pp = &r->bucket[f->hash & r->mask];
	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
	f->hnext = NULL;
}

/* A flow with empty buffers, from the free list when there is one. */
static struct flow *flow_new(struct run *r)
{
	struct flow *f = r->free;
	if (f) {
		r->free = f->hnext;
	} else {
		f = xcalloc(1, sizeof *f);
	}
	struct packet *pkt = f->pkt;
	size_t pkt_cap = f->pkt_cap;
	memset(f, 0, sizeof *f);
	f->pkt = pkt;
	f->pkt_cap = pkt_cap;
	f->id = r->src.next_id++;
	return f;
}

/* Gives the flow's chunks back and empties it. */
static void flow_clear(struct run *r, struct flow *f)
{
	while (f->chunks) {
		struct chunk *c = f->chunks;
		f->chunks = c->next;
		chunk_put(&r->pool, c);
	}
	f->next_class = 0;
	f->n_pkt = 0;
}

/* Keeps an ended flow for the next one, and its packet array unless it
 * grew large: a long flow should not pin its memory after it is written. */
static void flow_recycle(struct run *r, struct flow *f)
{
	flow_clear(r, f);
	if (f->pkt_cap > 1024) {
		free(f->pkt);
		f->pkt = NULL;
		f->pkt_cap = 0;
	}
	f->hnext = r->free;
	r->free = f;
}

static void flow_free_list(struct run *r)
{
	while (r->free) {
		struct flow *f = r->free;
		r->free = f->hnext;
		free(f->pkt);
		free(f);
	}
	if (r->frame) {
		flow_clear(r, r->frame);
		free(r->frame->pkt);
		free(r->frame);
		r->frame = NULL;
	}
	chunk_pool_free(&r->pool);
}

/* A copy of n packet bytes in the flow's newest chunk, or a new one. */
static const uint8_t *flow_store(struct run *r, struct flow *f, const uint8_t *bytes, size_t n)
{
	static const uint8_t nothing[1];
	if (n == 0)
		return nothing;
	struct chunk *c = f->chunks;
	if (!c || c->size - c->used < n) {
		int size_class = f->next_class;
		while (size_class < N_CLASSES - 1 && class_size(size_class) < n)
			size_class++;
		if (class_size(size_class) < n)
			size_class = OWN_SIZE;
		else if (size_class < N_CLASSES - 1)
			f->next_class = size_class + 1;
		c = chunk_get(&r->pool, size_class, n);
		c->next = f->chunks;
		f->chunks = c;
	}
	uint8_t *at = c->data + c->used;
	memcpy(at, bytes, n);
	c->used += n;
	return at;
}

static void flow_append(struct run *r, struct flow *f, const struct packet *p,
			const uint8_t *bytes)
{
	grow((void **)&f->pkt, &f->pkt_cap, f->n_pkt + 1, sizeof *f->pkt);
	f->pkt[f->n_pkt] = *p;
	f->pkt[f->n_pkt].data = flow_store(r, f, bytes, p->caplen);
	f->n_pkt++;
	if (f->n_pkt == 1)
		f->first_ns = p->ts_ns;
	f->last_ns = p->ts_ns;
	f->packets[p->dir]++;
	f->bytes[p->dir] += p->wirelen;
}

/* ------------------------------------------------------------ output */

static void flow_emit(struct run *r, struct flow *f, enum flow_end end)
{
	const struct flow_key *k = &f->key;
	struct flow_rec rec;
	memset(&rec, 0, sizeof rec);
	rec.id = f->id;
	rec.source = r->src.name;
	rec.source_len = strlen(r->src.name);
	rec.linktype = r->src.linktype;
	rec.snaplen = r->src.snaplen;
	rec.tsprec = r->src.tsprec;
	rec.ip_version = k->ip_version;
	rec.proto = k->proto;
	memcpy(rec.src_ip, f->src_is_a ? k->a : k->b, 16);
	memcpy(rec.dst_ip, f->src_is_a ? k->b : k->a, 16);
	rec.src_port = f->src_is_a ? k->port_a : k->port_b;
	rec.dst_port = f->src_is_a ? k->port_b : k->port_a;
	rec.n_vlan = k->n_vlan;
	rec.vlan[0] = k->vlan[0];
	rec.vlan[1] = k->vlan[1];
	rec.first_ns = f->first_ns;
	rec.last_ns = f->last_ns;
	for (int d = 0; d < 2; d++) {
		rec.packets[d] = f->packets[d];
		rec.bytes[d] = f->bytes[d];
	}
	rec.end = end;
	if (r->opt.label) {
		rec.label = r->opt.label;
		rec.label_len = strlen(r->opt.label);
	}
	rec.n_packets = f->n_pkt;
	rec.pkt = f->pkt;
	flow_write(&r->out.pk, &rec);
	r->flows++;
	if (r->out.failed) {
		/* a full disk or a closed pipe: no use reading on */
		warnx("%s: %s", r->out.name, strerror(r->out.failed));
		atomic_abort(r->out_file);
		exit(EX_IOERR);
	}
	if (r->live_flush)
		fflush(r->out.f);
}

/* Ends an open flow: off the table and lists, written, recycled. */
static void flow_end(struct run *r, struct flow *f, enum flow_end end)
{
	table_unlink(r, f);
	list_remove(f->closing ? &r->closing : &r->idle, f);
	list_remove(&r->age, f);
	r->n_open--;
	flow_emit(r, f, end);
	flow_recycle(r, f);
}

/* Ends the flows idle for longer than the timeout and the closed ones whose
 * linger is over. Both lists are in order of their times, so each check
 * stops at the first flow that stays. */
static void expire(struct run *r)
{
	uint64_t now = r->src.now_ns;
	struct flow *f;
	while ((f = r->idle.head) && now - f->active_ns > r->opt.idle_ns)
		flow_end(r, f, END_IDLE);
	while ((f = r->closing.head) && now - f->closed_ns > r->opt.linger_ns)
		flow_end(r, f, END_FIN);
}

/* At the end of a source: what is still open, in order of first packet. A
 * flow closed both ways had ended; only its linger was cut short. */
static void flush_all(struct run *r)
{
	struct flow *f;
	while ((f = r->age.head))
		flow_end(r, f, f->closing ? END_FIN : END_EOF);
}

/* ------------------------------------------------------------ packets */

/* The key of an IP packet; returns whether its sender is endpoint a. */
static int make_key(const struct pkt_info *pi, const uint8_t *p, int with_ports,
		    struct flow_key *k)
{
	uint8_t s[16] = {0}, d[16] = {0};
	uint16_t sp = 0, dp = 0;
	memcpy(s, p + pi->src_off, pi->addr_len);
	memcpy(d, p + pi->dst_off, pi->addr_len);
	if (with_ports && pi->has_ports) {
		sp = pi->src_port;
		dp = pi->dst_port;
	}
	int cmp = memcmp(s, d, sizeof s);
	if (cmp == 0)
		cmp = (int)sp - (int)dp;
	int src_is_a = cmp <= 0;
	memset(k, 0, sizeof *k);
	memcpy(k->a, src_is_a ? s : d, 16);
	memcpy(k->b, src_is_a ? d : s, 16);
	k->port_a = src_is_a ? sp : dp;
	k->port_b = src_is_a ? dp : sp;
	k->proto = pi->proto;
	k->ip_version = pi->ip_version;
	k->n_vlan = pi->n_vlan;
	k->vlan[0] = pi->vlan[0];
	k->vlan[1] = pi->vlan[1];
	return src_is_a;
}

/* A non-IP frame under --all: a flow of its own, written at once. */
static void emit_frame(struct run *r, const struct pkt_info *pi, struct packet *pk,
		       const uint8_t *bytes)
{
	if (!r->frame)
		r->frame = xcalloc(1, sizeof *r->frame);
	struct flow *f = r->frame;
	flow_clear(r, f);
	memset(&f->key, 0, sizeof f->key);
	f->key.n_vlan = pi->n_vlan;
	f->key.vlan[0] = pi->vlan[0];
	f->key.vlan[1] = pi->vlan[1];
	f->src_is_a = 1;
	f->packets[0] = f->packets[1] = f->bytes[0] = f->bytes[1] = 0;
	f->id = r->src.next_id++;
	pk->dir = 0;
	flow_append(r, f, pk, bytes);
	flow_emit(r, f, END_FRAME);
}

/* Bytes of TCP payload the segment carries (its sequence space, SYN and
 * FIN aside), from the IP length, or the wire length when a capture taken
 * before segmentation offload left the IP length 0. */
static uint32_t tcp_payload_len(const struct pkt_info *pi, uint32_t wirelen)
{
	uint32_t ip_len = pi->ip_total_len ? pi->ip_total_len : wirelen - (uint32_t)pi->l3_off;
	uint32_t headers = (uint32_t)(pi->l4_off - pi->l3_off) + pi->tcp_hlen;
	return ip_len > headers ? ip_len - headers : 0;
}

/* TCP's part in ending a flow, after the packet joined it. A close ends the
 * flow when both FINs are acknowledged, so the final ACK is in it; when
 * that ACK is not seen, the flow lingers (FIN_LINGER_NS) on the closing
 * list. Returns whether the flow ended. */
static int tcp_update(struct run *r, struct flow *f, const struct pkt_info *pi,
		      uint32_t wirelen, uint8_t dir)
{
	uint8_t flags = pi->tcp_flags, back = (uint8_t)!dir;
	if (flags & TCP_RST) {
		/* after a completed close, a reset is only its tail */
		flow_end(r, f, f->closing ? END_FIN : END_RST);
		return 1;
	}
	if ((flags & TCP_FIN) && !(f->fin_seen & 1u << dir)) {
		f->fin_seen |= (uint8_t)(1u << dir);
		f->fin_next[dir] = pi->tcp_seq + tcp_payload_len(pi, wirelen) + 1;
	}
	if ((flags & TCP_ACK) && (f->fin_seen & 1u << back) &&
	    (int32_t)(pi->tcp_ack - f->fin_next[back]) >= 0)
		f->fin_acked |= (uint8_t)(1u << back);
	if (f->fin_acked == 3) {
		flow_end(r, f, END_FIN);
		return 1;
	}
	if (f->closing)
		return 0;
	list_remove(&r->idle, f);
	if (f->fin_seen == 3) {
		f->closing = 1;
		f->closed_ns = r->src.now_ns;
		list_append(&r->closing, f);
	} else {
		f->active_ns = r->src.now_ns;
		list_append(&r->idle, f);
	}
	return 0;
}

/* Any other protocol: the packet keeps the flow from going idle. */
static void touch(struct run *r, struct flow *f)
{
	list_remove(&r->idle, f);
	f->active_ns = r->src.now_ns;
	list_append(&r->idle, f);
}

/* Lengths a flow record cannot hold (record.h): libpcap passes on a wire
 * length below the captured one from a damaged header, and caps snaplen at
 * 256 KiB only for most link types. Said once per source. */
static void fix_lengths(struct run *r, struct packet *pk)
{
	struct source *s = &r->src;
	if (pk->caplen > MAX_PACKET_BYTES) {
		if (!s->warned_caplen++ && !r->opt.quiet)
			warnx("%s: packet %" PRIu64 ": %" PRIu32 " bytes captured, only the first %u kept",
			      s->msgname, pk->index + 1, pk->caplen, MAX_PACKET_BYTES);
		pk->caplen = MAX_PACKET_BYTES;
	}
	if (pk->wirelen < pk->caplen) {
		if (!s->warned_wirelen++ && !r->opt.quiet)
			warnx("%s: packet %" PRIu64 ": wire length %" PRIu32 " below the %" PRIu32
			      " bytes captured, taken as %" PRIu32, s->msgname, pk->index + 1,
			      pk->wirelen, pk->caplen, pk->caplen);
		pk->wirelen = pk->caplen;
		r->lengths_fixed++;
	}
}

static void handle_packet(struct run *r, const struct pcap_pkthdr *h, const uint8_t *bytes,
			  uint64_t index)
{
	struct source *s = &r->src;
	struct packet pk;
	int64_t sec = h->ts.tv_sec < 0 ? 0 : (int64_t)h->ts.tv_sec;
	pk.ts_ns = (uint64_t)sec * NS_PER_S + (uint64_t)h->ts.tv_usec * s->ts_scale;
	pk.caplen = h->caplen;
	pk.wirelen = h->len;
	pk.index = index;
	pk.dir = 0;
	pk.data = NULL;
	fix_lengths(r, &pk);
	if (pk.ts_ns > s->now_ns)
		s->now_ns = pk.ts_ns;
	expire(r);

	struct pkt_info pi;
	int ip = pkt_decode(s->linktype, bytes, pk.caplen, &pi);
	int tcp_udp = ip && (pi.proto == PROTO_TCP || pi.proto == PROTO_UDP);
	if (!tcp_udp && !r->opt.all) {
		r->skipped++;
		return;
	}
	if (!ip) {
		emit_frame(r, &pi, &pk, bytes);
		return;
	}

	struct flow_key key;
	int src_is_a = make_key(&pi, bytes, tcp_udp, &key);
	uint64_t hash = key_hash(&key);
	struct flow *f = table_find(r, &key, hash);
	uint8_t flags = pi.proto == PROTO_TCP ? pi.tcp_flags : 0;
	/* a new connection on the key of a closed one */
	if (f && f->closing && (flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
		flow_end(r, f, END_FIN);
		f = NULL;
	}
	if (!f) {
		f = flow_new(r);
		f->key = key;
		f->hash = hash;
		f->src_is_a = src_is_a;
		f->active_ns = s->now_ns;
		f->hnext = r->bucket[hash & r->mask];
		r->bucket[hash & r->mask] = f;
		list_append(&r->idle, f);
		list_append(&r->age, f);
		if (++r->n_open > r->mask + 1)
			table_grow(r);
	}
	pk.dir = src_is_a == f->src_is_a ? 0 : 1;
	flow_append(r, f, &pk, bytes);
	if (pi.proto == PROTO_TCP && pi.tcp_hlen) {
		if (tcp_update(r, f, &pi, pk.wirelen, pk.dir))
			return;
	} else if (!f->closing) {
		touch(r, f);
	}
	/* Readers refuse longer flows (record.h): such a flow is written as
	 * if it had gone idle, and the next packet starts a new one. */
	if (f->n_pkt >= MAX_FLOW_PACKETS)
		flow_end(r, f, END_IDLE);
}

/* Every packet libpcap returns counts for the index; the filter, run here
 * rather than by libpcap, only decides whether it joins a flow. */
static void take_packet(struct run *r, const struct bpf_program *prog,
			const struct pcap_pkthdr *h, const uint8_t *bytes)
{
	uint64_t index = r->src.index++;
	r->packets++;
	if (prog && !pcap_offline_filter(prog, h, bytes)) {
		r->filtered++;
		return;
	}
	r->passed++;
	handle_packet(r, h, bytes, index);
	if (r->passed % PROGRESS_EVERY == 0)
		progress_tick(&r->progress, "%" PRIu64 " packets, %zu flows open",
			      r->packets, r->n_open);
}

static int count_reached(const struct run *r)
{
	return r->opt.count && r->passed >= r->opt.count;
}

static void source_begin(struct run *r, const char *name, const char *msgname)
{
	memset(&r->src, 0, sizeof r->src);
	r->src.name = name;
	r->src.msgname = msgname;
	r->files++;
}

/* ------------------------------------------------------------ file headers */

/* What the start of a capture file says that libpcap does not tell: the
 * file's own timestamp precision and its LINKTYPE (pcap_datalink gives the
 * platform's DLT, which differs for some, e.g. raw IP). */
struct sniff {
	uint8_t *buf;
	size_t len, cap;
	int eof, error;       /* end of input, errno of a read error */
	int known;            /* a pcap or pcapng header was recognised */
	uint8_t tsprec;
	uint32_t linktype;
	int has_linktype;
};

/* Reads up to n more bytes into the sniff buffer; returns whether all came. */
static int sniff_read(FILE *f, struct sniff *s, size_t n)
{
	if (s->eof || s->error || s->len + n > SNIFF_MAX)
		return 0;
	grow((void **)&s->buf, &s->cap, s->len + n, 1);
	size_t got = fread(s->buf + s->len, 1, n, f);
	s->len += got;
	if (got < n) {
		if (ferror(f))
			s->error = errno ? errno : EIO;
		else
			s->eof = 1;
		return 0;
	}
	return 1;
}

static uint32_t rd32(const uint8_t *p, int big)
{
	return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
		   : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint16_t rd16(const uint8_t *p, int big)
{
	return big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

/* pcap: the magic number says microseconds or nanoseconds. */
static void sniff_pcap(FILE *f, struct sniff *s, uint32_t magic_le, uint32_t magic_be)
{
	const uint32_t usec = 0xa1b2c3d4, nsec = 0xa1b23c4d, modified = 0xa1b2cd34;
	int big;
	if (magic_le == usec || magic_le == nsec || magic_le == modified)
		big = 0;
	else if (magic_be == usec || magic_be == nsec || magic_be == modified)
		big = 1;
	else
		return;
	s->known = 1;
	s->tsprec = (big ? magic_be : magic_le) == nsec ? 9 : 6;
	if (sniff_read(f, s, 20)) {
		s->linktype = rd32(s->buf + 20, big) & 0xffff;
		s->has_linktype = 1;
	}
}

/* if_tsresol (pcapng option 9): finer than a microsecond? */
static int tsresol_finer_than_us(uint8_t v)
{
	if (v & 0x80)
		return (v & 0x7f) >= 20; /* 2^-20 s < 1 us */
	return v > 6;
}

/* An interface description block's body: link type, snap length, options. */
static void sniff_idb(struct sniff *s, const uint8_t *body, size_t len, int big)
{
	if (len < 8)
		return;
	if (!s->has_linktype) {
		s->linktype = rd16(body, big);
		s->has_linktype = 1;
	}
	for (size_t at = 8; at + 4 <= len;) {
		uint16_t code = rd16(body + at, big), olen = rd16(body + at + 2, big);
		if (code == 0 || at + 4 + olen > len)
			break;
		if (code == 9 && olen >= 1 && tsresol_finer_than_us(body[at + 4]))
			s->tsprec = 9;
		at += 4 + (((size_t)olen + 3) & ~(size_t)3);
	}
}

/* pcapng: the section header, then the blocks before the first packet, for
 * the interfaces' link type and time resolution (default microseconds). */
static void sniff_pcapng(FILE *f, struct sniff *s)
{
	const uint32_t shb = 0x0a0d0d0a, idb = 1, bom = 0x1a2b3c4d;
	s->known = 1;
	s->tsprec = 6;
	if (!sniff_read(f, s, 8))
		return;
	int big = rd32(s->buf + 8, 1) == bom;
	uint32_t len = rd32(s->buf + 4, big);
	if (len < 28 || len % 4 || !sniff_read(f, s, len - 12))
		return;
	for (;;) {
		size_t start = s->len;
		if (!sniff_read(f, s, 8))
			return;
		uint32_t type = rd32(s->buf + start, big);
		len = rd32(s->buf + start + 4, big);
		/* packets (2, 3, 6), a new section, or nonsense: done */
		if (type == 2 || type == 3 || type == 6 || type == shb || len < 12 || len % 4)
			return;
		if (!sniff_read(f, s, len - 8))
			return;
		if (type == idb)
			sniff_idb(s, s->buf + start + 8, len - 12, big);
	}
}

static void sniff(FILE *f, struct sniff *s)
{
	memset(s, 0, sizeof *s);
	s->tsprec = 6;
	if (!sniff_read(f, s, 4))
		return;
	uint32_t le = rd32(s->buf, 0), be = rd32(s->buf, 1);
	if (le == 0x0a0d0d0a)
		sniff_pcapng(f, s);
	else
		sniff_pcap(f, s, le, be);
}

/* libpcap must see the file from its first byte. A regular file is rewound;
 * a pipe is wrapped in a stream that replays the sniffed bytes first. */
struct replay {
	uint8_t *buf;
	size_t len, pos;
	FILE *src;
};

static ssize_t replay_read(void *cookie, char *out, size_t n)
{
	struct replay *rp = cookie;
	if (rp->pos < rp->len) {
		size_t k = rp->len - rp->pos < n ? rp->len - rp->pos : n;
		memcpy(out, rp->buf + rp->pos, k);
		rp->pos += k;
		return (ssize_t)k;
	}
	size_t k = fread(out, 1, n, rp->src);
	if (k == 0 && ferror(rp->src))
		return -1;
	return (ssize_t)k;
}

static int replay_close(void *cookie)
{
	struct replay *rp = cookie;
	int rc = rp->src == stdin ? 0 : fclose(rp->src);
	free(rp->buf);
	free(rp);
	return rc;
}

/* Takes over f and the sniffed bytes; returns the stream to give libpcap. */
static FILE *replay_open(FILE *f, struct sniff *s, int seekable, off_t start)
{
	if (seekable && fseeko(f, start, SEEK_SET) == 0) {
		free(s->buf);
		s->buf = NULL;
		return f;
	}
	struct replay *rp = xcalloc(1, sizeof *rp);
	rp->buf = s->buf;
	rp->len = s->len;
	rp->src = f;
	s->buf = NULL;
	cookie_io_functions_t io = {.read = replay_read, .close = replay_close};
	FILE *c = fopencookie(rp, "rb", io);
	if (!c)
		err(EX_OSERR, "fopencookie");
	setvbuf(c, NULL, _IOFBF, 1 << 16);
	return c;
}

/* ------------------------------------------------------------ link types */

/* The LINKTYPE_ (file format) value of a DLT_ (platform) value, for the few
 * where they differ (libpcap's dlt_to_linktype, which it does not export). */
static uint32_t linktype_of_dlt(int dlt)
{
	switch (dlt) {
	case DLT_ATM_RFC1483:
		return 100;
	case DLT_RAW:
		return LT_RAW;
	case DLT_SLIP_BSDOS:
		return 102;
	case DLT_PPP_BSDOS:
		return 103;
	case DLT_ATM_CLIP:
		return 106;
	default:
		return (uint32_t)dlt;
	}
}

/* ------------------------------------------------------------ sources */

static int compile_filter(struct run *r, pcap_t *p, struct bpf_program *prog)
{
	if (!r->opt.filter)
		return 0;
	if (pcap_compile(p, prog, r->opt.filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		warnx("%s: filter \"%s\": %s", r->src.msgname, r->opt.filter, pcap_geterr(p));
		return EX_USAGE;
	}
	return 0;
}

/* Opens path ("-": stdin) for libpcap. Returns the handle, or NULL with the
 * exit status in *status after a message. */
static pcap_t *open_capture(struct run *r, const char *path, struct sniff *sn, int *status)
{
	int is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	if (!f) {
		warn("%s", path);
		*status = EX_NOINPUT;
		return NULL;
	}
	struct stat st;
	int seekable = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
	off_t start = seekable ? ftello(f) : 0;
	if (start < 0)
		seekable = 0;
	sniff(f, sn);
	if (sn->error || sn->len == 0) {
		if (sn->error) {
			errno = sn->error;
			warn("%s", r->src.msgname);
			*status = EX_NOINPUT;
		} else {
			warnx("%s: empty file, not a capture", r->src.msgname);
			*status = EX_DATAERR;
		}
		free(sn->buf);
		if (!is_stdin)
			fclose(f);
		return NULL;
	}
	FILE *pf = replay_open(f, sn, seekable, start);
	char eb[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_fopen_offline_with_tstamp_precision(pf, PCAP_TSTAMP_PRECISION_NANO, eb);
	if (!p) {
		warnx("%s: %s", r->src.msgname, eb);
		*status = EX_DATAERR;
		if (pf != stdin)
			fclose(pf);
		return NULL;
	}
	return p;
}

/* Reads one capture file into flows. Returns 0 or an exit status; either
 * way every packet read before a problem is written. */
static int read_file(struct run *r, const char *path)
{
	int status = 0;
	struct sniff sn;
	source_begin(r, path, strcmp(path, "-") == 0 ? "<stdin>" : path);
	pcap_t *p = open_capture(r, path, &sn, &status);
	if (!p)
		return status;
	r->src.linktype = sn.has_linktype ? sn.linktype : linktype_of_dlt(pcap_datalink(p));
	r->src.snaplen = (uint32_t)pcap_snapshot(p);
	r->src.tsprec = sn.known ? sn.tsprec : 6;
	r->src.ts_scale = 1; /* opened for nanoseconds */

	struct bpf_program prog;
	status = compile_filter(r, p, &prog);
	if (status) {
		pcap_close(p);
		return status;
	}
	struct pcap_pkthdr *h;
	const u_char *bytes;
	while (!count_reached(r)) {
		int rc = pcap_next_ex(p, &h, &bytes);
		if (rc == PCAP_ERROR_BREAK)
			break;
		if (rc != 1) {
			warnx("%s: packet %" PRIu64 ": %s", r->src.msgname, r->src.index + 1,
			      pcap_geterr(p));
			status = EX_DATAERR;
			break;
		}
		take_packet(r, r->opt.filter ? &prog : NULL, h, bytes);
	}
	flush_all(r);
	if (r->opt.filter)
		pcap_freecode(&prog);
	pcap_close(p);
	return status;
}

/* ------------------------------------------------------------ live capture */

static volatile sig_atomic_t stop_requested;
static pcap_t *live_handle;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	if (live_handle)
		pcap_breakloop(live_handle);
}

static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static int activate_status(int rc)
{
	switch (rc) {
	case PCAP_ERROR_NO_SUCH_DEVICE:
		return EX_NOINPUT;
	case PCAP_ERROR_PERM_DENIED:
		return EX_NOPERM;
	default:
		return EX_UNAVAILABLE;
	}
}

static pcap_t *open_live(struct run *r, int *status)
{
	char eb[PCAP_ERRBUF_SIZE];
	const char *iface = r->opt.iface;
	pcap_t *p = pcap_create(iface, eb);
	if (!p) {
		warnx("%s: %s", iface, eb);
		*status = EX_UNAVAILABLE;
		return NULL;
	}
	pcap_set_snaplen(p, r->opt.snaplen);
	pcap_set_immediate_mode(p, 1);
	/* flows go idle while the wire is quiet: wake up now and then */
	pcap_set_timeout(p, LIVE_TIMEOUT_MS);
	pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
	int rc = pcap_activate(p);
	if (rc < 0) {
		const char *why = rc == PCAP_ERROR ? pcap_geterr(p) : pcap_statustostr(rc);
		warnx("%s: %s", iface, why);
		*status = activate_status(rc);
		pcap_close(p);
		return NULL;
	}
	if (rc > 0 && !r->opt.quiet)
		warnx("%s: %s", iface, rc == PCAP_WARNING ? pcap_geterr(p) : pcap_statustostr(rc));
	return p;
}

static int read_live(struct run *r)
{
	int status = 0;
	source_begin(r, r->opt.iface, r->opt.iface);
	pcap_t *p = open_live(r, &status);
	if (!p)
		return status;
	int nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
	r->src.linktype = linktype_of_dlt(pcap_datalink(p));
	r->src.snaplen = (uint32_t)pcap_snapshot(p);
	r->src.tsprec = nano ? 9 : 6;
	r->src.ts_scale = nano ? 1 : 1000;
	r->live_flush = 1;

	struct bpf_program prog;
	status = compile_filter(r, p, &prog);
	if (status) {
		pcap_close(p);
		return status;
	}
	if (r->opt.filter) {
		if (pcap_setfilter(p, &prog) < 0) {
			warnx("%s: filter: %s", r->src.msgname, pcap_geterr(p));
			pcap_freecode(&prog);
			pcap_close(p);
			return EX_USAGE;
		}
		pcap_freecode(&prog);
	}
	/* libpcap's own read timeout does not reliably return on a quiet
	 * wire (Linux retries the poll itself): read without blocking and
	 * wait here, so the idle timeout runs on while nothing comes. */
	char eb[PCAP_ERRBUF_SIZE];
	if (pcap_setnonblock(p, 1, eb) < 0) {
		warnx("%s: %s", r->src.msgname, eb);
		pcap_close(p);
		return EX_UNAVAILABLE;
	}
	struct pollfd pfd = {.fd = pcap_get_selectable_fd(p), .events = POLLIN};
	live_handle = p;
	catch_signals();
	struct pcap_pkthdr *h;
	const u_char *bytes;
	while (!stop_requested && !count_reached(r)) {
		int rc = pcap_next_ex(p, &h, &bytes);
		if (rc == 1) {
			take_packet(r, NULL, h, bytes); /* the kernel filtered */
		} else if (rc == 0) {
			poll(pfd.fd >= 0 ? &pfd : NULL, pfd.fd >= 0, LIVE_TIMEOUT_MS);
			/* let the capture clock run on with the wall clock */
			uint64_t now = wall_ns();
			if (now > r->src.now_ns && r->src.now_ns != 0) {
				r->src.now_ns = now;
				expire(r);
			}
		} else if (rc == PCAP_ERROR_BREAK) {
			break;
		} else {
			warnx("%s: packet %" PRIu64 ": %s", r->src.msgname, r->src.index + 1,
			      pcap_geterr(p));
			status = EX_IOERR;
			break;
		}
	}
	live_handle = NULL;
	flush_all(r);
	pcap_close(p);
	return status;
}

/* ------------------------------------------------------------ main */

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_FORCE = 256 };
	static const struct option longopts[] = {
		{"all", no_argument, NULL, 'a'},
		{"count", required_argument, NULL, 'c'},
		{"filter", required_argument, NULL, 'f'},
		{"force", no_argument, NULL, OPT_FORCE},
		{"help", no_argument, NULL, 'h'},
		{"interface", required_argument, NULL, 'i'},
		{"idle-timeout", required_argument, NULL, 't'},
		{"label", required_argument, NULL, 'l'},
		{"output", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},
		{"snaplen", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	double idle = 120;
	int c;

	memset(o, 0, sizeof *o);
	o->snaplen = LIVE_SNAPLEN;
	while ((c = getopt_long(argc, argv, "ac:f:hi:l:o:qs:t:vV", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			o->all = 1;
			break;
		case 'c':
			o->count = opt_u64(usage, "-c", optarg, 1, UINT64_MAX);
			break;
		case 'f':
			o->filter = optarg;
			break;
		case 'h':
			cli_help(usage);
		case 'i':
			o->iface = optarg;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 's':
			o->snaplen = (int)opt_u64(usage, "-s", optarg, 1, LIVE_SNAPLEN);
			break;
		case 't':
			idle = opt_double(usage, "-t", optarg, 0, 1e9);
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'V': {
			const char *libs[] = {pcap_lib_version(), NULL};
			cli_version(libs);
		}
		case OPT_FORCE:
			o->force = 1;
			break;
		default:
			cli_usage_error(usage, "unknown option");
		}
	}
	if (o->iface && optind < argc)
		cli_usage_error(usage, "-i and capture files exclude each other");
	o->idle_ns = (uint64_t)(idle * 1e9);
	o->linger_ns = o->idle_ns < FIN_LINGER_NS ? o->idle_ns : FIN_LINGER_NS;
}

static void summary(const struct run *r)
{
	fprintf(stderr,
		"%s: %" PRIu64 " %s, %" PRIu64 " packets, %" PRIu64 " flows, %" PRIu64
		" packets skipped (not TCP/UDP), %" PRIu64 " filtered out",
		cli_progname(), r->files, r->opt.iface ? "interfaces" : "files", r->packets,
		r->flows, r->skipped, r->filtered);
	if (r->lengths_fixed)
		fprintf(stderr, ", %" PRIu64 " wire lengths raised to the captured length",
			r->lengths_fixed);
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	static struct run r;
	struct atomic_file out;
	int status = 0;

	cli_init(argc, argv);
	parse_options(argc, argv, &r.opt);
	if (!r.opt.output || strcmp(r.opt.output, "-") == 0)
		cli_refuse_tty(r.opt.force);
	atomic_open(&out, r.opt.output ? r.opt.output : "-");
	setvbuf(out.f, NULL, _IOFBF, 1 << 16);
	mp_writer_init(&r.out, out.f, r.opt.output ? r.opt.output : "<stdout>");
	r.out_file = &out;
	hdr_write(&r.out.pk, SCHEMA_FLOW, "pcap2flow");
	table_init(&r);
	progress_init(&r.progress, r.opt.quiet);

	if (r.opt.iface) {
		status = read_live(&r);
	} else if (optind == argc) {
		status = read_file(&r, "-");
	} else {
		for (int i = optind; i < argc && !status && !count_reached(&r); i++)
			status = read_file(&r, argv[i]);
	}
	progress_done(&r.progress);

	/* What was read is written, even when a capture was damaged; an
	 * output file is not made when nothing was. */
	if (mp_writer_flush(&r.out) < 0) {
		warn("%s", r.out.name);
		atomic_abort(&out);
		return EX_IOERR;
	}
	if (status && r.flows == 0)
		atomic_abort(&out);
	else
		atomic_commit(&out);
	if (r.opt.verbose)
		summary(&r);
	free(r.bucket);
	flow_free_list(&r);
	return status;
}
