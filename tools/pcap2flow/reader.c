/* reader.c: pcap2flow's captures in (see reader.h): the sniffing of a file's
 * header for what libpcap does not tell, the classic pcap reader of mapped
 * files and pipes, libpcap for the rest, and live interfaces; pcapng files
 * of several link types go to pcapng.c. */
#define _GNU_SOURCE /* fopencookie: replays the sniffed header of a pipe */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "packet.h"
#include "reader-private.h"

/* pcapng headers worth sniffing end long before this. */
#define SNIFF_MAX (1u << 20)

/* ------------------------------------------------------------ file headers */

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

/* An interface description block met while sniffing: the first gives the
 * capture's link type; another of a different one makes it mixed. */
static void sniff_idb(struct sniff *s, const uint8_t *body, size_t len, int big)
{
	if (len < 8)
		return;
	struct ng_iface ifc;
	pcapng_parse_idb(body, len, big, &ifc);
	if (!s->has_linktype) {
		s->linktype = ifc.linktype;
		s->has_linktype = 1;
	} else if (ifc.linktype != s->linktype) {
		s->mixed = 1;
	}
	if (ifc.tsprec == 9)
		s->tsprec = 9;
}

/* pcapng: the section header, then the blocks before the first packet, for
 * the interfaces' link type and time resolution (default microseconds). */
static void sniff_pcapng(FILE *f, struct sniff *s)
{
	const uint32_t shb = NG_SHB, idb = NG_IDB, bom = NG_BOM;
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

int dlt_of_linktype(uint32_t linktype)
{
	switch (linktype) {
	case 100:
		return DLT_ATM_RFC1483;
	case LT_RAW:
		return DLT_RAW;
	case 102:
		return DLT_SLIP_BSDOS;
	case 103:
		return DLT_PPP_BSDOS;
	case 106:
		return DLT_ATM_CLIP;
	default:
		return (int)linktype;
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
 * it (the flow table keeps the mapped part of the file within a budget:
 * flowtable.c). libpcap still reads the file header (link type, snapshot
 * length, the filter), and all the rest: pcapng, older versions, and the
 * link types whose pseudo-headers it rewrites as it reads. The checks and
 * messages below are libpcap's (sf-pcap.c). A capture truncated by another
 * process while mapped is SIGBUS, as for any reader that maps files. */
#define PCAP_REC_LEN 16
#define MAP_WINDOW (8u << 20)
#define READ_BLOCK (1u << 20)
#define PREFETCH_AHEAD (4u << 10)
/* libpcap's largest packet for the link types read here (MAXIMUM_SNAPLEN;
 * D-Bus, EBHSCR and USBPcap allow more and are left to it). */
#define PCAP_MAX_CAPLEN 262144u

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
	in->prefetched = 0;
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
		in->prefetched = 0;
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
static ssize_t in_more(struct pcap_in *in, size_t n)
{
	int rc = in->mapped ? in_map(in, n) : in_read(in, n);
	if (rc < 0) {
		snprintf(in->why, sizeof in->why, "error reading dump file: %s", strerror(errno));
		return -1;
	}
	size_t have = in->len - in->pos;
	return (ssize_t)(have < n ? have : n);
}

static inline ssize_t in_have(struct pcap_in *in, size_t n)
{
	if (in->len - in->pos >= n)
		return (ssize_t)n;
	return in_more(in, n);
}

static uint32_t in_u32(const struct pcap_in *in, const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return in->swap ? __builtin_bswap32(v) : v;
}

/* Asks for the bytes PREFETCH_AHEAD beyond the cursor. Each record's
 * header says where the next one starts, so the reader would otherwise
 * wait for memory once a record (the mapped file is not in the cache);
 * the addresses ahead are known without reading them. */
static void prefetch_ahead(struct pcap_in *in)
{
	if (in->prefetched < in->pos)
		in->prefetched = in->pos;
	/* in steps of 512 bytes, up to 448 past the end: a prefetch of
	 * an address not mapped is dropped, and one past in->len is only
	 * wasted */
	for (; in->prefetched < in->pos + PREFETCH_AHEAD && in->prefetched < in->len;
	     in->prefetched += 512) {
		const uint8_t *p = in->at + in->prefetched;
		__builtin_prefetch(p);
		__builtin_prefetch(p + 64);
		__builtin_prefetch(p + 128);
		__builtin_prefetch(p + 192);
		__builtin_prefetch(p + 256);
		__builtin_prefetch(p + 320);
		__builtin_prefetch(p + 384);
		__builtin_prefetch(p + 448);
	}
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
	prefetch_ahead(in);
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

/* ------------------------------------------------------------ captures */

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

/* Opens the handle (and our reader, when the records are read here). */
static int open_handle(struct capture *c, const char *path, struct sniff *sn)
{
	int is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
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
			warn("%s", c->msgname);
			status = EX_NOINPUT;
		} else {
			warnx("%s: empty file, not a capture", c->msgname);
			status = EX_DATAERR;
		}
		free(sn->buf);
		if (!is_stdin)
			fclose(f);
		return status;
	}
	char eb[PCAP_ERRBUF_SIZE];
	if (sn->known && !sn->classic &&
	    (sn->mixed || (seekable && pcapng_scan_mixed(fileno(f), (uint64_t)start)))) {
		pcapng_open(c, replay_open(f, sn, seekable, start), sn);
		return 0;
	}
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
	warnx("%s: %s", c->msgname, eb);
	free(sn->buf);
	sn->buf = NULL;
	if (f != stdin)
		fclose(f);
	return EX_DATAERR;
}

int capture_open(struct capture *c, const char *path, const char *msgname)
{
	struct sniff sn;
	memset(c, 0, sizeof *c);
	c->msgname = msgname;
	c->pollfd = -1;
	int status = open_handle(c, path, &sn);
	if (status)
		return status;
	if (c->ng) { /* the link types, snapshot lengths and precisions come with the interfaces */
		c->tsprec = 6;
		return 0;
	}
	c->linktype = sn.has_linktype ? sn.linktype : linktype_of_dlt(pcap_datalink(c->p));
	c->snaplen = (uint32_t)pcap_snapshot(c->p);
	c->tsprec = sn.known ? sn.tsprec : 6;
	c->ts_scale = 1; /* opened for nanoseconds */
	c->classic = sn.classic;
	return 0;
}

void capture_close(struct capture *c)
{
	if (c->ng) {
		pcapng_close(c);
		return;
	}
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
static uint64_t libpcap_ts_ns(const struct capture *c, const struct pcap_pkthdr *h)
{
	if (c->classic) {
		/* opened for nanoseconds: libpcap multiplied a microsecond field */
		uint64_t unit = c->tsprec == 9 ? 1 : 1000;
		uint32_t frac = (uint32_t)(int64_t)(h->ts.tv_usec / (int64_t)unit);
		return (uint64_t)(uint32_t)h->ts.tv_sec * NS_PER_S + (uint64_t)frac * unit;
	}
	int64_t sec = h->ts.tv_sec < 0 ? 0 : (int64_t)h->ts.tv_sec;
	return (uint64_t)sec * NS_PER_S + (uint64_t)h->ts.tv_usec * c->ts_scale;
}

int capture_next(struct capture *c, struct raw *raw)
{
	if (c->ng) {
		int rc = pcapng_next(&c->ng_in, c, raw);
		if (rc < 0)
			c->why = c->ng_in.why;
		return rc < 0 ? CAP_ERROR : rc ? CAP_PACKET : CAP_END;
	}
	raw->linktype = c->linktype;
	if (c->here) {
		int rc = in_next(&c->in, raw);
		if (rc < 0)
			c->why = c->in.why;
		return rc < 0 ? CAP_ERROR : rc ? CAP_PACKET : CAP_END;
	}
	struct pcap_pkthdr *h;
	const u_char *bytes;
	int rc = pcap_next_ex(c->p, &h, &bytes);
	if (rc == 1) {
		raw->ts_ns = libpcap_ts_ns(c, h);
		raw->caplen = h->caplen;
		raw->wirelen = h->len;
		raw->data = bytes;
		return CAP_PACKET;
	}
	if (rc == 0 && c->live) {
		struct pollfd pfd = {.fd = c->pollfd, .events = POLLIN};
		poll(c->pollfd >= 0 ? &pfd : NULL, c->pollfd >= 0, LIVE_TIMEOUT_MS);
		return CAP_QUIET;
	}
	if (rc == PCAP_ERROR_BREAK)
		return CAP_END;
	c->why = pcap_geterr(c->p);
	return CAP_ERROR;
}

struct capture_lt capture_lt_of(const struct capture *c, uint32_t lt)
{
	for (size_t i = 0; i < c->n_lts; i++)
		if (c->lts[i].linktype == lt)
			return c->lts[i];
	return (struct capture_lt){ lt, c->snaplen, c->tsprec };
}

struct windows *capture_windows(struct capture *c)
{
	return c->here && c->in.mapped ? &c->in.win : NULL;
}

void capture_unmap_unused(struct capture *c)
{
	in_unmap_unused(&c->in);
}

/* ------------------------------------------------------------ live capture */

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

int capture_open_live(struct capture *c, const char *iface, int snaplen, int quiet)
{
	char eb[PCAP_ERRBUF_SIZE];
	memset(c, 0, sizeof *c);
	c->msgname = iface;
	c->live = 1;
	pcap_t *p = pcap_create(iface, eb);
	if (!p) {
		warnx("%s: %s", iface, eb);
		return EX_UNAVAILABLE;
	}
	pcap_set_snaplen(p, snaplen);
	pcap_set_immediate_mode(p, 1);
	/* flows go idle while the wire is quiet: wake up now and then */
	pcap_set_timeout(p, LIVE_TIMEOUT_MS);
	pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
	int rc = pcap_activate(p);
	if (rc < 0) {
		const char *why = rc == PCAP_ERROR ? pcap_geterr(p) : pcap_statustostr(rc);
		warnx("%s: %s", iface, why);
		pcap_close(p);
		return activate_status(rc);
	}
	if (rc > 0 && !quiet)
		warnx("%s: %s", iface, rc == PCAP_WARNING ? pcap_geterr(p) : pcap_statustostr(rc));
	/* libpcap's own read timeout does not reliably return on a quiet
	 * wire (Linux retries the poll itself): read without blocking and
	 * wait in capture_next, so the idle timeout runs on while nothing
	 * comes. */
	if (pcap_setnonblock(p, 1, eb) < 0) {
		warnx("%s: %s", iface, eb);
		pcap_close(p);
		return EX_UNAVAILABLE;
	}
	c->p = p;
	c->pollfd = pcap_get_selectable_fd(p);
	int nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
	c->linktype = linktype_of_dlt(pcap_datalink(p));
	c->snaplen = (uint32_t)pcap_snapshot(p);
	c->tsprec = nano ? 9 : 6;
	c->ts_scale = nano ? 1 : 1000;
	return 0;
}
