/* flowtable.h: pcap2flow's open flows: a hash table keyed by the
 * direction-agnostic 5-tuple (and VLANs), the lists that end them (idle
 * timeout, TCP close or reset, end of input), where their packet bytes
 * are kept, and the bound on the mapped part of a capture file they may
 * hold. An ended flow goes to the emit callback, then back to a free list. */
#ifndef PCAP2FLOW_FLOWTABLE_H
#define PCAP2FLOW_FLOWTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"
#include "packet.h"
#include "reader.h"
#include "record.h"

/* A flow's packet bytes live in chunks that never move (flowtable.c). */
#define CHUNK_MIN_SHIFT 9
#define CHUNK_MAX_SHIFT 14
#define N_CLASSES (CHUNK_MAX_SHIFT - CHUNK_MIN_SHIFT + 1)

struct chunk {
	struct chunk *next;
	size_t size, used;
	int size_class;        /* or OWN_SIZE */
	uint8_t data[];
};

#define ARENA_BLOCK (2u << 20)

struct chunk_pool {
	struct chunk *free[N_CLASSES];
	uint8_t *block;        /* the newest block chunks are cut from */
	size_t block_used;
};

/* The direction-agnostic key: endpoint a is the smaller (address, port).
 * The link type keeps the packets of a pcapng file's interfaces of
 * different link types apart: a flow record has one. */
struct flow_key {
	uint8_t a[16], b[16];
	uint16_t port_a, port_b;
	uint16_t vlan[2];
	uint16_t linktype;
	uint8_t proto, ip_version, n_vlan, pad[3]; /* pad: zero */
};
_Static_assert(sizeof(struct flow_key) == 48, "flow_key is hashed as six words");

/* A flow's list memberships besides the idle or closing one: all open
 * flows by first packet; those pointing into the mapped file. */
enum { LINK_AGE, LINK_MAPPED, N_LINKS };

struct link {
	struct flow *prev, *next;
};

/* What every packet reads or writes comes first, in the first three cache
 * lines: the lookup's, then the packet list's and the timer's, then the
 * counters. */
struct flow {
	struct flow_key key;
	uint64_t hash;
	struct flow *hnext;    /* hash chain, or the free list */
	struct packet *pkt;    /* each points into the chunks or a window */
	size_t n_pkt, pkt_cap;
	uint64_t first_ns, last_ns;
	uint64_t active_ns;    /* capture clock at the last packet; orders the LRU */
	uint32_t slot;         /* index of the flow's idle or closing list links */
	uint8_t src_is_a;      /* the first packet came from endpoint a */
	uint8_t closing;       /* FIN seen both ways: on the closing list */
	uint8_t fin_seen;      /* bit per direction */
	uint8_t fin_acked;     /* bit per direction whose FIN the other side acked */
	uint8_t mapped;        /* packets from mapped_from on point into windows */
	uint64_t packets[2], bytes[2];
	uint32_t fin_next[2];  /* sequence number after each direction's FIN */
	uint64_t closed_ns;    /* capture clock at the second FIN */
	struct chunk *chunks;  /* the packets' bytes, newest chunk first */
	int next_class;        /* size class of the flow's next chunk */
	size_t mapped_from;
	struct link link[N_LINKS];
	uint64_t id;
	const char *label;     /* from the --labels table, or NULL */
	size_t label_len;
};

struct list {
	struct flow *head, *tail;
	int which;             /* LINK_AGE or LINK_MAPPED */
};

/* The idle and closing lists, by slot (flowtable.c). */
#define NO_SLOT UINT32_MAX

struct slot_link {
	uint32_t prev, next;
};

struct timer_list {
	uint32_t head, tail;   /* NO_SLOT when empty */
};

/* Called with each flow that ends; the flow's packets stay valid until
 * flows_drained is called (the output has written them). */
typedef void flow_emit_fn(void *arg, struct flow *f, enum flow_end end);

struct flow_config {
	uint64_t idle_ns;      /* a flow without packets for longer ends */
	uint64_t linger_ns;    /* a TCP flow closed both ways, not acked */
	int all;               /* keep every packet, not only TCP and UDP */
	struct label_table *labels; /* labels of new flows, or NULL */
	flow_emit_fn *emit;
	void *emit_arg;
};

/* A packet on its way into the table (flows_add). */
struct pending {
	int waiting;
	struct packet pk;
	const uint8_t *bytes;
	struct window *win;     /* the window the bytes are in, or NULL */
	struct pkt_info pi;
	uint32_t linktype;
	int ip, tcp_udp, src_is_a;
	int cut;                /* not TCP/UDP for all the capture shows: cut before its ports */
	struct flow_key key;
	uint64_t hash;
};

struct flow_table {
	struct flow_config cfg;
	/* chained hash, open flows on the lists */
	struct flow **bucket;
	size_t mask, n_open;
	struct timer_list idle, closing;
	struct list age;
	struct list mapped;     /* flows pointing into windows */
	struct flow **slot;     /* every flow made, by slot */
	struct slot_link *timer; /* the idle and closing lists' links, by slot */
	size_t n_slots, slot_cap, timer_cap;
	struct windows *win;    /* reading a mapped file: its windows, else NULL */
	struct flow *free;      /* ended flows kept for their packet arrays */
	struct chunk_pool pool;
	struct chunk *held;     /* chunks of written flows, until flows_drained */
	struct flow *frame;     /* scratch flow of --all single frames */
	/* the source being read */
	uint64_t now_ns;        /* the capture clock: latest time stamp seen */
	uint64_t next_id;
	/* packets not in any flow (without --all), by why */
	uint64_t skipped;       /* not TCP or UDP */
	uint64_t skipped_cut;   /* cut by the snapshot length before the ports */
	uint64_t skipped_linktype; /* of a link type the decoder does not know */
	struct pending pending[2]; /* the one waiting, the one coming */
	int next_pending;
};

void flows_init(struct flow_table *t, const struct flow_config *cfg);
/* A new source: flow ids and the clock start again. win: the windows of a
 * mapped file the packets are read from (left in place), or NULL (copied). */
void flows_begin(struct flow_table *t, struct windows *win);
/* A packet (pk->data unused) of link type linktype with its bytes joins its
 * flow, which may end it; flows idle too long before it end first. A
 * packet of a mapped file joins at the next call, or flows_flush. */
void flows_add(struct flow_table *t, const struct packet *pk, const uint8_t *bytes,
	       uint32_t linktype);
void flows_flush(struct flow_table *t);
/* The clock moves on without a packet (a live capture's quiet wire). */
void flows_tick(struct flow_table *t, uint64_t now_ns);
/* The end of a source: every open flow ends, in order of first packet. */
void flows_end_source(struct flow_table *t);
/* After the reader mapped a new window: keeps the mapped part of the file
 * within a budget (copying older packets of long flows). Returns whether
 * a window no flow points into can go: the caller drains the output (that
 * may point into it), then unmaps it. */
int flows_settle_windows(struct flow_table *t);
/* The output has written everything emitted so far (an out.drained hook). */
void flows_drained(void *table);
void flows_free(struct flow_table *t);
/* pkt_decode (packet.h), quicker for the commonest frames. */
int flow_decode_frame(uint32_t linktype, const uint8_t *p, size_t caplen, struct pkt_info *pi);

#endif
