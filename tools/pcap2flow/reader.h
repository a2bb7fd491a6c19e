/* reader.h: pcap2flow's captures in. Classic pcap files, the common kind,
 * are read by reader.c itself: a regular file mapped a window at a time
 * (its packets are not copied: flows point into the windows), a pipe in
 * large blocks; pcapng files whose interfaces have several link types,
 * which libpcap refuses, by pcapng.c (reader-private.h is what the two
 * share). libpcap reads the rest (pcapng, older versions, link types it
 * rewrites) and live interfaces. */
#ifndef PCAP2FLOW_READER_H
#define PCAP2FLOW_READER_H

#include <pcap/pcap.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NS_PER_S 1000000000ull
#define PCAP_HDR_LEN 24
/* A live capture wakes up this often while the wire is quiet. */
#define LIVE_TIMEOUT_MS 100

/* A packet as a reader hands it on: its bytes stay put until the next one
 * is read, or, in a window, while the window is mapped. */
struct raw {
	uint64_t ts_ns;
	uint32_t caplen, wirelen;
	uint32_t linktype;      /* the LINKTYPE of the packet's interface */
	const uint8_t *data;
};

/* A part of a regular capture file mapped for reading. The packets read
 * from it stay there, pointed to by their flows, which count them in refs;
 * it is unmapped (capture_unmap_unused) once refs is 0. Windows overlap by
 * the record that did not fit in the older one: a packet's bytes are in
 * the window it was read from. */
struct window {
	uint8_t *map;
	size_t len;
	uint64_t off;           /* the file offset of map[0] */
	uint64_t refs;          /* packets of open flows in it */
	struct window *next;    /* the next newer one */
};

struct windows {
	struct window *oldest, *newest; /* newest is being read */
};

static inline int in_window(const struct window *w, const uint8_t *p)
{
	uintptr_t a = (uintptr_t)p, start = (uintptr_t)w->map;
	return a >= start && a - start < w->len;
}

/* The classic pcap reader's state (reader.c). */
struct pcap_in {
	int fd;
	int mapped;             /* a regular file: windows of it are mapped */
	int swap;               /* the file's byte order is not ours */
	int nano;
	uint32_t snapshot;      /* libpcap's, from the file header */
	uint64_t file_size;     /* mapped: as last looked up */
	const uint8_t *at;      /* the bytes at hand: the window or the buffer */
	size_t len, pos;        /* how many; where the next record starts */
	size_t prefetched;      /* at[] is asked for up to here */
	uint64_t at_off;        /* the file offset of at[0] */
	struct windows win;     /* mapped: the newest holds at */
	uint8_t *buf;           /* read: the buffer */
	size_t cap;
	int eof;                /* read: the input ended */
	char why[160];          /* the damage or the read error */
};

/* One interface of a pcapng section (the pcapng reader's). */
struct ng_iface {
	uint32_t linktype, snaplen;
	uint64_t units;         /* time stamp units per second (if_tsresol) */
	int64_t offset_s;       /* if_tsoffset: seconds added to its time stamps */
	uint8_t tsprec;         /* 6 or 9: what the flow records say */
};

/* The pcapng reader's state (pcapng.c): for files whose interfaces have
 * several link types, which libpcap does not read. */
struct ng_in {
	FILE *f;
	int big;                /* the section's byte order */
	struct ng_iface *ifaces; /* the section's, by interface id */
	size_t n_ifaces, ifaces_cap;
	uint8_t *block;         /* the block being read */
	size_t block_len, block_cap;
	uint64_t off;           /* the file offset of the next block */
	char why[160];
};

/* What the flow records of one link type say about the capture: a pcapng
 * file of several link types has one of these per link type (the largest
 * snapshot length, the finest precision of its interfaces). */
struct capture_lt {
	uint32_t linktype, snaplen;
	uint8_t tsprec;
};

/* An open capture: libpcap's handle, and our reader when the records are
 * read here (the handle then only knows the file header, enough for
 * compiling a filter). A pcapng file of several link types has no handle:
 * the pcapng reader reads it. */
struct capture {
	pcap_t *p;
	const char *msgname;    /* for messages */
	/* what the flow records say about the capture */
	uint32_t linktype, snaplen;
	uint8_t tsprec;
	/* how libpcap's time stamps are read */
	int classic;            /* a pcap file: its seconds are unsigned 32-bit */
	uint32_t ts_scale;      /* pcap_pkthdr.ts.tv_usec units to ns */
	int live;
	int pollfd;             /* live: the descriptor to wait on, or -1 */
	int here;               /* the records are read by pcap_in */
	struct pcap_in in;
	FILE *f;                /* here: the file (closed with the capture) */
	uint8_t header[PCAP_HDR_LEN]; /* here: what libpcap's handle was opened on */
	int ng;                 /* read by the pcapng reader (several link types) */
	struct ng_in ng_in;
	struct capture_lt *lts; /* ng: the link types met so far */
	size_t n_lts, lts_cap;
	uint64_t ts_clamped;    /* ng: time stamps past 2554, kept as UINT64_MAX ns */
	const char *why;        /* after CAP_ERROR: what went wrong */
};

enum { CAP_ERROR = -1, CAP_END = 0, CAP_PACKET = 1, CAP_QUIET = 2 };

/* Opens path ("-": stdin). Returns 0, or the exit status after a message. */
int capture_open(struct capture *c, const char *path, const char *msgname);
/* Opens interface iface for a live capture (nonblocking: see capture_next).
 * Returns 0, or the exit status after a message. */
int capture_open_live(struct capture *c, const char *iface, int snaplen, int quiet);
/* The next packet: CAP_PACKET with *raw; CAP_END; CAP_QUIET (live: nothing
 * came within LIVE_TIMEOUT_MS); CAP_ERROR with c->why. */
int capture_next(struct capture *c, struct raw *raw);
/* What the flow records of link type lt say: the capture's own link
 * type, snapshot length and precision, or, in a pcapng file of several
 * link types, those of its interfaces of type lt. */
struct capture_lt capture_lt_of(const struct capture *c, uint32_t lt);
/* The DLT_ (platform) value of a LINKTYPE_, for pcap_open_dead. */
int dlt_of_linktype(uint32_t linktype);
/* A mapped file's windows, or NULL. */
struct windows *capture_windows(struct capture *c);
/* Unmaps the windows no packet points into any more, bar the newest. */
void capture_unmap_unused(struct capture *c);
void capture_close(struct capture *c);

#endif
