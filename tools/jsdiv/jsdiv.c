/* jsdiv: how far apart two sets of traffic are, field by field: reads two
 * captures (pcap, pcapng) or flow streams (pcap2flow), bins each packet and
 * flow field (jsdiv(1), BINNING) and prints the Jensen-Shannon divergence
 * (base 2), total variation and Hellinger distance of every field, as a
 * table, as JSON, and optionally as histogram plots through gnuplot. */
#define _GNU_SOURCE /* fopencookie: replays the sniffed first bytes of a pipe */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "divergence.h"
#include "features.h"
#include "packet.h"
#include "record.h"

static const char usage[] =
	"usage: jsdiv [-jq] [-f fields] [-m max] [-p dir] [-t secs] file1 file2\n"
	"Compares two captures (pcap, pcapng) or flow streams (pcap2flow) field by\n"
	"field: Jensen-Shannon divergence (base 2), total variation and Hellinger\n"
	"distance between the histograms of each field. \"-\" is stdin (one side).\n"
	"  -f, --fields LIST        only these fields: names, f1..f6, or the groups\n"
	"                           packet and flow, comma-separated\n"
	"  -j, --json               one JSON document instead of the table\n"
	"  -m, --max-jsd X          exit 1 when a field's divergence exceeds X\n"
	"  -p, --plot DIR           write DIR/FIELD.png, both histograms overlaid\n"
	"  -t, --idle-timeout SECS  captures: end a flow after SECS without packets (120)\n"
	"  -q, --quiet              no progress on the terminal\n"
	"  -h, --help               this text\n"
	"  -V, --version            version and libraries\n"
	"Packet fields: src_ip dst_ip src_port dst_port pkt_len ttl ip_proto tcp_flags\n"
	"  tcp_window iat. Flow fields: in_pkts (f1) out_frac (f2) in_frac (f3)\n"
	"  out_order_std (f4) out_pkts (f5) alt_conc_sum (f6) flow_pkts flow_bytes\n"
	"  duration. Binning and definitions: jsdiv(1).\n";

#define NS_PER_S 1000000000ull
#define PROGRESS_EVERY 65536
#define PLOT_TOP 30 /* categorical plots: the most frequent values */

/* ------------------------------------------------------------ fields */

enum binning {
	BIN_ADDR,   /* addresses: exact, interned */
	BIN_EXACT,  /* small integers: exact */
	BIN_LINEAR, /* bins of .width from 0, .nbins of them */
	BIN_LOG,    /* bin_log from .lo, .per_decade, .decades */
	BIN_COUNT,  /* bin_count: exact below .exact, then logarithmic */
};

enum field_id {
	F_SRC_IP, F_DST_IP, F_SRC_PORT, F_DST_PORT, F_PKT_LEN, F_TTL, F_IP_PROTO,
	F_TCP_FLAGS, F_TCP_WINDOW, F_IAT,
	F_IN_PKTS, F_OUT_FRAC, F_IN_FRAC, F_OUT_ORDER_STD, F_OUT_PKTS, F_ALT_CONC_SUM,
	F_FLOW_PKTS, F_FLOW_BYTES, F_DURATION,
	N_FIELDS
};
#define FIRST_FLOW_FIELD F_IN_PKTS

struct field_def {
	const char *name, *alias, *unit;
	enum binning bin;
	double width, lo;  /* BIN_LINEAR width; BIN_LOG first edge */
	unsigned nbins, per_decade, decades, exact;
};

static const struct field_def fields[N_FIELDS] = {
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

static int is_flow_field(int id)
{
	return id >= FIRST_FLOW_FIELD;
}

/* ------------------------------------------------------------ addresses */

/* Addresses are categories: each distinct one gets a small id, the bin key,
 * shared by both sides so equal addresses meet in one bin. */
struct addr {
	uint8_t version, bytes[16];
};
struct addr_table {
	struct addr *addr; /* by id */
	size_t n, cap;
	uint32_t *slot;    /* open addressing: id + 1, 0 free */
	size_t slots;
};

static uint64_t addr_hash(const struct addr *a)
{
	uint64_t h = 0xcbf29ce484222325ull ^ a->version;
	for (int i = 0; i < 16; i++)
		h = (h ^ a->bytes[i]) * 0x100000001b3ull;
	return h ^ h >> 29;
}

static uint32_t *addr_slot(const struct addr_table *t, const struct addr *a)
{
	size_t mask = t->slots - 1;
	for (size_t i = addr_hash(a) & mask;; i = (i + 1) & mask) {
		uint32_t id = t->slot[i];
		if (id == 0 || memcmp(&t->addr[id - 1], a, sizeof *a) == 0)
			return &t->slot[i];
	}
}

static uint32_t addr_id(struct addr_table *t, uint8_t version, const uint8_t *bytes)
{
	struct addr a;
	memset(&a, 0, sizeof a);
	a.version = version;
	memcpy(a.bytes, bytes, 16);
	if (2 * (t->n + 1) > t->slots) {
		free(t->slot);
		t->slots = t->slots ? 2 * t->slots : 1024;
		t->slot = xcalloc(t->slots, sizeof *t->slot);
		for (size_t i = 0; i < t->n; i++)
			*addr_slot(t, &t->addr[i]) = (uint32_t)i + 1;
	}
	uint32_t *s = addr_slot(t, &a);
	if (*s == 0) {
		grow((void **)&t->addr, &t->cap, t->n + 1, sizeof *t->addr);
		t->addr[t->n++] = a;
		*s = (uint32_t)t->n;
	}
	return *s - 1;
}

/* ------------------------------------------------------------ the comparison */

enum format { FMT_PCAP, FMT_PCAPNG, FMT_STREAM };
static const char *const format_names[] = { "pcap", "pcapng", "stream" };

struct side {
	const char *path;    /* as given */
	const char *name;    /* for messages */
	enum format format;
	uint64_t packets;    /* IP packets compared */
	uint64_t flows;
	uint64_t skipped;    /* frames that are not IP */
};

struct compare {
	int selected[N_FIELDS];
	struct hist2 hist[N_FIELDS];
	struct addr_table addrs;
	struct side side[2];
	int cur;             /* the side being read */
	uint64_t idle_ns;
	struct progress progress;
};

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

static void observe(struct compare *c, int id, double x)
{
	if (c->selected[id])
		hist2_add(&c->hist[id], key_of(&fields[id], x), c->cur);
}

static void observe_addr(struct compare *c, int id, uint8_t version, const uint8_t *bytes)
{
	if (c->selected[id])
		hist2_add(&c->hist[id], addr_id(&c->addrs, version, bytes), c->cur);
}

/* One IP packet. ttl_known is 0 for a stream packet whose bytes did not
 * decode (its addresses and ports then come from the flow record). */
static void observe_packet(struct compare *c, const struct pkt_fields *f, int ttl_known,
			   double iat, int first)
{
	observe_addr(c, F_SRC_IP, f->ip_version, f->src_ip);
	observe_addr(c, F_DST_IP, f->ip_version, f->dst_ip);
	if (f->has_ports) {
		observe(c, F_SRC_PORT, f->src_port);
		observe(c, F_DST_PORT, f->dst_port);
	}
	observe(c, F_PKT_LEN, f->wirelen);
	if (ttl_known)
		observe(c, F_TTL, f->ttl);
	observe(c, F_IP_PROTO, f->proto);
	if (f->has_tcp) {
		observe(c, F_TCP_FLAGS, f->tcp_flags);
		observe(c, F_TCP_WINDOW, f->tcp_window);
	}
	if (!first)
		observe(c, F_IAT, iat);
	c->side[c->cur].packets++;
	if (c->side[c->cur].packets % PROGRESS_EVERY == 0)
		progress_tick(&c->progress, "%s: %" PRIu64 " packets", c->side[c->cur].name,
			      c->side[c->cur].packets);
}

static void observe_flow(const struct flow_features *ff, void *ctx)
{
	struct compare *c = ctx;
	observe(c, F_IN_PKTS, (double)ff->in_pkts);
	observe(c, F_OUT_FRAC, ff->out_frac);
	observe(c, F_IN_FRAC, ff->in_frac);
	observe(c, F_OUT_ORDER_STD, ff->out_order_std);
	observe(c, F_OUT_PKTS, (double)ff->out_pkts);
	observe(c, F_ALT_CONC_SUM, ff->alt_conc_sum);
	observe(c, F_FLOW_PKTS, (double)ff->packets);
	observe(c, F_FLOW_BYTES, (double)ff->bytes);
	observe(c, F_DURATION, ff->duration);
	c->side[c->cur].flows++;
}

/* ------------------------------------------------------------ inputs */

/* A FILE that first gives back the bytes sniffed off a descriptor, then reads
 * the descriptor: libpcap can then read a pipe whose start we have seen. */
struct replay {
	int fd;
	uint8_t head[4];
	size_t len, pos;
};

static ssize_t replay_read(void *cookie, char *buf, size_t size)
{
	struct replay *r = cookie;
	if (r->pos < r->len) {
		size_t n = r->len - r->pos < size ? r->len - r->pos : size;
		memcpy(buf, r->head + r->pos, n);
		r->pos += n;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = read(r->fd, buf, size);
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

static int replay_close(void *cookie)
{
	struct replay *r = cookie;
	int rc = r->fd > STDERR_FILENO ? close(r->fd) : 0;
	free(r);
	return rc;
}

static FILE *replay_open(int fd, const uint8_t *head, size_t len)
{
	struct replay *r = xcalloc(1, sizeof *r);
	r->fd = fd;
	memcpy(r->head, head, len);
	r->len = len;
	cookie_io_functions_t io = { .read = replay_read, .close = replay_close };
	FILE *f = fopencookie(r, "rb", io);
	if (!f)
		err(EX_OSERR, "fopencookie");
	return f;
}

/* Reads up to 4 bytes (fewer only at the end of the input). */
static size_t sniff(int fd, const char *name, uint8_t *head)
{
	size_t got = 0;
	while (got < 4) {
		ssize_t n = read(fd, head + got, 4 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err(EX_IOERR, "%s", name);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static int is_pcap_magic(const uint8_t *h, size_t n, enum format *fmt)
{
	static const uint8_t magic[][4] = {
		{ 0xa1, 0xb2, 0xc3, 0xd4 }, { 0xd4, 0xc3, 0xb2, 0xa1 },
		{ 0xa1, 0xb2, 0x3c, 0x4d }, { 0x4d, 0x3c, 0xb2, 0xa1 },
	};
	static const uint8_t pcapng[4] = { 0x0a, 0x0d, 0x0d, 0x0a };
	if (n < 4)
		return 0;
	for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
		if (memcmp(h, magic[i], 4) == 0) {
			*fmt = FMT_PCAP;
			return 1;
		}
	if (memcmp(h, pcapng, 4) == 0) {
		*fmt = FMT_PCAPNG;
		return 1;
	}
	return 0;
}

/* A tgpt stream starts with a msgpack map (fixmap, map 16, map 32). */
static int is_stream_start(uint8_t b)
{
	return (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
}

/* The LINKTYPE_ (file) value of libpcap's DLT_ (platform) value: they differ
 * for raw IP, the one pkt_decode cares about. */
static uint32_t linktype_of_dlt(int dlt)
{
	return dlt == DLT_RAW ? LT_RAW : (uint32_t)dlt;
}

static void read_capture(struct compare *c, FILE *in)
{
	struct side *s = &c->side[c->cur];
	char errbuf[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p = pcap_fopen_offline_with_tstamp_precision(in, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!p)
		errx(EX_DATAERR, "%s: %s", s->name, errbuf);
	uint32_t linktype = linktype_of_dlt(pcap_datalink(p));
	struct flow_table t;
	flow_table_init(&t, c->idle_ns, observe_flow, c);
	struct pcap_pkthdr *h;
	const u_char *bytes;
	uint64_t frame = 0;
	int rc;
	while ((rc = pcap_next_ex(p, &h, &bytes)) == 1) {
		frame++;
		/* lengths as pcap2flow keeps them: what a flow record can hold,
		 * and a wire length no shorter than what was captured */
		uint32_t caplen = h->caplen < MAX_PACKET_BYTES ? h->caplen : MAX_PACKET_BYTES;
		uint32_t wirelen = h->len > caplen ? h->len : caplen;
		struct pkt_fields f;
		if (!pkt_fields_decode(linktype, bytes, caplen, wirelen, &f)) {
			s->skipped++;
			continue;
		}
		/* as pcap2flow: times before 1970 count as 1970 */
		uint64_t sec = h->ts.tv_sec < 0 ? 0 : (uint64_t)h->ts.tv_sec;
		uint64_t ts = sec * NS_PER_S + (uint64_t)h->ts.tv_usec;
		int first;
		double iat = flow_table_add(&t, ts, &f, &first);
		observe_packet(c, &f, 1, iat, first);
	}
	char why[PCAP_ERRBUF_SIZE];
	snprintf(why, sizeof why, "%s", rc == PCAP_ERROR ? pcap_geterr(p) : "");
	flow_table_finish(&t);
	flow_table_free(&t);
	pcap_close(p);
	if (rc == PCAP_ERROR)
		errx(EX_DATAERR, "%s: packet %" PRIu64 ": %s", s->name, frame + 1, why);
	if (s->packets == 0)
		errx(EX_DATAERR, "%s: no IP packets to compare (%" PRIu64 " frames, link type %u)",
		     s->name, frame, linktype);
}

/* The fields of a stream packet: decoded from its bytes when they reach the
 * IP header, else, in a flow of IP packets, the flow's addresses and ports in
 * the packet's direction (*ttl_known then 0). Returns 0 for a packet that is
 * not IP. The record's ip_version is not needed for bytes that decode. */
static int stream_packet_fields(const struct flow_rec *r, const struct packet *pk,
				struct pkt_fields *f, int *ttl_known)
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

/* One flow record: its IP packets, then (when it had any) the flow. */
static void take_flow_record(struct compare *c, const struct flow_rec *fr, struct flow_acc *acc)
{
	int first_dir = 0;
	flow_acc_reset(acc);
	for (size_t i = 0; i < fr->n_packets; i++) {
		const struct packet *pk = &fr->pkt[i];
		struct pkt_fields f;
		int ttl_known;
		if (!stream_packet_fields(fr, pk, &f, &ttl_known)) {
			c->side[c->cur].skipped++;
			continue;
		}
		int first = acc->packets == 0;
		/* the first IP packet's direction is the flow's outgoing one */
		if (first)
			first_dir = pk->dir;
		double iat = flow_acc_add(acc, pk->ts_ns, pk->wirelen, pk->dir != first_dir);
		observe_packet(c, &f, ttl_known, iat, first);
	}
	if (acc->packets) {
		struct flow_features ff;
		flow_acc_features(acc, &ff);
		observe_flow(&ff, c);
	}
}

static void read_stream(struct compare *c, int fd, const uint8_t *head, size_t len)
{
	struct side *s = &c->side[c->cur];
	struct rec_reader r;
	rec_open_fd(&r, fd, s->name);
	/* the sniffed bytes go first into the unpacker's buffer */
	if (!msgpack_unpacker_reserve_buffer(&r.mp.unpacker, len))
		errx(EX_OSERR, "out of memory");
	memcpy(msgpack_unpacker_buffer(&r.mp.unpacker), head, len);
	msgpack_unpacker_buffer_consumed(&r.mp.unpacker, len);

	struct flow_acc acc;
	flow_acc_init(&acc);
	int rc;
	while ((rc = rec_next(&r, REC_FLOW)) == REC_FLOW)
		take_flow_record(c, &r.flow, &acc);
	char why[sizeof r.error];
	snprintf(why, sizeof why, "%s", rc < 0 ? r.error : "");
	flow_acc_free(&acc);
	rec_close(&r);
	if (rc < 0)
		errx(EX_DATAERR, "%s", why);
	if (s->packets == 0)
		errx(EX_DATAERR, "%s: no IP packets to compare (%" PRIu64 " flow records)", s->name,
		     r.records);
}

static void read_side(struct compare *c, int which)
{
	struct side *s = &c->side[which];
	c->cur = which;
	int fd = STDIN_FILENO;
	if (strcmp(s->path, "-") != 0 && (fd = open(s->path, O_RDONLY | O_CLOEXEC)) < 0)
		err(EX_NOINPUT, "%s", s->path);
	uint8_t head[4];
	size_t n = sniff(fd, s->name, head);
	if (is_pcap_magic(head, n, &s->format)) {
		read_capture(c, replay_open(fd, head, n));
		return;
	}
	if (n == 0)
		errx(EX_DATAERR, "%s: empty: neither a capture nor a tgpt stream", s->name);
	if (!is_stream_start(head[0]))
		errx(EX_DATAERR, "%s: neither a capture (pcap, pcapng) nor a tgpt stream "
		     "(first bytes %02x%02x%02x%02x)", s->name, head[0], n > 1 ? head[1] : 0,
		     n > 2 ? head[2] : 0, n > 3 ? head[3] : 0);
	s->format = FMT_STREAM;
	read_stream(c, fd, head, n);
}

/* ------------------------------------------------------------ results */

struct result {
	int defined;          /* some value on either side */
	struct divergence d;
	size_t bins;          /* bins either side filled */
};

static void compute(const struct compare *c, struct result *res)
{
	for (int i = 0; i < N_FIELDS; i++) {
		res[i].defined = c->selected[i] && hist2_divergence(&c->hist[i], &res[i].d) >= 0;
		res[i].bins = c->hist[i].used;
	}
}

/* The mean divergence of the defined fields of one level; NAN when none. */
static double mean_jsd(const struct result *res, int flow_level)
{
	double sum = 0;
	int n = 0;
	for (int i = 0; i < N_FIELDS; i++)
		if (res[i].defined && is_flow_field(i) == flow_level) {
			sum += res[i].d.jsd;
			n++;
		}
	return n ? sum / n : NAN;
}

static void print_table(const struct compare *c, const struct result *res)
{
	for (int k = 0; k < 2; k++) {
		const struct side *s = &c->side[k];
		printf("%c: %s (%s): %" PRIu64 " IP packet%s in %" PRIu64 " flow%s", "ab"[k], s->name,
		       format_names[s->format], s->packets, s->packets == 1 ? "" : "s", s->flows,
		       s->flows == 1 ? "" : "s");
		if (s->skipped)
			printf(", %" PRIu64 " other frames left out", s->skipped);
		putchar('\n');
	}
	printf("\n%-14s %7s %7s %9s %12s %12s\n", "field", "jsd", "tvd", "hellinger", "n(a)", "n(b)");
	for (int i = 0; i < N_FIELDS; i++) {
		if (!c->selected[i])
			continue;
		if (res[i].defined)
			printf("%-14s %7.4f %7.4f %9.4f", fields[i].name, res[i].d.jsd, res[i].d.tvd,
			       res[i].d.hellinger);
		else
			printf("%-14s %7s %7s %9s", fields[i].name, "-", "-", "-");
		printf(" %12" PRIu64 " %12" PRIu64 "\n", c->hist[i].total[0], c->hist[i].total[1]);
	}
	double mp = mean_jsd(res, 0), mf = mean_jsd(res, 1);
	printf("\nmean jsd:");
	if (!isnan(mp))
		printf(" packet fields %.4f", mp);
	if (!isnan(mf))
		printf("%s flow fields %.4f", isnan(mp) ? "" : ",", mf);
	if (isnan(mp) && isnan(mf))
		printf(" -");
	putchar('\n');
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_number(double x)
{
	if (isnan(x))
		fputs("null", stdout);
	else
		printf("%.6g", x);
}

static void print_json(const struct compare *c, const struct result *res)
{
	putchar('{');
	for (int k = 0; k < 2; k++) {
		const struct side *s = &c->side[k];
		printf("\"%c\":{\"source\":", "ab"[k]);
		json_string(s->path);
		printf(",\"format\":\"%s\",\"packets\":%" PRIu64 ",\"flows\":%" PRIu64
		       ",\"skipped\":%" PRIu64 "},", format_names[s->format], s->packets, s->flows,
		       s->skipped);
	}
	printf("\n\"fields\":[");
	const char *sep = "\n";
	for (int i = 0; i < N_FIELDS; i++) {
		if (!c->selected[i])
			continue;
		printf("%s{\"field\":\"%s\",\"level\":\"%s\",\"jsd\":", sep, fields[i].name,
		       is_flow_field(i) ? "flow" : "packet");
		json_number(res[i].defined ? res[i].d.jsd : NAN);
		fputs(",\"tvd\":", stdout);
		json_number(res[i].defined ? res[i].d.tvd : NAN);
		fputs(",\"hellinger\":", stdout);
		json_number(res[i].defined ? res[i].d.hellinger : NAN);
		printf(",\"n_a\":%" PRIu64 ",\"n_b\":%" PRIu64 ",\"bins\":%zu}", c->hist[i].total[0],
		       c->hist[i].total[1], res[i].bins);
		sep = ",\n";
	}
	fputs("],\n\"mean_jsd_packet\":", stdout);
	json_number(mean_jsd(res, 0));
	fputs(",\"mean_jsd_flow\":", stdout);
	json_number(mean_jsd(res, 1));
	fputs("}\n", stdout);
}

/* ------------------------------------------------------------ plots */

/* A gnuplot string in single quotes (a quote inside is doubled). */
static void gp_quote(FILE *gp, const char *s)
{
	fputc('\'', gp);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', gp);
		fputc(*s, gp);
	}
	fputc('\'', gp);
}

static void value_label(const struct compare *c, int id, uint64_t key, char *buf, size_t len)
{
	if (fields[id].bin == BIN_ADDR && key < c->addrs.n) {
		const struct addr *a = &c->addrs.addr[key];
		if (!inet_ntop(a->version == 6 ? AF_INET6 : AF_INET, a->bytes, buf, (socklen_t)len))
			snprintf(buf, len, "?");
	} else if (id == F_TCP_FLAGS) {
		snprintf(buf, len, "0x%02" PRIx64, key);
	} else {
		snprintf(buf, len, "%" PRIu64, key);
	}
}

/* The x position of a bin's lower edge; bins below a logarithmic axis's
 * first edge are drawn one and two bins to its left. */
static double bin_x(const struct field_def *d, uint64_t key)
{
	switch (d->bin) {
	case BIN_LINEAR:
		return (double)key * d->width;
	case BIN_LOG:
		if (key < 2)
			return d->lo * pow(10, -(2.0 - (double)key) / d->per_decade);
		return bin_log_edge(key, d->lo, d->per_decade);
	case BIN_COUNT:
		return key == 0 ? 0.5 : bin_count_edge(key, d->exact);
	default:
		return (double)key;
	}
}

static double share(const struct hist2 *h, const struct hist_bin *b, int side)
{
	return h->total[side] ? (double)b->n[side] / (double)h->total[side] : 0;
}

static int by_mass_desc(const void *x, const void *y)
{
	const struct hist_bin *a = x, *b = y;
	uint64_t ma = a->n[0] + a->n[1], mb = b->n[0] + b->n[1];
	if (ma != mb)
		return ma < mb ? 1 : -1;
	return (a->key > b->key) - (a->key < b->key);
}

/* Categories: the PLOT_TOP most frequent values as paired bars, the rest
 * summed as "other". Mass compares by counts of both sides, which favours
 * neither in a tie of proportions much; it only picks what to show. */
static void plot_categorical(FILE *gp, const struct compare *c, int id, struct hist_bin *b, size_t n)
{
	const struct hist2 *h = &c->hist[id];
	qsort(b, n, sizeof *b, by_mass_desc);
	size_t shown = n < PLOT_TOP ? n : PLOT_TOP;
	double other[2] = { 0, 0 };
	fputs("$d << EOD\n", gp);
	for (size_t i = 0; i < n; i++) {
		if (i >= shown) {
			other[0] += share(h, &b[i], 0);
			other[1] += share(h, &b[i], 1);
			continue;
		}
		char label[64];
		value_label(c, id, b[i].key, label, sizeof label);
		fprintf(gp, "\"%s\" %.9g %.9g\n", label, share(h, &b[i], 0), share(h, &b[i], 1));
	}
	if (n > shown)
		fprintf(gp, "\"other\" %.9g %.9g\n", other[0], other[1]);
	fputs("EOD\n", gp);
	fputs("set style data histograms\nset style histogram clustered gap 1\n"
	      "set style fill solid 0.6 border -1\nset xtics rotate by -60 font ',8'\n"
	      "set yrange [0:*]\n", gp);
	fprintf(gp, "set xlabel '%s (the %d most frequent values)'\n", fields[id].unit, PLOT_TOP);
	fputs("plot $d using 2:xtic(1) title ta, '' using 3 title tb\n", gp);
}

/* Binned numbers: both histograms as steps over the bins' lower edges, with
 * a zero step where bins are empty on both sides. */
static void plot_binned(FILE *gp, const struct compare *c, int id, const struct hist_bin *b, size_t n)
{
	const struct field_def *d = &fields[id];
	const struct hist2 *h = &c->hist[id];
	fputs("$d << EOD\n", gp);
	for (size_t i = 0; i < n; i++) {
		fprintf(gp, "%.9g %.9g %.9g\n", bin_x(d, b[i].key), share(h, &b[i], 0), share(h, &b[i], 1));
		if (i + 1 == n || b[i + 1].key != b[i].key + 1)
			fprintf(gp, "%.9g 0 0\n", bin_x(d, b[i].key + 1));
	}
	fputs("EOD\n", gp);
	fputs("set style data steps\nset xtics norotate\nset yrange [0:*]\n", gp);
	if (d->bin == BIN_LOG || d->bin == BIN_COUNT)
		fputs("set logscale x\nset format x '%g'\n", gp);
	fprintf(gp, "set xlabel '%s'\n", d->unit);
	fputs("plot $d using 1:2 title ta lw 2, '' using 1:3 title tb lw 2\n", gp);
}

static void plot_field(FILE *gp, const struct compare *c, const struct result *res, int id,
		       const char *dir)
{
	size_t n;
	struct hist_bin *b = hist2_sorted(&c->hist[id], &n);
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.png", dir, fields[id].name);
	fputs("reset\nset terminal pngcairo size 1000,560\nset output ", gp);
	gp_quote(gp, path);
	fprintf(gp, "\nset key top right\nset ylabel 'share of values'\nset grid ytics\n");
	if (res[id].defined)
		fprintf(gp, "set title '%s: JSD %.4f, TVD %.4f, Hellinger %.4f' noenhanced\n",
			fields[id].name, res[id].d.jsd, res[id].d.tvd, res[id].d.hellinger);
	else
		fprintf(gp, "set title '%s: no values on either side' noenhanced\n", fields[id].name);
	if (n == 0)
		fputs("set xrange [0:1]\nplot 2 notitle\n", gp);
	else if (fields[id].bin == BIN_ADDR || fields[id].bin == BIN_EXACT)
		plot_categorical(gp, c, id, b, n);
	else
		plot_binned(gp, c, id, b, n);
	fputs("set output\n", gp);
	free(b);
}

/* Whether gnuplot is on PATH: checked before reading, so a long comparison
 * does not end in a missing plotter. */
static int have_gnuplot(void)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path ? path : "/usr/bin:/bin"), *save = NULL;
	int found = 0;
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char exe[4096];
		snprintf(exe, sizeof exe, "%s/gnuplot", *d ? d : ".");
		found = access(exe, X_OK) == 0;
	}
	free(copy);
	return found;
}

static void plot_prepare(const char *dir)
{
	if (!have_gnuplot())
		errx(EX_UNAVAILABLE, "--plot needs gnuplot (Debian: gnuplot-nox), not found on PATH");
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		err(EX_CANTCREAT, "%s", dir);
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) < 0)
		errx(EX_CANTCREAT, "%s: not a writable directory", dir);
}

static void plot_all(const struct compare *c, const struct result *res, const char *dir)
{
	/* a gnuplot that dies must give an exit status, not kill us */
	signal(SIGPIPE, SIG_IGN);
	FILE *gp = popen("gnuplot", "w");
	if (!gp)
		err(EX_OSERR, "gnuplot");
	fputs("ta = ", gp);
	gp_quote(gp, c->side[0].name);
	fputs("\ntb = ", gp);
	gp_quote(gp, c->side[1].name);
	fputs("\nset encoding utf8\n", gp);
	for (int i = 0; i < N_FIELDS; i++)
		if (c->selected[i])
			plot_field(gp, c, res, i, dir);
	int st = pclose(gp);
	signal(SIGPIPE, SIG_DFL);
	if (st == -1)
		err(EX_OSERR, "gnuplot");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		errx(EX_SOFTWARE, "gnuplot failed (%s %d): plots in %s may be missing",
		     WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), dir);
}

/* ------------------------------------------------------------ options */

static void select_fields(const char *list, int *selected)
{
	char *copy = xstrdup(list), *save = NULL;
	memset(selected, 0, N_FIELDS * sizeof *selected);
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		int hit = 0;
		for (int i = 0; i < N_FIELDS; i++) {
			int group = (strcmp(w, "packet") == 0 && !is_flow_field(i)) ||
				    (strcmp(w, "flow") == 0 && is_flow_field(i)) || strcmp(w, "all") == 0;
			if (group || strcmp(w, fields[i].name) == 0 ||
			    (fields[i].alias && strcmp(w, fields[i].alias) == 0))
				selected[i] = hit = 1;
		}
		if (!hit)
			cli_usage_error(usage, "--fields: unknown field '%s'", w);
	}
	free(copy);
	int any = 0;
	for (int i = 0; i < N_FIELDS; i++)
		any |= selected[i];
	if (!any)
		cli_usage_error(usage, "--fields: no field named");
}

struct options {
	int json, quiet;
	double max_jsd;       /* negative: no verdict */
	const char *plot_dir;
	double idle;
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "fields", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "max-jsd", required_argument, NULL, 'm' },
		{ "plot", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "idle-timeout", required_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct compare c;
	struct options o = { 0, 0, -1, NULL, 120 };
	const char *field_list = "all";
	int ch;

	cli_init(argc, argv);
	while ((ch = getopt_long(argc, argv, "f:hjm:p:qt:V", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			field_list = optarg;
			break;
		case 'h':
			cli_help(usage);
		case 'j':
			o.json = 1;
			break;
		case 'm':
			o.max_jsd = opt_double(usage, "--max-jsd", optarg, 0, 1);
			break;
		case 'p':
			o.plot_dir = optarg;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 't':
			o.idle = opt_double(usage, "--idle-timeout", optarg, 0, 1e9);
			break;
		case 'V': {
			const char *const libs[] = { pcap_lib_version(), NULL };
			cli_version(libs);
		}
		default:
			cli_usage_error(usage, "unknown option");
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2)
		cli_usage_error(usage, "two inputs wanted, %d given", argc);
	if (strcmp(argv[0], "-") == 0 && strcmp(argv[1], "-") == 0)
		cli_usage_error(usage, "only one input can be stdin");
	select_fields(field_list, c.selected);
	if (o.plot_dir)
		plot_prepare(o.plot_dir);

	c.idle_ns = (uint64_t)(o.idle * 1e9);
	progress_init(&c.progress, o.quiet);
	for (int k = 0; k < 2; k++) {
		c.side[k].path = argv[k];
		c.side[k].name = strcmp(argv[k], "-") == 0 ? "<stdin>" : argv[k];
		read_side(&c, k);
	}
	progress_done(&c.progress);

	struct result res[N_FIELDS];
	compute(&c, res);
	if (o.json)
		print_json(&c, res);
	else
		print_table(&c, res);
	cli_close_out(stdout, "stdout");
	if (o.plot_dir)
		plot_all(&c, res, o.plot_dir);

	int exceeded = 0;
	for (int i = 0; i < N_FIELDS; i++)
		exceeded |= o.max_jsd >= 0 && res[i].defined && res[i].d.jsd > o.max_jsd;
	for (int i = 0; i < N_FIELDS; i++)
		hist2_free(&c.hist[i]);
	free(c.addrs.addr);
	free(c.addrs.slot);
	return exceeded ? 1 : 0;
}
