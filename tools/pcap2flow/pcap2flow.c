/* pcap2flow: reads captures (pcap or pcapng files, or a live interface) and
 * writes their bidirectional flows as tgpt-stream(5) flow records, each flow
 * when it ends (idle timeout, TCP close, end of input), so memory holds only
 * the open flows. Classic pcap files are read here rather than by libpcap;
 * the packets of a regular file are not copied at all (its flows point into
 * the mapped file, and writev(2) takes the bytes from there), those of a
 * pipe once, into their flows. */
#define _GNU_SOURCE /* fopencookie: replays the sniffed header of a pipe */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "cli.h"
#include "labels.h"
#include "packet.h"
#include "record.h"
#include "stream.h"

static const char usage[] =
	"usage: pcap2flow [-aqv] [-c count] [-f filter] [-l label] [--labels table] [-o file]\n"
	"                 [-t secs] [file ...]\n"
	"       pcap2flow [-aqv] -i interface [-s snaplen] [-c count] [-f filter] [-l label]\n"
	"                 [--labels table] [-o file] [-t secs]\n"
	"Groups the packets of pcap/pcapng captures (or \"-\", stdin; the default) into\n"
	"bidirectional flows and writes them as a tgpt.flow msgpack stream.\n"
	"  -a, --all                keep every packet, not only TCP and UDP\n"
	"  -c, --count N            stop after N packets (that pass the filter)\n"
	"  -f, --filter EXPR        a pcap-filter(7) expression\n"
	"  -i, --interface IFACE    capture live from IFACE until SIGINT/SIGTERM\n"
	"  -l, --label LABEL        attach LABEL to every flow (--labels: every flow the\n"
	"                           table does not name)\n"
	"      --labels TABLE       labels from a table of flows (nDPI's flow table, TSV,\n"
	"                           or a Zeek conn.log), by 5-tuple; a summary on stderr\n"
	"      --labels-format FMT  the table's format: tsv, zeek or auto (the default)\n"
	"      --label-column NAME  the column of the labels (tsv: category, zeek: service)\n"
	"      --label-filter COLUMN=PREFIX  only rows whose COLUMN starts with PREFIX\n"
	"                           give labels (repeatable)\n"
	"      --label-key COLUMN   the table's capture-file column (tsv: pcap), matched\n"
	"                           by base name\n"
	"  -o, --output FILE        write to FILE (atomically) instead of stdout\n"
	"  -s, --snaplen BYTES      live capture: bytes kept per packet (262144)\n"
	"  -t, --idle-timeout SECS  end a flow after SECS without packets (120)\n"
	"      --force              write msgpack even to a terminal\n"
	"  -q, --quiet              no progress on the terminal, no label summary\n"
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
	struct label_options labels; /* labels.path: --labels given */
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

/* ------------------------------------------------------------ output buffer */

/* The stream is packed into a buffer, all but the packets' bytes: the
 * writev(2) that drains the buffer takes those from where they lie (a
 * flow's chunks, or the mapped file), so no byte is copied in user space on
 * its way out. flow_write hands over pieces of GATHER_MIN bytes or more only
 * for packet bytes and for the source name and label, which live as long
 * as the run; smaller ones, its keys, numbers and addresses among them (in
 * its own or msgpack's short-lived buffers), are copied. So the chunks of a
 * written flow are held, and windows left mapped, until the writev that
 * reads them is done. */
#define OUT_BUF (256u * 1024u)
#define GATHER_MIN 32
#define OUT_IOV 1024 /* IOV_MAX on Linux */
/* The size asked of an output pipe: beyond the default 64 KiB, pcap2flow
 * and its reader switch less often (the benchmark's 200 MB through
 * "| cat" takes 0.26 s, not 0.37). 1 MiB is what fs.pipe-max-size lets
 * anyone ask by default. */
#define OUT_PIPE_SIZE (1 << 20)

struct out {
	int fd;
	const char *name;       /* for messages */
	msgpack_packer pk;
	uint8_t *buf;
	size_t used, run;       /* bytes in buf; start of those not yet in iov */
	struct iovec iov[OUT_IOV];
	int n_iov;
	int failed;             /* errno of the first failed write, or 0 */
	struct chunk *held;     /* chunks the iovecs may point into */
	struct chunk_pool *pool;
};

/* The buffered bytes since the last piece taken in place become an iovec. */
static void out_close_run(struct out *o)
{
	if (o->used > o->run) {
		o->iov[o->n_iov].iov_base = o->buf + o->run;
		o->iov[o->n_iov].iov_len = o->used - o->run;
		o->n_iov++;
		o->run = o->used;
	}
}

/* Writes everything gathered, then gives the held chunks back. After a
 * failed write the rest is dropped: the caller gives up on seeing failed. */
static void out_drain(struct out *o)
{
	out_close_run(o);
	struct iovec *v = o->iov;
	int n = o->n_iov;
	while (n > 0 && !o->failed) {
		ssize_t k = writev(o->fd, v, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			o->failed = k < 0 ? errno : EIO;
			break;
		}
		for (; n > 0 && (size_t)k >= v->iov_len; v++, n--)
			k -= (ssize_t)v->iov_len;
		if (n > 0) {
			v->iov_base = (uint8_t *)v->iov_base + k;
			v->iov_len -= (size_t)k;
		}
	}
	o->n_iov = 0;
	o->used = o->run = 0;
	while (o->held) {
		struct chunk *c = o->held;
		o->held = c->next;
		chunk_put(o->pool, c);
	}
}

/* Copies a piece shorter than GATHER_MIN: most are a byte or a few (a
 * msgpack header, a number), and a call to memcpy would cost more than the
 * copy. Two overlapping 8-byte copies cover 8 to 16 bytes. */
static void out_copy_small(uint8_t *d, const char *p, size_t len)
{
	if (len >= 8 && len <= 16) {
		memcpy(d, p, 8);
		memcpy(d + len - 8, p + len - 8, 8);
	} else if (len < 8) {
		for (size_t i = 0; i < len; i++)
			d[i] = (uint8_t)p[i];
	} else {
		memcpy(d, p, len);
	}
}

/* msgpack_packer's writer. Keeps at most OUT_IOV - 1 iovecs between calls,
 * so that out_drain can always close the run. */
static int out_put(void *data, const char *p, size_t len)
{
	struct out *o = data;
	if (len < GATHER_MIN) {
		if (OUT_BUF - o->used < len)
			out_drain(o);
		out_copy_small(o->buf + o->used, p, len);
		o->used += len;
	} else {
		if (o->n_iov + 3 > OUT_IOV)
			out_drain(o);
		out_close_run(o);
		o->iov[o->n_iov].iov_base = (void *)p;
		o->iov[o->n_iov].iov_len = len;
		o->n_iov++;
	}
	return o->failed ? -1 : 0;
}

static void out_init(struct out *o, int fd, const char *name, struct chunk_pool *pool)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		(void)fcntl(fd, F_SETPIPE_SZ, OUT_PIPE_SIZE); /* best effort */
	memset(o, 0, sizeof *o);
	o->fd = fd;
	o->name = name;
	o->pool = pool;
	o->buf = xmalloc(OUT_BUF);
	msgpack_packer_init(&o->pk, o, out_put);
}

/* Takes a written flow's chunks until the next drain. */
static void out_hold(struct out *o, struct chunk *chunks)
{
	if (!chunks)
		return;
	struct chunk *last = chunks;
	while (last->next)
		last = last->next;
	last->next = o->held;
	o->held = chunks;
}

/* ------------------------------------------------------------ mapped windows */

/* A part of a regular capture file mapped for reading (see "pcap records"
 * below). The packets read from it stay there, pointed to by their flows,
 * and it stays mapped while any open flow points into it. Windows overlap
 * by the record that did not fit in the older one: a packet's bytes are in
 * the window it was read from. */
struct window {
	uint8_t *map;
	size_t len;
	uint64_t off;           /* the file offset of map[0] */
	uint64_t refs;          /* packets of open flows in it */
	struct window *next;    /* the next newer one */
};

struct windows {
	struct window *oldest, *newest; /* the reader's: newest is being read */
};

static int in_window(const struct window *w, const uint8_t *p)
{
	uintptr_t a = (uintptr_t)p, start = (uintptr_t)w->map;
	return a >= start && a - start < w->len;
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

/* A flow's list memberships: the idle (LRU) or the closing list; all open
 * flows by first packet; those pointing into the mapped file. */
enum { LINK_TIMER, LINK_AGE, LINK_MAPPED, N_LINKS };

struct link {
	struct flow *prev, *next;
};

struct flow {
	struct flow_key key;
	uint64_t hash;
	struct flow *hnext;    /* hash chain, or the free list */
	struct link link[N_LINKS];
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
	struct packet *pkt;    /* each points into the chunks or a window */
	size_t n_pkt, pkt_cap;
	struct chunk *chunks;  /* the packets' bytes, newest chunk first */
	int next_class;        /* size class of the flow's next chunk */
	int mapped;            /* packets from mapped_from on point into windows */
	size_t mapped_from;
	const char *label;     /* from the --labels table, or NULL */
	size_t label_len;
};

struct list {
	struct flow *head, *tail;
	int which;             /* LINK_TIMER, LINK_AGE or LINK_MAPPED */
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
	uint64_t index;         /* packets read so far */
	uint64_t now_ns;        /* the capture clock: latest timestamp seen */
	int classic;            /* a pcap file: its seconds are unsigned 32-bit */
	unsigned warned_caplen;
};

struct run {
	struct options opt;
	struct out out;
	struct atomic_file *out_file;
	struct source src;
	/* the flow table: chained hash, open flows on the lists */
	struct flow **bucket;
	size_t mask, n_open;
	struct list idle, closing, age;
	struct list mapped;     /* flows pointing into windows */
	struct windows *win;    /* reading a mapped file: its windows, else NULL */
	struct flow *free;      /* ended flows kept for their packet arrays */
	struct chunk_pool pool;
	struct flow *frame;     /* scratch flow of --all single frames */
	struct label_table *labels; /* --labels */
	/* totals */
	uint64_t files, packets, filtered, skipped, flows, passed;
	int live_flush;         /* flush after each flow (live capture) */
	struct progress progress;
};

static uint64_t key_hash(const struct flow_key *k)
{
	uint64_t w[6];
	_Static_assert(sizeof *k == sizeof w, "a key is hashed as six words");
	memcpy(w, k, sizeof w);
	return hash_words(w, 6);
}

static void table_init(struct run *r)
{
	r->mask = 1023;
	r->bucket = xcalloc(r->mask + 1, sizeof *r->bucket);
	r->idle.which = r->closing.which = LINK_TIMER;
	r->age.which = LINK_AGE;
	r->mapped.which = LINK_MAPPED;
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

/* Empties a written flow; its chunks go back once the output is drained. */
static void flow_clear(struct run *r, struct flow *f)
{
	out_hold(&r->out, f->chunks);
	f->chunks = NULL;
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
	out_drain(&r->out); /* written already: only gives the chunks back */
	chunk_pool_free(&r->pool);
	free(r->out.buf);
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

/* A packet joins a flow: its bytes are left in the window they were read
 * from (in_place), the flow joining the mapped list at its first such
 * packet, or else copied into the flow's chunks. */
static void flow_append(struct run *r, struct flow *f, const struct packet *p,
			const uint8_t *bytes, int in_place)
{
	if (f->n_pkt == f->pkt_cap)
		grow((void **)&f->pkt, &f->pkt_cap, f->n_pkt + 1, sizeof *f->pkt);
	f->pkt[f->n_pkt] = *p;
	if (in_place && p->caplen > 0) {
		f->pkt[f->n_pkt].data = bytes;
		r->win->newest->refs++;
		if (!f->mapped) {
			f->mapped = 1;
			f->mapped_from = f->n_pkt;
			list_append(&r->mapped, f);
		}
	} else {
		f->pkt[f->n_pkt].data = flow_store(r, f, bytes, p->caplen);
	}
	f->n_pkt++;
	if (f->n_pkt == 1)
		f->first_ns = p->ts_ns;
	f->last_ns = p->ts_ns;
	f->packets[p->dir]++;
	f->bytes[p->dir] += p->wirelen;
}

/* Copies the flow's packets in window w (its oldest mapped ones) into its
 * chunks, so that w can go. */
static void flow_copy_out(struct run *r, struct flow *f, struct window *w)
{
	size_t i = f->mapped_from;
	for (; i < f->n_pkt && in_window(w, f->pkt[i].data); i++) {
		f->pkt[i].data = flow_store(r, f, f->pkt[i].data, f->pkt[i].caplen);
		w->refs--;
	}
	f->mapped_from = i;
	if (i == f->n_pkt) {
		f->mapped = 0;
		list_remove(&r->mapped, f);
	}
}

/* An ended flow lets go of its packets in the windows (which stay mapped
 * until the flow is written out: see settle_windows). */
static void flow_unref(struct run *r, struct flow *f)
{
	struct window *w = r->win->oldest;
	for (size_t i = f->mapped_from; i < f->n_pkt; i++) {
		if (f->pkt[i].caplen == 0)
			continue;
		while (!in_window(w, f->pkt[i].data))
			w = w->next;
		w->refs--;
	}
	f->mapped = 0;
	list_remove(&r->mapped, f);
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
	if (f->label) {
		rec.label = f->label;
		rec.label_len = f->label_len;
	} else if (r->opt.label) {
		rec.label = r->opt.label;
		rec.label_len = strlen(r->opt.label);
	}
	rec.n_packets = f->n_pkt;
	rec.pkt = f->pkt;
	flow_write(&r->out.pk, &rec);
	r->flows++;
	if (r->live_flush)
		out_drain(&r->out);
	if (r->out.failed) {
		/* a full disk or a closed pipe: no use reading on */
		warnx("%s: %s", r->out.name, strerror(r->out.failed));
		atomic_abort(r->out_file);
		exit(EX_IOERR);
	}
}

/* Ends an open flow: off the table and lists, written, recycled. */
static void flow_end(struct run *r, struct flow *f, enum flow_end end)
{
	table_unlink(r, f);
	list_remove(f->closing ? &r->closing : &r->idle, f);
	list_remove(&r->age, f);
	if (f->mapped)
		flow_unref(r, f);
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
	f->label = NULL;
	f->packets[0] = f->packets[1] = f->bytes[0] = f->bytes[1] = 0;
	f->id = r->src.next_id++;
	pk->dir = 0;
	flow_append(r, f, pk, bytes, 0);
	flow_emit(r, f, END_FRAME);
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

/* A packet as a reader hands it on: its bytes stay put until the next one
 * is read, or, in a window, while the window is mapped. */
struct raw {
	uint64_t ts_ns;
	uint32_t caplen, wirelen;
	const uint8_t *data;
};

/* A flow record holds at most MAX_PACKET_BYTES of a packet (record.h);
 * libpcap caps the captured length at 256 KiB only for most link types.
 * Said once per source. A wire length below the captured one (a damaged
 * or fuzzed record) is kept as it is: the stream can say so. */
static void cap_caplen(struct run *r, struct packet *pk)
{
	struct source *s = &r->src;
	if (pk->caplen > MAX_PACKET_BYTES) {
		if (!s->warned_caplen++ && !r->opt.quiet)
			warnx("%s: packet %" PRIu64 ": %" PRIu32 " bytes captured, only the first %u kept",
			      s->msgname, pk->index + 1, pk->caplen, MAX_PACKET_BYTES);
		pk->caplen = MAX_PACKET_BYTES;
	}
}

/* A new flow's label from the --labels table: once per flow, never per
 * packet. */
static void find_label(struct run *r, struct flow *f)
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
	f->label = labels_find(r->labels, &q, &f->label_len);
}

static void handle_packet(struct run *r, const struct raw *raw, uint64_t index)
{
	struct source *s = &r->src;
	const uint8_t *bytes = raw->data;
	struct packet pk;
	pk.ts_ns = raw->ts_ns;
	pk.caplen = raw->caplen;
	pk.wirelen = raw->wirelen;
	pk.index = index;
	pk.dir = 0;
	pk.data = NULL;
	cap_caplen(r, &pk);
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
		if (r->labels)
			find_label(r, f);
	}
	pk.dir = src_is_a == f->src_is_a ? 0 : 1;
	flow_append(r, f, &pk, bytes, r->win != NULL);
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

/* Every packet read counts for the index; the filter, run here rather than
 * by libpcap, only decides whether it joins a flow. */
static void take_packet(struct run *r, const struct bpf_program *prog, const struct raw *raw)
{
	uint64_t index = r->src.index++;
	r->packets++;
	if (prog) {
		struct pcap_pkthdr h;
		memset(&h, 0, sizeof h);
		h.caplen = raw->caplen;
		h.len = raw->wirelen;
		if (!pcap_offline_filter(prog, &h, raw->data)) {
			r->filtered++;
			return;
		}
	}
	r->passed++;
	handle_packet(r, raw, index);
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
	int classic;          /* pcap (not pcapng) */
	int big;              /* pcap: its fields are big-endian */
	int modified;         /* pcap: Kuznetzov's longer record headers */
	uint16_t major, minor; /* pcap: format version */
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
	s->classic = 1;
	s->big = big;
	s->modified = (big ? magic_be : magic_le) == modified;
	s->tsprec = (big ? magic_be : magic_le) == nsec ? 9 : 6;
	if (sniff_read(f, s, 20)) {
		s->major = rd16(s->buf + 4, big);
		s->minor = rd16(s->buf + 6, big);
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

/* ------------------------------------------------------------ pcap records */

/* Classic pcap files, the common kind (either byte order, microseconds or
 * nanoseconds, version 2.4), are read here, not by libpcap, which copies
 * every record twice (into stdio's buffer, then into its own). A pipe is
 * read in large blocks, and each packet copied once, into its flow. A
 * regular file is mapped, a window at a time, and its packets are not
 * copied at all: the flows point into the windows, and the output takes
 * the bytes from there. A window is unmapped once no open flow points into
 * it; and so that the mapped pages (which count in the resident set) do
 * not grow with the capture, a window that falls MAP_BUDGET behind the
 * newest one has the packets of the flows still open in it copied into
 * their chunks, and goes too. Memory then holds at most MAP_BUDGET of the
 * file, plus copies of what the longer-lived flows sent before it. (On the
 * synthetic benchmark, 1000 concurrent TCP flows, some alive over 140 MB of
 * capture: without the budget the resident set grows with the file, 203 MB
 * for 200 MB and 261 MB for 400; with 64 MB it stays at 111 and 115 MB,
 * copying a fifth of the bytes, for a third more time.) libpcap still
 * reads the file header (link type, snapshot length, the filter), and all
 * the rest: pcapng, older versions, and the link types whose
 * pseudo-headers it rewrites as it reads. The checks and messages below
 * are libpcap's (sf-pcap.c). A capture truncated by another process while
 * mapped is SIGBUS, as for any reader that maps files. */
#define PCAP_HDR_LEN 24
#define PCAP_REC_LEN 16
#define MAP_WINDOW (4u << 20)
#define MAP_BUDGET (64u << 20)
#define READ_BLOCK (1u << 20)
/* libpcap's largest packet for the link types read here (MAXIMUM_SNAPLEN;
 * D-Bus, EBHSCR and USBPcap allow more and are left to it). */
#define PCAP_MAX_CAPLEN 262144u

struct pcap_in {
	int fd;
	int mapped;             /* a regular file: windows of it are mapped */
	int swap;               /* the file's byte order is not ours */
	int nano;
	uint32_t snapshot;      /* libpcap's, from the file header */
	uint64_t file_size;     /* mapped: as last looked up */
	const uint8_t *at;      /* the bytes at hand: the window or the buffer */
	size_t len, pos;        /* how many; where the next record starts */
	uint64_t at_off;        /* the file offset of at[0] */
	struct windows win;     /* mapped: the newest holds at */
	uint8_t *buf;           /* read: the buffer */
	size_t cap;
	int eof;                /* read: the input ended */
	char why[160];          /* the damage or the read error */
};

/* Whether libpcap would change the header or the bytes of this link
 * type's packets, or allows them larger than PCAP_MAX_CAPLEN. */
static int libpcap_rewrites(uint32_t linktype, int swapped)
{
	switch (linktype) {
	case 220: /* USB_LINUX_MMAPPED: wire lengths fixed up */
	case 231: /* DBUS */
	case 249: /* USBPCAP */
	case 279: /* EBHSCR */
		return 1;
	case 113: /* LINUX_SLL */
	case 117: /* PFLOG */
	case 189: /* USB_LINUX */
	case 239: /* NFLOG */
	case 276: /* LINUX_SLL2: pseudo-headers in the writer's byte order */
		return swapped;
	default:
		return 0;
	}
}

static int host_big_endian(void)
{
	const uint16_t one = 1;
	return *(const uint8_t *)&one == 0;
}

/* Whether the records of a sniffed capture are read here. */
static int reads_here(const struct sniff *sn)
{
	return sn->classic && !sn->modified && sn->len >= PCAP_HDR_LEN && sn->major == 2 &&
	       sn->minor == 4 && !libpcap_rewrites(sn->linktype, sn->big != host_big_endian());
}

/* Maps the window that holds n bytes from the cursor, or as many as the
 * file has (looked up again: a capture being written grows). */
static int in_map(struct pcap_in *in, size_t n)
{
	uint64_t cur = in->at_off + in->pos;
	struct stat st;
	if (cur + n > in->file_size && fstat(in->fd, &st) == 0 && (uint64_t)st.st_size > in->file_size)
		in->file_size = (uint64_t)st.st_size;
	uint64_t end = cur + n < in->file_size ? cur + n : in->file_size;
	if (end <= in->at_off + in->len)
		return 0; /* no more to be had */
	uint64_t start = cur & ~(uint64_t)(sysconf(_SC_PAGESIZE) - 1);
	uint64_t stop = start + MAP_WINDOW > end ? start + MAP_WINDOW : end;
	if (stop > in->file_size)
		stop = in->file_size;
	void *map = mmap(NULL, (size_t)(stop - start), PROT_READ, MAP_PRIVATE | MAP_POPULATE,
			 in->fd, (off_t)start);
	if (map == MAP_FAILED)
		return -1;
	struct window *w = xcalloc(1, sizeof *w);
	w->map = map;
	w->len = (size_t)(stop - start);
	w->off = start;
	if (in->win.newest)
		in->win.newest->next = w;
	else
		in->win.oldest = w;
	in->win.newest = w;
	in->at = w->map;
	in->at_off = start;
	in->len = w->len;
	in->pos = (size_t)(cur - start);
	return 0;
}

/* Unmaps the windows no packet points into any more, bar the newest. */
static void in_unmap_unused(struct pcap_in *in)
{
	struct window **pp = &in->win.oldest;
	while (*pp != in->win.newest) {
		struct window *w = *pp;
		if (w->refs) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		munmap(w->map, w->len);
		free(w);
	}
}

/* Reads until n bytes from the cursor are at hand or the input ends. */
static int in_read(struct pcap_in *in, size_t n)
{
	if (in->pos > 0) {
		memmove(in->buf, in->buf + in->pos, in->len - in->pos);
		in->at_off += in->pos;
		in->len -= in->pos;
		in->pos = 0;
	}
	if (n > in->cap) {
		in->cap = n;
		in->buf = xrealloc(in->buf, in->cap);
	}
	in->at = in->buf;
	while (in->len < n && !in->eof) {
		ssize_t k = read(in->fd, in->buf + in->len, in->cap - in->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			in->eof = 1;
		in->len += (size_t)k;
	}
	return 0;
}

/* How many of the n bytes from the cursor are at hand (n unless the input
 * ends first), or -1 with in->why on a read error. */
static ssize_t in_have(struct pcap_in *in, size_t n)
{
	if (in->len - in->pos < n) {
		int rc = in->mapped ? in_map(in, n) : in_read(in, n);
		if (rc < 0) {
			snprintf(in->why, sizeof in->why, "error reading dump file: %s", strerror(errno));
			return -1;
		}
	}
	size_t have = in->len - in->pos;
	return (ssize_t)(have < n ? have : n);
}

static uint32_t in_u32(const struct pcap_in *in, const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return in->swap ? __builtin_bswap32(v) : v;
}

/* The next record: 1 with *raw (its bytes valid until the next call), 0 at
 * the end, -1 on damage or a read error (in->why). */
static int in_next(struct pcap_in *in, struct raw *raw)
{
	ssize_t got = in_have(in, PCAP_REC_LEN);
	if (got < 0)
		return -1;
	if (got < PCAP_REC_LEN) {
		if (got == 0)
			return 0;
		snprintf(in->why, sizeof in->why,
			 "truncated dump file; tried to read %u header bytes, only got %zd",
			 PCAP_REC_LEN, got);
		return -1;
	}
	const uint8_t *h = in->at + in->pos;
	uint32_t sec = in_u32(in, h), frac = in_u32(in, h + 4);
	uint32_t caplen = in_u32(in, h + 8), wirelen = in_u32(in, h + 12);
	if (caplen > PCAP_MAX_CAPLEN) {
		if (caplen > in->snapshot)
			snprintf(in->why, sizeof in->why,
				 "invalid packet capture length %" PRIu32 ", bigger than snaplen of %" PRIu32,
				 caplen, in->snapshot);
		else
			snprintf(in->why, sizeof in->why,
				 "invalid packet capture length %" PRIu32 ", bigger than maximum of %u",
				 caplen, PCAP_MAX_CAPLEN);
		return -1;
	}
	got = in_have(in, PCAP_REC_LEN + (size_t)caplen);
	if (got < 0)
		return -1;
	if ((size_t)got < PCAP_REC_LEN + (size_t)caplen) {
		snprintf(in->why, sizeof in->why,
			 "truncated dump file; tried to read %" PRIu32 " captured bytes, only got %zd",
			 caplen, got - PCAP_REC_LEN);
		return -1;
	}
	/* The seconds are unsigned: pcap files run to 2106. */
	raw->ts_ns = (uint64_t)sec * NS_PER_S + (uint64_t)frac * (in->nano ? 1 : 1000);
	/* libpcap cuts a packet longer than the snapshot length to it */
	raw->caplen = caplen < in->snapshot ? caplen : in->snapshot;
	raw->wirelen = wirelen;
	raw->data = in->at + in->pos + PCAP_REC_LEN;
	in->pos += PCAP_REC_LEN + (size_t)caplen;
	/* the next record's header and first bytes, while this one is handled */
	__builtin_prefetch(in->at + in->pos);
	__builtin_prefetch(in->at + in->pos + 64);
	return 1;
}

/* Sets up reading f's records after the header sniffed from it; start is
 * the header's file offset (regular files). A pipe's bytes after the
 * header that the sniffing read come first. */
static void in_open(struct pcap_in *in, FILE *f, int regular, uint64_t start,
		    const struct sniff *sn, uint32_t snapshot)
{
	memset(in, 0, sizeof *in);
	in->fd = fileno(f);
	in->mapped = regular;
	in->swap = sn->big != host_big_endian();
	in->nano = sn->tsprec == 9;
	in->snapshot = snapshot;
	in->at_off = start + PCAP_HDR_LEN;
	if (regular) {
		struct stat st;
		if (fstat(in->fd, &st) == 0)
			in->file_size = (uint64_t)st.st_size;
		return;
	}
	in->cap = READ_BLOCK;
	in->buf = xmalloc(in->cap);
	in->at = in->buf;
	in->len = sn->len - PCAP_HDR_LEN;
	memcpy(in->buf, sn->buf + PCAP_HDR_LEN, in->len);
}

static void in_close(struct pcap_in *in)
{
	while (in->win.oldest) {
		struct window *w = in->win.oldest;
		in->win.oldest = w->next;
		munmap(w->map, w->len);
		free(w);
	}
	free(in->buf);
	memset(in, 0, sizeof *in);
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

/* An open capture: libpcap's handle, and our reader when the records are
 * read here (the handle then only knows the file header). */
struct capture {
	pcap_t *p;
	int here;
	struct pcap_in in;
	FILE *f;                /* here: the file (closed with the capture) */
	uint8_t header[PCAP_HDR_LEN]; /* here: what libpcap's handle was opened on */
};

/* Whether a stream may still be made unbuffered: before its first read.
 * A pipe then gives the sniffer exactly the bytes it asks for, and its
 * records can be read from the descriptor. */
static int first_use(FILE *f)
{
	static int stdin_used;
	if (f != stdin)
		return 1;
	if (stdin_used)
		return 0;
	stdin_used = 1;
	return 1;
}

/* libpcap's handle on the sniffed file header alone. */
static pcap_t *open_header(struct capture *c, const struct sniff *sn, char *eb)
{
	memcpy(c->header, sn->buf, PCAP_HDR_LEN);
	FILE *hf = fmemopen(c->header, PCAP_HDR_LEN, "rb");
	if (!hf) {
		snprintf(eb, PCAP_ERRBUF_SIZE, "fmemopen: %s", strerror(errno));
		return NULL;
	}
	pcap_t *p = pcap_fopen_offline_with_tstamp_precision(hf, PCAP_TSTAMP_PRECISION_NANO, eb);
	if (!p)
		fclose(hf);
	return p;
}

/* Opens path ("-": stdin). Returns 0, or the exit status after a message. */
static int open_capture(struct run *r, const char *path, struct capture *c, struct sniff *sn)
{
	int is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	memset(c, 0, sizeof *c);
	if (!f) {
		warn("%s", path);
		return EX_NOINPUT;
	}
	struct stat st;
	int seekable = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
	off_t start = seekable ? ftello(f) : 0;
	if (start < 0)
		seekable = 0;
	int unbuffered = !seekable && first_use(f) && setvbuf(f, NULL, _IONBF, 0) == 0;
	sniff(f, sn);
	if (sn->error || sn->len == 0) {
		int status;
		if (sn->error) {
			errno = sn->error;
			warn("%s", r->src.msgname);
			status = EX_NOINPUT;
		} else {
			warnx("%s: empty file, not a capture", r->src.msgname);
			status = EX_DATAERR;
		}
		free(sn->buf);
		if (!is_stdin)
			fclose(f);
		return status;
	}
	char eb[PCAP_ERRBUF_SIZE];
	if (reads_here(sn) && (seekable || unbuffered)) {
		c->p = open_header(c, sn, eb);
		if (c->p) {
			c->here = 1;
			c->f = f;
			in_open(&c->in, f, seekable, (uint64_t)start, sn, (uint32_t)pcap_snapshot(c->p));
			free(sn->buf);
			sn->buf = NULL;
			return 0;
		}
	} else {
		FILE *pf = replay_open(f, sn, seekable, start);
		c->p = pcap_fopen_offline_with_tstamp_precision(pf, PCAP_TSTAMP_PRECISION_NANO, eb);
		if (c->p)
			return 0;
		f = pf;
	}
	warnx("%s: %s", r->src.msgname, eb);
	free(sn->buf);
	sn->buf = NULL;
	if (f != stdin)
		fclose(f);
	return EX_DATAERR;
}

static void close_capture(struct capture *c)
{
	pcap_close(c->p);
	if (!c->here)
		return;
	if (c->f == stdin && c->in.mapped) /* what was read is gone, as with libpcap */
		fseeko(stdin, (off_t)(c->in.at_off + c->in.pos), SEEK_SET);
	in_close(&c->in);
	if (c->f != stdin)
		fclose(c->f);
}

/* A time stamp as libpcap gives it. It reads a pcap file's unsigned 32-bit
 * seconds and fraction as signed (negative from 2038 on): the bits are
 * taken back as they were in the file. pcapng's 64-bit ones are as they
 * are. */
static uint64_t libpcap_ts_ns(const struct source *s, const struct pcap_pkthdr *h)
{
	if (s->classic) {
		/* opened for nanoseconds: libpcap multiplied a microsecond field */
		uint64_t unit = s->tsprec == 9 ? 1 : 1000;
		uint32_t frac = (uint32_t)(int64_t)(h->ts.tv_usec / (int64_t)unit);
		return (uint64_t)(uint32_t)h->ts.tv_sec * NS_PER_S + (uint64_t)frac * unit;
	}
	int64_t sec = h->ts.tv_sec < 0 ? 0 : (int64_t)h->ts.tv_sec;
	return (uint64_t)sec * NS_PER_S + (uint64_t)h->ts.tv_usec * s->ts_scale;
}

/* The packets of a capture libpcap reads. */
static int read_libpcap(struct run *r, pcap_t *p, const struct bpf_program *prog)
{
	struct pcap_pkthdr *h;
	const u_char *bytes;
	while (!count_reached(r)) {
		int rc = pcap_next_ex(p, &h, &bytes);
		if (rc == PCAP_ERROR_BREAK)
			return 0;
		if (rc != 1) {
			warnx("%s: packet %" PRIu64 ": %s", r->src.msgname, r->src.index + 1,
			      pcap_geterr(p));
			return EX_DATAERR;
		}
		struct raw raw = {libpcap_ts_ns(&r->src, h), h->caplen, h->len, bytes};
		take_packet(r, prog, &raw);
	}
	return 0;
}

/* Called when the reader maps a new window: keeps the older windows within
 * MAP_BUDGET of it, the flows that point further back getting copies of
 * those packets, and unmaps the windows no flow points into any more,
 * once the output that may point into them is written. */
static void settle_windows(struct run *r, struct pcap_in *in)
{
	struct window *w, *newest = in->win.newest;
	for (w = in->win.oldest; w != newest && w->off + w->len + MAP_BUDGET < newest->off;
	     w = w->next) {
		struct flow *f = r->mapped.head, *next;
		for (; f && w->refs; f = next) {
			next = f->link[LINK_MAPPED].next;
			flow_copy_out(r, f, w);
		}
	}
	for (w = in->win.oldest; w != newest; w = w->next)
		if (w->refs == 0) {
			out_drain(&r->out);
			in_unmap_unused(in);
			break;
		}
}

/* The packets of a capture read here. */
static int read_records(struct run *r, struct pcap_in *in, const struct bpf_program *prog)
{
	struct raw raw;
	const struct window *seen = NULL;
	int status = 0;
	r->win = in->mapped ? &in->win : NULL;
	while (!count_reached(r)) {
		int rc = in_next(in, &raw);
		if (rc == 0)
			break;
		if (rc < 0) {
			warnx("%s: packet %" PRIu64 ": %s", r->src.msgname, r->src.index + 1, in->why);
			status = EX_DATAERR;
			break;
		}
		if (r->win && in->win.newest != seen) {
			seen = in->win.newest;
			settle_windows(r, in);
		}
		take_packet(r, prog, &raw);
	}
	flush_all(r); /* while the flows' windows are known */
	r->win = NULL;
	return status;
}

/* Reads one capture file into flows. Returns 0 or an exit status; either
 * way every packet read before a problem is written. */
static int read_file(struct run *r, const char *path)
{
	struct sniff sn;
	struct capture c;
	source_begin(r, path, strcmp(path, "-") == 0 ? "<stdin>" : path);
	int status = open_capture(r, path, &c, &sn);
	if (status)
		return status;
	r->src.linktype = sn.has_linktype ? sn.linktype : linktype_of_dlt(pcap_datalink(c.p));
	r->src.snaplen = (uint32_t)pcap_snapshot(c.p);
	r->src.tsprec = sn.known ? sn.tsprec : 6;
	r->src.ts_scale = 1; /* opened for nanoseconds */
	r->src.classic = sn.classic;

	struct bpf_program prog;
	status = compile_filter(r, c.p, &prog);
	if (status) {
		close_capture(&c);
		return status;
	}
	const struct bpf_program *filter = r->opt.filter ? &prog : NULL;
	uint64_t flows_before = r->flows;
	if (r->labels)
		labels_begin(r->labels, path);
	status = c.here ? read_records(r, &c.in, filter) : read_libpcap(r, c.p, filter);
	flush_all(r);
	out_drain(&r->out); /* the flows written may point into the file */
	if (r->labels)
		labels_end(r->labels, r->src.msgname, r->flows - flows_before);
	if (filter)
		pcap_freecode(&prog);
	close_capture(&c);
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
	if (r->labels)
		labels_begin(r->labels, r->opt.iface);
	live_handle = p;
	catch_signals();
	struct pcap_pkthdr *h;
	const u_char *bytes;
	while (!stop_requested && !count_reached(r)) {
		int rc = pcap_next_ex(p, &h, &bytes);
		if (rc == 1) {
			struct raw raw = {libpcap_ts_ns(&r->src, h), h->caplen, h->len, bytes};
			take_packet(r, NULL, &raw); /* the kernel filtered */
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
	if (r->labels)
		labels_end(r->labels, r->src.msgname, r->flows);
	pcap_close(p);
	return status;
}

/* ------------------------------------------------------------ main */

static enum label_format label_format(const char *name)
{
	if (strcmp(name, "tsv") == 0)
		return LABELS_TSV;
	if (strcmp(name, "zeek") == 0)
		return LABELS_ZEEK;
	if (strcmp(name, "auto") != 0)
		cli_usage_error(usage, "--labels-format: tsv, zeek or auto, not \"%s\"", name);
	return LABELS_AUTO;
}

/* --label-filter COLUMN=PREFIX; the filters live as long as the run. */
static void add_label_filter(struct label_options *lo, char *arg)
{
	static struct label_filter *filters;
	static size_t cap;
	char *eq = strchr(arg, '=');
	if (!eq || eq == arg)
		cli_usage_error(usage, "--label-filter takes COLUMN=PREFIX, not \"%s\"", arg);
	*eq = '\0';
	grow((void **)&filters, &cap, lo->n_filters + 1, sizeof *filters);
	filters[lo->n_filters].column = arg;
	filters[lo->n_filters].prefix = eq + 1;
	lo->filters = filters;
	lo->n_filters++;
}

/* Whether a capture comes from standard input: none named, or "-". */
static int reads_stdin(int argc, char **argv, const struct options *o)
{
	if (o->iface)
		return 0;
	if (optind == argc)
		return 1;
	for (int i = optind; i < argc; i++)
		if (strcmp(argv[i], "-") == 0)
			return 1;
	return 0;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_FORCE = 256, OPT_LABELS, OPT_LABELS_FORMAT, OPT_LABEL_COLUMN, OPT_LABEL_FILTER,
	       OPT_LABEL_KEY };
	static const struct option longopts[] = {
		{"all", no_argument, NULL, 'a'},
		{"count", required_argument, NULL, 'c'},
		{"filter", required_argument, NULL, 'f'},
		{"force", no_argument, NULL, OPT_FORCE},
		{"help", no_argument, NULL, 'h'},
		{"interface", required_argument, NULL, 'i'},
		{"idle-timeout", required_argument, NULL, 't'},
		{"label", required_argument, NULL, 'l'},
		{"label-column", required_argument, NULL, OPT_LABEL_COLUMN},
		{"label-filter", required_argument, NULL, OPT_LABEL_FILTER},
		{"label-key", required_argument, NULL, OPT_LABEL_KEY},
		{"labels", required_argument, NULL, OPT_LABELS},
		{"labels-format", required_argument, NULL, OPT_LABELS_FORMAT},
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
		case OPT_LABELS:
			o->labels.path = optarg;
			break;
		case OPT_LABELS_FORMAT:
			o->labels.format = label_format(optarg);
			break;
		case OPT_LABEL_COLUMN:
			o->labels.column = optarg;
			break;
		case OPT_LABEL_FILTER:
			add_label_filter(&o->labels, optarg);
			break;
		case OPT_LABEL_KEY:
			o->labels.key = optarg;
			break;
		default:
			cli_usage_error(usage, "unknown option");
		}
	}
	if (o->iface && optind < argc)
		cli_usage_error(usage, "-i and capture files exclude each other");
	if (!o->labels.path && (o->labels.format || o->labels.column || o->labels.key ||
				o->labels.n_filters))
		cli_usage_error(usage, "the --label-* options need --labels");
	if (o->labels.path && strcmp(o->labels.path, "-") == 0 && reads_stdin(argc, argv, o))
		cli_usage_error(usage, "--labels - and a capture from standard input");
	o->labels.quiet = o->quiet;
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
	if (r.opt.labels.path)
		r.labels = labels_load(&r.opt.labels); /* before any output: a bad table exits */
	atomic_open(&out, r.opt.output ? r.opt.output : "-");
	/* written past stdio, with writev: the FILE only names the descriptor */
	out_init(&r.out, fileno(out.f), r.opt.output ? r.opt.output : "<stdout>", &r.pool);
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
	out_drain(&r.out);
	if (r.out.failed) {
		warnx("%s: %s", r.out.name, strerror(r.out.failed));
		atomic_abort(&out);
		return EX_IOERR;
	}
	if (status && r.flows == 0)
		atomic_abort(&out);
	else
		atomic_commit(&out);
	if (r.opt.verbose)
		summary(&r);
	if (r.labels)
		labels_total(r.labels);
	free(r.bucket);
	flow_free_list(&r);
	labels_free(r.labels);
	free((void *)r.opt.labels.filters);
	return status;
}
