/* pcapcmp.c: compares two captures packet by packet (link type, timestamps at
 * the coarser of the two files' precisions, caplen, wire length, bytes), for
 * the round-trip tests: is what tok2pcap wrote the capture we started from?
 * Reads pcap and pcapng through libpcap; "-" is stdin. With -c it only counts
 * the packets libpcap can read, telling a clean file from a damaged one. */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h" /* TGPT_VERSION only: the helper links nothing from common/ */

#define NS_PER_S UINT64_C(1000000000)
#define MAX_REPORTED 5 /* differences described on stderr */

enum { SAME = 0, DIFFERENT = 1, TROUBLE = 2 };

/* ---------------------------------------------------------------- precision */

static uint32_t swap32(uint32_t v)
{
	return v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
}

/* if_tsresol to nanoseconds per unit (at least 1): 10^-k or 2^-k seconds. */
static uint64_t tsresol_ns(uint8_t v)
{
	uint64_t res = NS_PER_S;
	unsigned k = v & 0x7f;

	if (v & 0x80)
		return k >= 30 ? 1 : (NS_PER_S + (1ull << k) - 1) >> k;
	for (; k > 0 && res > 1; k--)
		res /= 10;
	return res;
}

/* The if_tsresol option of an IDB body (after link type, reserved, snaplen),
 * or 1000 (microseconds, the default). */
static uint64_t idb_resolution(const uint8_t *body, size_t len, int swapped)
{
	size_t off = 8;

	while (off + 4 <= len) {
		uint16_t code, olen;

		memcpy(&code, body + off, 2);
		memcpy(&olen, body + off + 2, 2);
		if (swapped) {
			code = (uint16_t)(code >> 8 | code << 8);
			olen = (uint16_t)(olen >> 8 | olen << 8);
		}
		if (code == 0)
			break;
		if (code == 9 && olen >= 1 && off + 5 <= len)
			return tsresol_ns(body[off + 4]);
		off += 4 + ((olen + 3u) & ~3u);
	}
	return 1000;
}

/* What the interfaces of a pcapng file say: the coarsest resolution, the
 * first link type, and whether another has a different one (libpcap then
 * refuses the file, and it is read by ng_read below). Walks the block
 * headers; a damaged block ends the walk (the reader will report it). */
struct pcapng_walk {
	uint64_t coarsest;
	uint32_t linktype;
	int have_linktype, mixed;
};

static void pcapng_walk(FILE *f, struct pcapng_walk *w)
{
	int swapped = 0;
	long at = 0;
	uint32_t head[3];
	static uint8_t body[65536];

	memset(w, 0, sizeof *w);
	while (fseek(f, at, SEEK_SET) == 0 && fread(head, 4, 3, f) == 3) {
		uint32_t type = head[0], len;

		if (type == 0x0a0d0d0a) /* a section header sets the byte order */
			swapped = head[2] == 0x4d3c2b1a;
		len = swapped ? swap32(head[1]) : head[1];
		if (len < 12 || len % 4)
			break;
		if ((swapped ? swap32(type) : type) == 1) { /* interface description */
			size_t body_len = len - 12; /* between the header and the trailing length */
			size_t want = body_len < sizeof body ? body_len : sizeof body;
			size_t got = want > 4 ? fread(body + 4, 1, want - 4, f) : 0;
			uint64_t r;
			uint16_t lt;

			memcpy(body, &head[2], 4); /* the body's first word came with the header */
			r = idb_resolution(body, 4 + got, swapped);
			if (r > w->coarsest)
				w->coarsest = r;
			memcpy(&lt, body, 2);
			if (swapped)
				lt = (uint16_t)(lt >> 8 | lt << 8);
			if (w->have_linktype && lt != w->linktype)
				w->mixed = 1;
			if (!w->have_linktype)
				w->linktype = lt;
			w->have_linktype = 1;
		}
		at += (long)len;
	}
	if (!w->coarsest)
		w->coarsest = 1000;
}

/* Nanoseconds per timestamp unit of the file, from its header; whether it
 * is pcapng, its (first) LINKTYPE, and whether a pcapng file has
 * interfaces of several link types. */
static uint64_t file_resolution(FILE *f, int *pcapng, uint32_t *linktype, int *mixed)
{
	uint32_t head[6] = { 0 };
	uint64_t res = 1000;

	*pcapng = *mixed = 0;
	*linktype = 0;
	if (fread(head, 4, 6, f) >= 1) {
		uint32_t magic = head[0];
		if (magic == 0xa1b23c4d || magic == 0x4d3cb2a1)
			res = 1;
		if ((*pcapng = magic == 0x0a0d0d0a)) {
			struct pcapng_walk w;
			pcapng_walk(f, &w);
			res = w.coarsest;
			*linktype = w.linktype;
			*mixed = w.mixed;
		} else {
			*linktype = (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d ? head[5]
									: swap32(head[5])) & 0xffff;
		}
	}
	rewind(f);
	return res;
}

/* ---------------------------------------------------------------- pcapng of several link types */

struct packet {
	uint64_t ts_ns;
	uint32_t caplen, len;
	uint32_t linktype;
	const uint8_t *data;
};

/* libpcap refuses a pcapng file whose interfaces have different link types.
 * This plain reader (the whole file in memory, each block checked against
 * it) gives their packets, each with its interface's link type, so that a
 * round trip of such a file can be compared too. It shares no code with
 * pcap2flow's reader, which it checks. */
struct ng_iface {
	uint32_t linktype, snaplen;
	uint64_t units;  /* time stamp units per second */
	int64_t offset;  /* if_tsoffset, seconds */
};

struct ng_file {
	uint8_t *buf;
	size_t len, at;
	int swapped;
	struct ng_iface ifaces[256];
	size_t n_ifaces;
};

static uint32_t ng32(const struct ng_file *g, const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return g->swapped ? swap32(v) : v;
}

static uint16_t ng16(const struct ng_file *g, const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return g->swapped ? (uint16_t)(v >> 8 | v << 8) : v;
}

static int ng_load(struct ng_file *g, FILE *f)
{
	size_t cap = 1 << 16;
	size_t n;

	memset(g, 0, sizeof *g);
	g->buf = malloc(cap);
	while (g->buf && (n = fread(g->buf + g->len, 1, cap - g->len, f)) > 0) {
		g->len += n;
		if (g->len == cap)
			g->buf = realloc(g->buf, cap *= 2);
	}
	return g->buf && !ferror(f) ? 0 : -1;
}

static void ng_interface(struct ng_file *g, const uint8_t *b, size_t len)
{
	struct ng_iface *i = &g->ifaces[g->n_ifaces < 256 ? g->n_ifaces : 255];

	g->n_ifaces += g->n_ifaces < 256;
	i->linktype = ng16(g, b);
	i->snaplen = ng32(g, b + 4);
	i->units = 1000000;
	i->offset = 0;
	for (size_t o = 8; o + 4 <= len;) {
		uint16_t code = ng16(g, b + o), olen = ng16(g, b + o + 2);

		if (code == 0 || o + 4 + olen > len)
			break;
		if (code == 9 && olen >= 1) {
			unsigned k = b[o + 4] & 0x7f;
			i->units = 1;
			while (k--)
				i->units *= (b[o + 4] & 0x80) ? 2 : 10;
		}
		if (code == 14 && olen >= 8) {
			uint64_t v;
			memcpy(&v, b + o + 4, 8);
			if (g->swapped)
				v = (uint64_t)swap32((uint32_t)v) << 32 | swap32((uint32_t)(v >> 32));
			i->offset = (int64_t)v;
		}
		o += 4 + ((olen + 3u) & ~3u);
	}
	if (i->units == 0) /* 2^64 or more a second: nonsense, but no division by 0 */
		i->units = 1;
}

/* The next packet: 1, 0 at the end, -1 at a damaged block (why says how). */
static int ng_read(struct ng_file *g, struct packet *pkt, const char **why)
{
	while (g->at < g->len) {
		const uint8_t *blk = g->buf + g->at;
		size_t left = g->len - g->at;
		uint32_t type, len;

		if (left < 12)
			return *why = "file ends inside a block header", -1;
		if (memcmp(blk, "\x0a\x0d\x0d\x0a", 4) == 0) {
			g->swapped = memcmp(blk + 8, "\x1a\x2b\x3c\x4d", 4) == 0;
			g->n_ifaces = 0;
		}
		type = ng32(g, blk);
		len = ng32(g, blk + 4);
		if (len < 12 || len % 4 || len > left || ng32(g, blk + len - 4) != len)
			return *why = "a block's length is wrong", -1;
		g->at += len;
		const uint8_t *b = blk + 8;
		size_t blen = len - 12;
		if (type == 1 && blen >= 8) {
			ng_interface(g, b, blen);
		} else if (type == 6 || type == 2 || type == 3) {
			uint32_t id = type == 6 ? ng32(g, b) : type == 2 ? ng16(g, b) : 0;
			size_t head = type == 3 ? 4 : 20;
			if (blen < head || id >= g->n_ifaces)
				return *why = "a packet block is short or of an unknown interface", -1;
			const struct ng_iface *i = &g->ifaces[id];
			if (type == 3) {
				pkt->len = ng32(g, b);
				pkt->caplen = pkt->len < blen - 4 ? pkt->len : (uint32_t)(blen - 4);
				if (i->snaplen && pkt->caplen > i->snaplen)
					pkt->caplen = i->snaplen;
				pkt->ts_ns = 0;
			} else {
				uint64_t ts = (uint64_t)ng32(g, b + 4) << 32 | ng32(g, b + 8);
				pkt->caplen = ng32(g, b + 12);
				pkt->len = ng32(g, b + 16);
				if (pkt->caplen > blen - head)
					return *why = "a packet longer than its block", -1;
				pkt->ts_ns = (uint64_t)((int64_t)(ts / i->units) + i->offset) * NS_PER_S +
					(uint64_t)((long double)(ts % i->units) * NS_PER_S / i->units);
			}
			pkt->linktype = i->linktype;
			pkt->data = b + head;
			return 1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- captures */

struct capture {
	const char *name;
	pcap_t *p;        /* NULL: a pcapng of several link types, in ng */
	struct ng_file ng;
	uint64_t res_ns;  /* nanoseconds per timestamp unit in the file */
	int pcapng;
	uint32_t linktype; /* the file's (first) LINKTYPE */
	uint64_t packets; /* read so far */
	int done;
};

/* stdin copied to a temporary file, so its header can be read twice. */
static FILE *copy_stdin(void)
{
	FILE *f = tmpfile();
	char buf[65536];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
		if (fwrite(buf, 1, n, f) != n)
			return NULL;
	if (ferror(stdin) || fflush(f) != 0)
		return NULL;
	rewind(f);
	return f;
}

/* Opens PATH at nanosecond precision; returns 0, or -1 with a message. */
static int capture_open(struct capture *c, const char *path)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	FILE *f = strcmp(path, "-") == 0 ? copy_stdin() : fopen(path, "rb");

	memset(c, 0, sizeof *c);
	c->name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	if (!f) {
		warn("%s", c->name);
		return -1;
	}
	int mixed;
	c->res_ns = file_resolution(f, &c->pcapng, &c->linktype, &mixed);
	if (mixed) {
		int rc = ng_load(&c->ng, f);
		fclose(f);
		if (rc < 0)
			warn("%s", c->name);
		return rc;
	}
	c->p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!c->p) {
		warnx("%s: %s", c->name, errbuf);
		fclose(f);
		return -1;
	}
	return 0;
}

/* A pcap file's seconds are unsigned 32-bit, but libpcap 1.10 reads them as
 * signed: times after 2038 come out negative. pcapng's are 64-bit. */
static uint64_t capture_seconds(const struct capture *c, time_t sec)
{
	return c->pcapng ? (uint64_t)sec : (uint32_t)sec;
}

/* Next packet: 1, 0 at the end, -1 on a read error (reported). */
static int capture_next(struct capture *c, struct packet *pkt)
{
	struct pcap_pkthdr *h;
	const u_char *data;
	int r;

	if (c->done)
		return 0;
	if (!c->p) {
		const char *why = NULL;
		r = ng_read(&c->ng, pkt, &why);
		if (r < 0)
			warnx("%s: packet %" PRIu64 ": %s", c->name, c->packets + 1, why);
		c->done = r == 0;
		c->packets += r > 0;
		return r;
	}
	r = pcap_next_ex(c->p, &h, &data);
	if (r == PCAP_ERROR_BREAK) {
		c->done = 1;
		return 0;
	}
	if (r != 1) {
		warnx("%s: packet %" PRIu64 ": %s", c->name, c->packets + 1, pcap_geterr(c->p));
		return -1;
	}
	c->packets++;
	/* A classic pcap's fraction field is unsigned 32-bit, as its seconds are;
	 * libpcap reads it signed and scales it to ns, so undo both. */
	uint64_t frac = c->pcapng ? (uint64_t)h->ts.tv_usec
				  : (uint64_t)(uint32_t)(h->ts.tv_usec / (long)c->res_ns) * c->res_ns;
	pkt->ts_ns = capture_seconds(c, h->ts.tv_sec) * NS_PER_S + frac;
	pkt->caplen = h->caplen;
	pkt->len = h->len;
	pkt->linktype = c->linktype;
	pkt->data = data;
	return 1;
}

static void capture_close(struct capture *c)
{
	if (c->p)
		pcap_close(c->p);
	free(c->ng.buf);
}

/* ---------------------------------------------------------------- comparing */

struct compare {
	struct capture a, b;
	uint64_t tolerance_ns; /* timestamps closer than this are equal */
	uint64_t limit;        /* compare at most this many packets */
	int prefix;            /* stop at the end of B */
	int quiet;
	int per_packet_linktype; /* a side has several: compared packet by packet */
	long only_linktype;    /* -l: only packets of this link type; -1: all */
	uint64_t packets, mismatches;
};

static void describe_ts(char *buf, size_t len, uint64_t ns)
{
	snprintf(buf, len, "%" PRIu64 ".%09" PRIu64, ns / NS_PER_S, ns % NS_PER_S);
}

/* Appends what differs between two packets to WHY; returns whether any. */
static int packet_differences(const struct compare *cmp, const struct packet *x,
	const struct packet *y, char *why, size_t len)
{
	size_t at = 0, n = x->caplen < y->caplen ? x->caplen : y->caplen;
	uint64_t dt = x->ts_ns > y->ts_ns ? x->ts_ns - y->ts_ns : y->ts_ns - x->ts_ns;

	why[0] = '\0';
	if (dt >= cmp->tolerance_ns) {
		char ta[32], tb[32];

		describe_ts(ta, sizeof ta, x->ts_ns);
		describe_ts(tb, sizeof tb, y->ts_ns);
		at += (size_t)snprintf(why + at, len - at, "; time %s vs %s", ta, tb);
	}
	if (x->linktype != y->linktype && cmp->per_packet_linktype)
		at += (size_t)snprintf(why + at, len - at, "; link type %u vs %u", x->linktype, y->linktype);
	if (x->caplen != y->caplen && at < len)
		at += (size_t)snprintf(why + at, len - at, "; caplen %u vs %u", x->caplen, y->caplen);
	if (x->len != y->len && at < len)
		at += (size_t)snprintf(why + at, len - at, "; wirelen %u vs %u", x->len, y->len);
	for (size_t i = 0; i < n && at < len; i++) {
		if (x->data[i] != y->data[i]) {
			at += (size_t)snprintf(why + at, len - at, "; byte %zu: 0x%02x vs 0x%02x",
				i, x->data[i], y->data[i]);
			break;
		}
	}
	return why[0] != '\0';
}

static void mismatch(struct compare *cmp, const char *what)
{
	if (++cmp->mismatches <= MAX_REPORTED && !cmp->quiet)
		fprintf(stderr, "pcapcmp: packet %" PRIu64 ": %s\n", cmp->packets, what);
	else if (cmp->mismatches == MAX_REPORTED + 1 && !cmp->quiet)
		fprintf(stderr, "pcapcmp: (more differences not shown)\n");
}

/* The next packet of A of the link type -l names (any without -l). */
static int next_of_linktype(const struct compare *cmp, struct capture *c, struct packet *pkt)
{
	int r;

	while ((r = capture_next(c, pkt)) > 0 && cmp->only_linktype >= 0 &&
	       pkt->linktype != (uint32_t)cmp->only_linktype)
		;
	return r;
}

/* One step: reads a packet from each side and compares them. Returns 1 to
 * go on, 0 when done, -1 on a read error. */
static int compare_step(struct compare *cmp)
{
	struct packet x, y;
	char why[512];
	int ra, rb;

	if (cmp->packets >= cmp->limit)
		return 0;
	rb = capture_next(&cmp->b, &y);
	if (rb == 0 && cmp->prefix)
		return 0;
	ra = next_of_linktype(cmp, &cmp->a, &x);
	if (ra < 0 || rb < 0)
		return -1;
	if (ra == 0 && rb == 0)
		return 0;
	cmp->packets++;
	if (ra == 0 || rb == 0) {
		snprintf(why, sizeof why, "only in %s", ra ? cmp->a.name : cmp->b.name);
		mismatch(cmp, why);
	} else if (packet_differences(cmp, &x, &y, why, sizeof why)) {
		mismatch(cmp, why + 2); /* skip the first "; " */
	}
	return 1;
}

/* The link types count only when there are packets: an empty capture's
 * header says nothing a round trip could keep. */
static void compare_linktypes(struct compare *cmp)
{
	if (cmp->per_packet_linktype)
		return;
	int la = pcap_datalink(cmp->a.p), lb = pcap_datalink(cmp->b.p);
	const char *na = pcap_datalink_val_to_name(la), *nb = pcap_datalink_val_to_name(lb);

	if (la == lb || cmp->packets == 0)
		return;
	cmp->mismatches++;
	if (!cmp->quiet)
		fprintf(stderr, "pcapcmp: link type %d (%s) vs %d (%s)\n",
			la, na ? na : "?", lb, nb ? nb : "?");
}

static int compare_files(struct compare *cmp, const char *pa, const char *pb)
{
	int r;

	if (capture_open(&cmp->a, pa) < 0)
		return TROUBLE;
	if (capture_open(&cmp->b, pb) < 0) {
		capture_close(&cmp->a);
		return TROUBLE;
	}
	cmp->per_packet_linktype = !cmp->a.p || !cmp->b.p || cmp->only_linktype >= 0;
	cmp->tolerance_ns = cmp->a.res_ns > cmp->b.res_ns ? cmp->a.res_ns : cmp->b.res_ns;
	while ((r = compare_step(cmp)) > 0)
		;
	compare_linktypes(cmp);
	capture_close(&cmp->a);
	capture_close(&cmp->b);
	if (r < 0)
		return TROUBLE;
	if (!cmp->quiet)
		printf("packets %" PRIu64 ", mismatches %" PRIu64 "\n", cmp->packets, cmp->mismatches);
	return cmp->mismatches ? DIFFERENT : SAME;
}

/* -c: prints how many packets libpcap reads from PATH; 0 when it reads to
 * the end, 1 when it stops at damage, 2 when it cannot open the file. */
static int count_packets(const char *path)
{
	struct capture c;
	struct packet pkt;
	int r;

	if (capture_open(&c, path) < 0)
		return TROUBLE;
	while ((r = capture_next(&c, &pkt)) > 0)
		;
	printf("%" PRIu64 "\n", c.packets);
	capture_close(&c);
	return r < 0 ? DIFFERENT : SAME;
}

/* ---------------------------------------------------------------- CLI */

static const char usage_text[] =
	"usage: pcapcmp [-q] [-l LINKTYPE] [-p | -n COUNT] A B\n"
	"       pcapcmp -c FILE\n"
	"Compares two captures packet by packet: link type (unless both are empty),\n"
	"timestamps (at the coarser precision of the two), caplen, wire length\n"
	"and bytes. Prints \"packets N, mismatches M\" on stdout and the first\n"
	"differences on stderr.\n"
	"Exit 0: identical, 1: different, 2: trouble (unreadable or damaged).\n"
	"  -p, --prefix      compare only B's packets, with the first ones of A\n"
	"  -l, --linktype N  compare only A's packets of LINKTYPE N (of a pcapng\n"
	"                    file of several link types, with its --split part)\n"
	"  -n, --packets N   compare only the first N packets\n"
	"  -c, --count       print the number of packets libpcap reads from FILE;\n"
	"                    exit 0 when it reads to the end, 1 at damage, 2 when\n"
	"                    it cannot open FILE\n"
	"  -q, --quiet       print nothing, exit status only\n"
	"  -h, --help        this help;  -V, --version  the version\n";

static const struct option longopts[] = {
	{ "prefix", no_argument, NULL, 'p' },
	{ "linktype", required_argument, NULL, 'l' },
	{ "packets", required_argument, NULL, 'n' },
	{ "count", no_argument, NULL, 'c' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static _Noreturn void usage_error(const char *msg)
{
	fprintf(stderr, "pcapcmp: %s\n%s", msg, usage_text);
	exit(EX_USAGE);
}

static uint64_t parse_count(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		usage_error("bad number for -n");
	return v;
}

int main(int argc, char **argv)
{
	struct compare cmp;
	int ch, count = 0;

	memset(&cmp, 0, sizeof cmp);
	cmp.limit = UINT64_MAX;
	cmp.only_linktype = -1;
	while ((ch = getopt_long(argc, argv, "pl:n:cqhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p': cmp.prefix = 1; break;
		case 'l': cmp.only_linktype = (long)(parse_count(optarg) & 0xffffffff); break;
		case 'n': cmp.limit = parse_count(optarg); break;
		case 'c': count = 1; break;
		case 'q': cmp.quiet = 1; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'V': printf("pcapcmp (tgpt) %s\n%s\n", TGPT_VERSION, pcap_lib_version()); return 0;
		default: fputs(usage_text, stderr); return EX_USAGE;
		}
	}
	if (count && argc - optind != 1)
		usage_error("-c takes one FILE");
	if (count)
		return count_packets(argv[optind]);
	if (argc - optind != 2)
		usage_error("two captures to compare, please");
	if (strcmp(argv[optind], "-") == 0 && strcmp(argv[optind + 1], "-") == 0)
		usage_error("only one of A and B can be stdin");
	return compare_files(&cmp, argv[optind], argv[optind + 1]);
}
