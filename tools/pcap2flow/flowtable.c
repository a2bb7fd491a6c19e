/* flowtable.c: pcap2flow's open flows (see flowtable.h): the hash table,
 * the idle, closing and age lists, TCP's close, the packets' bytes in
 * chunks or left in the mapped file, and that file's memory budget. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bytes.h"
#include "cli.h"
#include "flowtable.h"
#include "packet.h"

#define PROTO_TCP 6
#define PROTO_UDP 17

/* ------------------------------------------------------------ packet bytes */

/* A flow's packet bytes live in chunks that never move, so each packet
 * points straight at its bytes and growing a flow copies nothing. Chunk
 * sizes are powers of two from 512 B to 16 KiB, doubling as a flow grows
 * (larger ones, half empty at the end of each long flow, took 4 to 6 MB
 * more on the benchmark below); a written flow hands its chunks back to
 * free lists by size, so memory follows the open flows and is reused
 * rather than faulted in anew. A packet too big for the largest size gets
 * a chunk of its own. */
#define OWN_SIZE (-1)

/* The mapped part of a capture file the open flows may hold. A window is
 * unmapped once no open flow points into it; and so that the mapped pages
 * (which count in the resident set) do not grow with the capture, a window
 * that falls MAP_BUDGET behind the newest one has the packets of the flows
 * still open in it copied into their chunks, and goes too. Memory then
 * holds at most MAP_BUDGET of the file, plus copies of what the
 * longer-lived flows sent before it. (On the synthetic benchmark, 1000
 * concurrent TCP flows, some alive over 140 MB of capture, whose open
 * flows alone hold 49 MB at 100 MB into it and 60 MB at 200: without the
 * budget the resident set grows with the file, 208 MB for 200 MB and 268 MB
 * for 400; with 80 MB, and 8 MiB windows (reader.c), it stays at 133 and
 * 135 MB (107 for 100 MB), copying 11 % of the bytes, for a sixth more
 * time than without. A budget of 64 MB saved 10 MB, for 9 % more time.) */
#define MAP_BUDGET (80u << 20)

static size_t class_size(int size_class)
{
	return (size_t)1 << (size_class + CHUNK_MIN_SHIFT);
}

/* New chunks of the size classes are cut from blocks of ARENA_BLOCK bytes
 * that the kernel may back with huge pages: faulting in the memory of the
 * open flows' copies a page of 4 KiB at a time cost more than the copying. */
static void *arena_take(struct chunk_pool *pool, size_t n)
{
	n = (n + 63) & ~(size_t)63;
	if (!pool->block || ARENA_BLOCK - pool->block_used < n) {
		void *b = aligned_alloc(ARENA_BLOCK, ARENA_BLOCK);
		if (!b)
			err(EX_OSERR, "aligned_alloc");
		(void)madvise(b, ARENA_BLOCK, MADV_HUGEPAGE); /* best effort */
		*(void **)b = pool->block; /* the blocks, newest first */
		pool->block = b;
		pool->block_used = 64;
	}
	void *p = pool->block + pool->block_used;
	pool->block_used += n;
	return p;
}

static struct chunk *chunk_get(struct chunk_pool *pool, int size_class, size_t need)
{
	struct chunk *c;
	if (size_class != OWN_SIZE && (c = pool->free[size_class])) {
		pool->free[size_class] = c->next;
	} else {
		size_t size = size_class == OWN_SIZE ? need : class_size(size_class);
		c = size_class == OWN_SIZE ? xmalloc(sizeof *c + size) : arena_take(pool, sizeof *c + size);
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
	while (pool->block) {
		uint8_t *b = pool->block;
		pool->block = *(void **)b;
		free(b);
	}
	memset(pool, 0, sizeof *pool);
}

/* ------------------------------------------------------------ flows */

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

/* The idle and closing lists are threaded through an array by the flows'
 * slots rather than through the flows: a flow moves to the tail of the
 * idle list at each of its packets, and the links of its neighbours then
 * lie in a few kilobytes that stay in the cache, not in three other flows. */
static void timer_append(struct flow_table *t, struct timer_list *l, struct flow *f)
{
	struct slot_link *k = &t->timer[f->slot];
	k->prev = l->tail;
	k->next = NO_SLOT;
	if (l->tail != NO_SLOT)
		t->timer[l->tail].next = f->slot;
	else
		l->head = f->slot;
	l->tail = f->slot;
}

static void timer_remove(struct flow_table *t, struct timer_list *l, struct flow *f)
{
	const struct slot_link *k = &t->timer[f->slot];
	if (k->prev != NO_SLOT)
		t->timer[k->prev].next = k->next;
	else
		l->head = k->next;
	if (k->next != NO_SLOT)
		t->timer[k->next].prev = k->prev;
	else
		l->tail = k->prev;
}

static struct flow *timer_head(const struct flow_table *t, const struct timer_list *l)
{
	return l->head == NO_SLOT ? NULL : t->slot[l->head];
}

/* The key's six words, each times an odd constant of its own, summed and
 * mixed (bytes.h). Every packet is hashed: this is a third of the work
 * of hash_words, whose rounds run one after the other. */
static uint64_t key_hash(const struct flow_key *k)
{
	uint64_t w[6];
	_Static_assert(sizeof *k == sizeof w, "a key is hashed as six words");
	memcpy(w, k, sizeof w);
	uint64_t h = w[0] * 0x9e3779b97f4a7c15ull + w[1] * 0xc2b2ae3d27d4eb4full +
		     w[2] * 0x165667b19e3779f9ull + w[3] * 0xd6e8feb86659fd93ull +
		     w[4] * 0xff51afd7ed558ccdull + w[5] * 0xc4ceb9fe1a85ec53ull;
	return mix64(h);
}

static int key_equal(const struct flow_key *x, const struct flow_key *y)
{
	uint64_t a[6], b[6];
	memcpy(a, x, sizeof a);
	memcpy(b, y, sizeof b);
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		(a[5] ^ b[5])) == 0;
}

void flows_init(struct flow_table *t, const struct flow_config *cfg)
{
	memset(t, 0, sizeof *t);
	t->cfg = *cfg;
	t->mask = 1023;
	t->bucket = xcalloc(t->mask + 1, sizeof *t->bucket);
	t->idle.head = t->idle.tail = t->closing.head = t->closing.tail = NO_SLOT;
	t->age.which = LINK_AGE;
	t->mapped.which = LINK_MAPPED;
}

/* Doubles the buckets when the chains would grow past one flow a bucket. */
static void table_grow(struct flow_table *t)
{
	size_t n = (t->mask + 1) * 2;
	struct flow **b = xcalloc(n, sizeof *b);
	for (size_t i = 0; i <= t->mask; i++) {
		struct flow *f = t->bucket[i], *next;
		for (; f; f = next) {
			next = f->hnext;
			f->hnext = b[f->hash & (n - 1)];
			b[f->hash & (n - 1)] = f;
		}
	}
	free(t->bucket);
	t->bucket = b;
	t->mask = n - 1;
}

static struct flow *table_find(struct flow_table *t, const struct flow_key *k, uint64_t h)
{
	for (struct flow *f = t->bucket[h & t->mask]; f; f = f->hnext)
		if (f->hash == h && key_equal(&f->key, k))
			return f;
	return NULL;
}

static void table_unlink(struct flow_table *t, struct flow *f)
{
	struct flow **pp = &t->bucket[f->hash & t->mask];
	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
	f->hnext = NULL;
}

/* A flow with empty buffers, from the free list when there is one. */
static struct flow *flow_new(struct flow_table *t)
{
	struct flow *f = t->free;
	if (f) {
		t->free = f->hnext;
	} else {
		f = xcalloc(1, sizeof *f);
		f->slot = (uint32_t)t->n_slots++;
		grow((void **)&t->slot, &t->slot_cap, t->n_slots, sizeof *t->slot);
		grow((void **)&t->timer, &t->timer_cap, t->n_slots, sizeof *t->timer);
		t->slot[f->slot] = f;
	}
	struct packet *pkt = f->pkt;
	size_t pkt_cap = f->pkt_cap;
	uint32_t slot = f->slot;
	memset(f, 0, sizeof *f);
	f->pkt = pkt;
	f->pkt_cap = pkt_cap;
	f->slot = slot;
	f->id = t->next_id++;
	return f;
}

/* Takes a written flow's chunks until the output is drained. */
static void hold_chunks(struct flow_table *t, struct chunk *chunks)
{
	if (!chunks)
		return;
	struct chunk *last = chunks;
	while (last->next)
		last = last->next;
	last->next = t->held;
	t->held = chunks;
}

void flows_drained(void *table)
{
	struct flow_table *t = table;
	while (t->held) {
		struct chunk *c = t->held;
		t->held = c->next;
		chunk_put(&t->pool, c);
	}
}

/* Empties a written flow; its chunks go back once the output is drained. */
static void flow_clear(struct flow_table *t, struct flow *f)
{
	hold_chunks(t, f->chunks);
	f->chunks = NULL;
	f->next_class = 0;
	f->n_pkt = 0;
}

/* Keeps an ended flow for the next one, and its packet array unless it
 * grew large: a long flow should not pin its memory after it is written. */
static void flow_recycle(struct flow_table *t, struct flow *f)
{
	flow_clear(t, f);
	if (f->pkt_cap > 1024) {
		free(f->pkt);
		f->pkt = NULL;
		f->pkt_cap = 0;
	}
	f->hnext = t->free;
	t->free = f;
}

void flows_free(struct flow_table *t)
{
	free(t->bucket);
	t->bucket = NULL;
	while (t->free) {
		struct flow *f = t->free;
		t->free = f->hnext;
		free(f->pkt);
		free(f);
	}
	if (t->frame) {
		flow_clear(t, t->frame);
		free(t->frame->pkt);
		free(t->frame);
		t->frame = NULL;
	}
	flows_drained(t); /* written already: only gives the chunks back */
	chunk_pool_free(&t->pool);
	free(t->slot);
	free(t->timer);
}

/* A copy of n packet bytes in the flow's newest chunk, or a new one. */
static const uint8_t *flow_store(struct flow_table *t, struct flow *f, const uint8_t *bytes, size_t n)
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
		c = chunk_get(&t->pool, size_class, n);
		c->next = f->chunks;
		f->chunks = c;
	}
	uint8_t *at = c->data + c->used;
	memcpy(at, bytes, n);
	c->used += n;
	return at;
}

/* A packet joins a flow: its bytes are left in the window they were read
 * from (in_place), the flow joining the mapped list at its first such
 * packet, or else copied into the flow's chunks. */
static inline void flow_append(struct flow_table *t, struct flow *f, const struct packet *p,
			const uint8_t *bytes, struct window *in_place)
{
	if (f->n_pkt == f->pkt_cap)
		grow((void **)&f->pkt, &f->pkt_cap, f->n_pkt + 1, sizeof *f->pkt);
	f->pkt[f->n_pkt] = *p;
	if (in_place && p->caplen > 0) {
		f->pkt[f->n_pkt].data = bytes;
		in_place->refs++;
		if (!f->mapped) {
			f->mapped = 1;
			f->mapped_from = f->n_pkt;
			list_append(&t->mapped, f);
		}
	} else {
		f->pkt[f->n_pkt].data = flow_store(t, f, bytes, p->caplen);
	}
	f->n_pkt++;
	if (f->n_pkt == 1)
		f->first_ns = p->ts_ns;
	f->last_ns = p->ts_ns;
	f->packets[p->dir]++;
	f->bytes[p->dir] += p->wirelen;
}

static void prefetch_bytes(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 64)
		__builtin_prefetch(p + i);
}

/* Copies the flow's packets in window w (its oldest mapped ones) into its
 * chunks, so that w can go. */
static void flow_copy_out(struct flow_table *t, struct flow *f, struct window *w)
{
	size_t i = f->mapped_from;
	for (; i < f->n_pkt && in_window(w, f->pkt[i].data); i++) {
		/* the next packet's bytes, long out of the cache, come from
		 * memory while these are copied */
		if (i + 1 < f->n_pkt)
			prefetch_bytes(f->pkt[i + 1].data, f->pkt[i + 1].caplen);
		f->pkt[i].data = flow_store(t, f, f->pkt[i].data, f->pkt[i].caplen);
		w->refs--;
	}
	f->mapped_from = i;
	if (i == f->n_pkt) {
		f->mapped = 0;
		list_remove(&t->mapped, f);
	}
}

/* An ended flow lets go of its packets in the windows (which stay mapped
 * until the flow is written out: see flows_settle_windows). */
static void flow_unref(struct flow_table *t, struct flow *f)
{
	struct window *w = t->win->oldest;
	for (size_t i = f->mapped_from; i < f->n_pkt; i++) {
		if (f->pkt[i].caplen == 0)
			continue;
		while (!in_window(w, f->pkt[i].data))
			w = w->next;
		w->refs--;
	}
	f->mapped = 0;
	list_remove(&t->mapped, f);
}

/* ------------------------------------------------------------ ending flows */

/* Ends an open flow: off the table and lists, written, recycled. */
static void flow_end(struct flow_table *t, struct flow *f, enum flow_end end)
{
	table_unlink(t, f);
	timer_remove(t, f->closing ? &t->closing : &t->idle, f);
	list_remove(&t->age, f);
	if (f->mapped)
		flow_unref(t, f);
	t->n_open--;
	t->cfg.emit(t->cfg.emit_arg, f, end);
	flow_recycle(t, f);
}

/* Ends the flows idle for longer than the timeout and the closed ones whose
 * linger is over. Both lists are in order of their times, so each check
 * stops at the first flow that stays. */
static int idle_due(const struct flow_table *t)
{
	const struct flow *f = timer_head(t, &t->idle);
	return f && t->now_ns - f->active_ns > t->cfg.idle_ns;
}

static int linger_due(const struct flow_table *t)
{
	const struct flow *f = timer_head(t, &t->closing);
	return f && t->now_ns - f->closed_ns > t->cfg.linger_ns;
}

static void expire_due(struct flow_table *t)
{
	while (idle_due(t))
		flow_end(t, timer_head(t, &t->idle), END_IDLE);
	while (linger_due(t))
		flow_end(t, timer_head(t, &t->closing), END_FIN);
}

/* Checked at every packet; mostly nothing is due. */
static inline void expire(struct flow_table *t)
{
	if (idle_due(t) || linger_due(t))
		expire_due(t);
}

/* What is still open goes in order of first packet. A flow closed both
 * ways had ended; only its linger was cut short. */
void flows_end_source(struct flow_table *t)
{
	flows_flush(t);
	struct flow *f;
	while ((f = t->age.head))
		flow_end(t, f, f->closing ? END_FIN : END_EOF);
	t->win = NULL;
}

void flows_begin(struct flow_table *t, struct windows *win)
{
	t->win = win;
	t->now_ns = 0;
	t->next_id = 0;
}

void flows_tick(struct flow_table *t, uint64_t now_ns)
{
	if (now_ns > t->now_ns && t->now_ns != 0) {
		t->now_ns = now_ns;
		expire(t);
	}
}

/* ------------------------------------------------------------ packets */

static uint64_t be64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return __builtin_bswap64(v);
}

/* memcmp of two 16-byte addresses, as two big-endian words. */
static int addr_cmp(const uint8_t *s, const uint8_t *d)
{
	uint64_t s0 = be64(s), d0 = be64(d);
	if (s0 != d0)
		return s0 < d0 ? -1 : 1;
	uint64_t s1 = be64(s + 8), d1 = be64(d + 8);
	return (s1 > d1) - (s1 < d1);
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)be16(p) << 16 | be16(p + 2);
}

/* pkt_decode's pkt_info of the frame most captures are made of: Ethernet
 * II carrying an IPv4 datagram, not a later fragment, with TCP's 20 bytes
 * or UDP's 8 captured; 0 for any other frame. pkt_decode gets there
 * through seven calls, each testing what is tested here once, and the
 * decoding was a fifth of the table's work. */
static int decode_plain_ipv4(uint32_t linktype, const uint8_t *p, size_t caplen,
			     struct pkt_info *pi)
{
	if (linktype != LT_ETHERNET || caplen < 14 + 20 || p[12] != 0x08 || p[13] != 0x00 ||
	    p[14] >> 4 != 4)
		return 0;
	size_t hlen = (size_t)(p[14] & 0x0f) * 4, l4 = 14 + hlen;
	uint8_t proto = p[23];
	uint16_t frag = be16(p + 20);
	if (hlen < 20 || (frag & 0x1fff) || (proto != PROTO_TCP && proto != PROTO_UDP) ||
	    caplen < l4 + (proto == PROTO_TCP ? 20 : 8))
		return 0;
	memset(pi, 0, sizeof *pi);
	pi->l2_addr_off[0] = 6, pi->l2_addr_len[0] = 6;
	pi->l2_addr_off[1] = 0, pi->l2_addr_len[1] = 6;
	pi->ethertype = 0x0800;
	pi->vlan_off[0] = pi->vlan_off[1] = -1;
	pi->l3_off = 14;
	pi->ip_version = 4;
	pi->ip_hlen = (uint8_t)hlen;
	pi->addr_len = 4;
	pi->ip_total_len = be16(p + 16);
	pi->ttl = p[22];
	pi->proto = proto;
	pi->src_off = 26, pi->dst_off = 30;
	pi->fragment = (frag & 0x3fff) != 0;
	pi->l4_off = (int)l4;
	pi->has_ports = 1;
	pi->port_off = (int)l4;
	pi->src_port = be16(p + l4);
	pi->dst_port = be16(p + l4 + 2);
	pi->l4_payload_off = -1;
	if (proto == PROTO_UDP) {
		pi->l4_payload_off = (int)l4 + 8;
		return 1;
	}
	pi->tcp_seq = be32(p + l4 + 4);
	pi->tcp_ack = be32(p + l4 + 8);
	pi->tcp_hlen = (uint8_t)((p[l4 + 12] >> 4) * 4);
	pi->tcp_flags = p[l4 + 13];
	pi->tcp_window = be16(p + l4 + 14);
	if (pi->tcp_hlen >= 20 && caplen - l4 >= pi->tcp_hlen)
		pi->l4_payload_off = (int)(l4 + pi->tcp_hlen);
	return 1;
}

int flow_decode_frame(uint32_t linktype, const uint8_t *p, size_t caplen, struct pkt_info *pi)
{
	return decode_plain_ipv4(linktype, p, caplen, pi) || pkt_decode(linktype, p, caplen, pi);
}

/* The key of an IP packet; returns whether its sender is endpoint a. */
static int make_key(const struct pkt_info *pi, const uint8_t *p, int with_ports,
		    struct flow_key *k)
{
	uint8_t s[16] = {0}, d[16] = {0};
	uint16_t sp = 0, dp = 0;
	if (pi->addr_len == 4) { /* copies of a known length are inlined */
		memcpy(s, p + pi->src_off, 4);
		memcpy(d, p + pi->dst_off, 4);
	} else {
		memcpy(s, p + pi->src_off, pi->addr_len);
		memcpy(d, p + pi->dst_off, pi->addr_len);
	}
	if (with_ports && pi->has_ports) {
		sp = pi->src_port;
		dp = pi->dst_port;
	}
	int cmp = addr_cmp(s, d);
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
static void emit_frame(struct flow_table *t, const struct pkt_info *pi, struct packet *pk,
		       const uint8_t *bytes, uint32_t linktype)
{
	if (!t->frame)
		t->frame = xcalloc(1, sizeof *t->frame); /* on no list: no slot */
	struct flow *f = t->frame;
	flow_clear(t, f);
	memset(&f->key, 0, sizeof f->key);
	f->key.n_vlan = pi->n_vlan;
	f->key.vlan[0] = pi->vlan[0];
	f->key.vlan[1] = pi->vlan[1];
	f->key.linktype = (uint16_t)linktype;
	f->src_is_a = 1;
	f->label = NULL;
	f->packets[0] = f->packets[1] = f->bytes[0] = f->bytes[1] = 0;
	f->id = t->next_id++;
	pk->dir = 0;
	flow_append(t, f, pk, bytes, NULL);
	t->cfg.emit(t->cfg.emit_arg, f, END_FRAME);
}

/* Bytes of TCP payload the segment carries (its sequence space, SYN and
 * FIN aside), from the IP length, or the wire length when a capture taken
 * before segmentation offload left the IP length 0. (A damaged record's
 * wire length may be short even of the headers captured.) */
static uint32_t tcp_payload_len(const struct pkt_info *pi, uint32_t wirelen)
{
	uint32_t l3_off = (uint32_t)pi->l3_off;
	uint32_t ip_len = pi->ip_total_len ? pi->ip_total_len
			: wirelen > l3_off ? wirelen - l3_off : 0;
	uint32_t headers = (uint32_t)(pi->l4_off - pi->l3_off) + pi->tcp_hlen;
	return ip_len > headers ? ip_len - headers : 0;
}

/* TCP's part in ending a flow, after the packet joined it. A close ends the
 * flow when both FINs are acknowledged, so the final ACK is in it; when
 * that ACK is not seen, the flow lingers (cfg.linger_ns) on the closing
 * list. Returns whether the flow ended. */
static int tcp_update(struct flow_table *t, struct flow *f, const struct pkt_info *pi,
		      uint32_t wirelen, uint8_t dir)
{
	uint8_t flags = pi->tcp_flags, back = (uint8_t)!dir;
	if (flags & TCP_RST) {
		/* after a completed close, a reset is only its tail */
		flow_end(t, f, f->closing ? END_FIN : END_RST);
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
		flow_end(t, f, END_FIN);
		return 1;
	}
	if (f->closing)
		return 0;
	timer_remove(t, &t->idle, f);
	if (f->fin_seen == 3) {
		f->closing = 1;
		f->closed_ns = t->now_ns;
		timer_append(t, &t->closing, f);
	} else {
		f->active_ns = t->now_ns;
		timer_append(t, &t->idle, f);
	}
	return 0;
}

/* Any other protocol: the packet keeps the flow from going idle. */
static void touch(struct flow_table *t, struct flow *f)
{
	timer_remove(t, &t->idle, f);
	f->active_ns = t->now_ns;
	timer_append(t, &t->idle, f);
}

/* A new flow's label from the --labels table: once per flow, never per
 * packet. */
static void find_label(struct flow_table *t, struct flow *f)
{
	const struct flow_key *k = &f->key;
	struct label_query q = {
		.addr = {k->a, k->b},
		.port = {k->port_a, k->port_b},
		.proto = k->proto,
		.ip_version = k->ip_version,
		.n_vlan = k->n_vlan,
		.vlan = k->vlan,
	};
	f->label = labels_find(t->cfg.labels, &q, &f->label_len);
}

/* A packet decoded and keyed, waiting for its turn (flows_add). */
static void prepare(struct flow_table *t, struct pending *pd, const struct packet *packet,
		    const uint8_t *bytes, uint32_t linktype)
{
	pd->pk = *packet;
	pd->pk.dir = 0;
	pd->pk.data = NULL;
	pd->bytes = bytes;
	pd->win = t->win ? t->win->newest : NULL;
	pd->linktype = linktype;
	pd->ip = flow_decode_frame(linktype, bytes, pd->pk.caplen, &pd->pi);
	int tcp_udp = pd->ip && (pd->pi.proto == PROTO_TCP || pd->pi.proto == PROTO_UDP);
	/* A TCP or UDP packet whose ports the snapshot length cut off has no
	 * key of its flow; nor has one cut before its IP header. (A later
	 * fragment has no ports at all: its flow is that of its addresses.) */
	int ports_cut = tcp_udp && !pd->pi.has_ports && !pd->pi.later_fragment && pd->pi.cut;
	pd->tcp_udp = tcp_udp && !ports_cut;
	pd->cut = (ports_cut || (!pd->ip && pd->pi.cut)) && pd->pk.caplen < pd->pk.wirelen;
	if (!pd->ip)
		return;
	pd->src_is_a = make_key(&pd->pi, bytes, pd->tcp_udp, &pd->key);
	pd->key.linktype = (uint16_t)linktype;
	pd->hash = key_hash(&pd->key);
	/* what join will read first: the flow at the head of the chain */
	const struct flow *f = t->bucket[pd->hash & t->mask];
	if (f) {
		__builtin_prefetch(f);
		__builtin_prefetch((const uint8_t *)f + 64);
		__builtin_prefetch((const uint8_t *)f + 128);
	}
}

/* A prepared packet joins its flow (a new one when there is none), which
 * may end with it; flows idle too long before it end first. */
static void join(struct flow_table *t, struct pending *pd)
{
	struct packet *pk = &pd->pk;
	const struct pkt_info *pi = &pd->pi;
	if (pk->ts_ns > t->now_ns)
		t->now_ns = pk->ts_ns;
	expire(t);
	if (!pd->tcp_udp && !t->cfg.all) {
		if (!pkt_linktype_known(pd->linktype))
			t->skipped_linktype++;
		else if (pd->cut)
			t->skipped_cut++;
		else
			t->skipped++;
		return;
	}
	if (!pd->ip) {
		emit_frame(t, pi, pk, pd->bytes, pd->linktype);
		return;
	}

	uint64_t hash = pd->hash;
	struct flow *f = table_find(t, &pd->key, hash);
	uint8_t flags = pi->proto == PROTO_TCP ? pi->tcp_flags : 0;
	/* a new connection on the key of a closed one */
	if (f && f->closing && (flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
		flow_end(t, f, END_FIN);
		f = NULL;
	}
	if (!f) {
		f = flow_new(t);
		f->key = pd->key;
		f->hash = hash;
		f->src_is_a = (uint8_t)pd->src_is_a;
		f->active_ns = t->now_ns;
		f->hnext = t->bucket[hash & t->mask];
		t->bucket[hash & t->mask] = f;
		timer_append(t, &t->idle, f);
		list_append(&t->age, f);
		if (++t->n_open > t->mask + 1)
			table_grow(t);
		if (t->cfg.labels)
			find_label(t, f);
	}
	pk->dir = pd->src_is_a == f->src_is_a ? 0 : 1;
	flow_append(t, f, pk, pd->bytes, pd->win);
	if (pi->proto == PROTO_TCP && pi->tcp_hlen) {
		if (tcp_update(t, f, pi, pk->wirelen, pk->dir))
			return;
	} else if (!f->closing) {
		touch(t, f);
	}
	/* Readers refuse longer flows (record.h): such a flow is written as
	 * if it had gone idle, and the next packet starts a new one. */
	if (f->n_pkt >= MAX_FLOW_PACKETS)
		flow_end(t, f, END_IDLE);
}

/* A packet's flow is mostly not in the cache when the packet comes: the
 * packets of a mapped file, which stay where they are, join their flows
 * one packet late, so that the flow of each is fetched from memory while
 * the one before is handled. Other packets, in a buffer the next read
 * overwrites, join at once. */
void flows_add(struct flow_table *t, const struct packet *packet, const uint8_t *bytes,
	       uint32_t linktype)
{
	struct pending *pd = &t->pending[t->next_pending];
	prepare(t, pd, packet, bytes, linktype);
	if (!t->win) {
		join(t, pd);
		return;
	}
	struct pending *before = &t->pending[!t->next_pending];
	if (before->waiting) {
		before->waiting = 0;
		join(t, before);
	}
	pd->waiting = 1;
	t->next_pending = !t->next_pending;
}

void flows_flush(struct flow_table *t)
{
	struct pending *before = &t->pending[!t->next_pending];
	if (before->waiting) {
		before->waiting = 0;
		join(t, before);
	}
}

int flows_settle_windows(struct flow_table *t)
{
	flows_flush(t); /* its window may go */
	struct window *w, *newest = t->win->newest;
	for (w = t->win->oldest; w != newest && w->off + w->len + MAP_BUDGET < newest->off;
	     w = w->next) {
		struct flow *f = t->mapped.head, *next;
		for (; f && w->refs; f = next) {
			next = f->link[LINK_MAPPED].next;
			flow_copy_out(t, f, w);
		}
	}
	for (w = t->win->oldest; w != newest; w = w->next)
		if (w->refs == 0)
			return 1;
	return 0;
}

