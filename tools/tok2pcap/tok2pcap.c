/* tok2pcap: token records back to a pcap capture, the exact inverse of
 * flow2tok when side data is present (tok2pcap(1)). Token runs that do not
 * form a packet are dropped and counted, never written as garbage. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "record.h"
#include "stream.h"

static const char usage[] =
	"usage: tok2pcap [-qV] [-w FILE | --split PREFIX] [--start TIME] [--linktype N]\n"
	"                [--strict] [--force] [FILE ...]\n"
	"Reads token records (flow2tok, or a generator) from FILEs or stdin ('-') and\n"
	"writes their packets as a pcap capture to stdout or FILE.\n"
	"  -w, --write FILE    write to FILE (replaced atomically); '-' is stdout\n"
	"      --split PREFIX  one capture per link type: PREFIX-LINKTYPE.pcap\n"
	"      --start TIME    time of the first packet of records without side data,\n"
	"                      seconds since the epoch (default 1700000000)\n"
	"      --linktype N    link type of escape tokens (255) in records without side data\n"
	"      --strict        a token run that is not a packet is an error (exit 65)\n"
	"      --force         write binary output even to a terminal\n"
	"  -q, --quiet         no progress\n"
	"  -h, --help          this help\n"
	"  -V, --version       version and libraries\n";

#define DEFAULT_START_NS (1700000000ull * 1000000000ull)
#define DEFAULT_SNAPLEN 262144u
/* pcap time stamps hold unsigned 32-bit seconds. */
#define PCAP_TS_LIMIT_NS (4294967296ll * 1000000000ll)
/* An interval beyond this many seconds is no interval of a flow. */
#define NO_SOURCE UINT32_MAX

struct options {
	const char *output, *split;
	int64_t start_ns;
	uint32_t linktype;
	int have_linktype, strict, force, quiet;
};

/* Why a token run is not written as a packet. */
enum reason {
	R_NO_START, R_LT_SPECIAL, R_SHORT_TIME, R_SPECIAL, R_NO_BYTES, R_TOO_LONG,
	R_BAD_INTERVAL, R_LT_ESCAPE, R_LT_MISMATCH, R_SIDE_COUNT,
	R_TS_RANGE, R_WIRELEN, R_NO_END, R_AFTER_END, N_REASONS
};
static const char *const reason_text[N_REASONS] = {
	[R_NO_START] = "tokens outside a packet (no START before them)",
	[R_LT_SPECIAL] = "link-type token is a special token",
	[R_SHORT_TIME] = "fewer than 8 time-interval tokens",
	[R_SPECIAL] = "special token inside the packet",
	[R_NO_BYTES] = "packet without bytes (and no side data)",
	[R_TOO_LONG] = "packet longer than 262144 bytes",
	[R_BAD_INTERVAL] = "time interval NaN, infinite or beyond 2^32 s",
	[R_LT_ESCAPE] = "link-type escape 255 without side data or --linktype",
	[R_LT_MISMATCH] = "link-type token differs from the record's linktype",
	[R_SIDE_COUNT] = "side data for another number of packets than the tokens hold",
	[R_TS_RANGE] = "time stamp outside what pcap can hold",
	[R_WIRELEN] = "side data gives a wire length outside 0 to 2^32 - 1",
	[R_NO_END] = "record without END (its last packet may be incomplete)",
	[R_AFTER_END] = "tokens after END",
};

struct where {
	const char *input;
	uint64_t record; /* 1-based within its input */
	size_t packet;   /* 1-based START run within the record, 0: the record */
};

/* One packet kept, its bytes in the arena. */
struct pkt_meta {
	int64_t ts_ns;
	uint64_t index;  /* position in its source file, with side data */
	uint64_t seq;    /* arrival order: makes the sort stable */
	size_t off;
	uint32_t caplen, wirelen, linktype;
	uint32_t source; /* rank of first appearance; NO_SOURCE: order by time */
};

/* What one output capture needs to know besides its packets. */
struct lt_info {
	uint32_t linktype, snaplen;
	int nano;
};

/* A START run: tokens [start, end), ended by START/END (or not at all). */
struct run {
	size_t start, end;
	int terminated, other_special;
};

/* Sources in order of first appearance: open addressing on FNV-1a. */
struct sources {
	char **names;
	size_t *lens;
	size_t n, cap;
	uint32_t *slots; /* rank + 1, 0 = empty */
	size_t n_slots;
};

struct collector {
	const struct options *o;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	struct pkt_meta *pkts;
	size_t n_pkts, pkts_cap;
	struct run *runs;
	size_t runs_cap;
	struct lt_info *lts;
	size_t n_lts, lts_cap;
	struct sources src;
	uint64_t seq, records;
	uint64_t drops[N_REASONS];
	struct where first_drop[N_REASONS];
	int strict_failed;
};

/* ------------------------------------------------------------ sources */

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
	return h;
}

static void sources_rehash(struct sources *s, size_t n_slots)
{
	free(s->slots);
	s->slots = xcalloc(n_slots, sizeof *s->slots);
	s->n_slots = n_slots;
	for (size_t r = 0; r < s->n; r++) {
		size_t i = fnv1a(s->names[r], s->lens[r]) & (n_slots - 1);
		while (s->slots[i])
			i = (i + 1) & (n_slots - 1);
		s->slots[i] = (uint32_t)r + 1;
	}
}

static uint32_t source_rank(struct sources *s, const char *name, size_t len)
{
	if (s->n_slots == 0)
		sources_rehash(s, 64);
	size_t i = fnv1a(name, len) & (s->n_slots - 1);
	for (; s->slots[i]; i = (i + 1) & (s->n_slots - 1)) {
		uint32_t r = s->slots[i] - 1;
		if (s->lens[r] == len && memcmp(s->names[r], name, len) == 0)
			return r;
	}
	if (s->n >= NO_SOURCE - 1)
		errx(EX_SOFTWARE, "more than %u sources", NO_SOURCE - 1);
	size_t cap = s->cap;
	grow((void **)&s->names, &cap, s->n + 1, sizeof *s->names);
	cap = s->cap;
	grow((void **)&s->lens, &cap, s->n + 1, sizeof *s->lens);
	s->cap = cap;
	s->names[s->n] = memcpy(xmalloc(len + 1), name, len);
	s->names[s->n][len] = 0;
	s->lens[s->n] = len;
	s->slots[i] = (uint32_t)++s->n;
	if (2 * s->n > s->n_slots)
		sources_rehash(s, 2 * s->n_slots);
	return (uint32_t)s->n - 1;
}

static void sources_free(struct sources *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->names[i]);
	free(s->names);
	free(s->lens);
	free(s->slots);
}

/* ------------------------------------------------------------ token scanning */

/* Index of the first token at or after i that is not a byte (its high byte
 * is set), or n. Tests 8 tokens at a time: bytes are the common case. */
static size_t next_non_byte(const uint8_t *le, size_t i, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	const uint64_t high = 0x00ff00ff00ff00ffull;
#else
	const uint64_t high = 0xff00ff00ff00ff00ull;
#endif
	for (; i + 8 <= n; i += 8) {
		uint64_t a, b;
		memcpy(&a, le + 2 * i, 8);
		memcpy(&b, le + 2 * i + 8, 8);
		if ((a | b) & high)
			break;
	}
	for (; i < n; i++)
		if (le[2 * i + 1])
			return i;
	return n;
}

/* Index of the next START or END at or after i, or n; notes any other
 * special (CLS, PAD, ids out of the vocabulary) on the way. */
static size_t next_boundary(const struct tok_rec *t, size_t i, int *other)
{
	for (;;) {
		i = next_non_byte(t->tokens_le, i, t->n_tokens);
		if (i == t->n_tokens)
			return i;
		uint16_t k = tok_at(t, i);
		if (k == TOK_START || k == TOK_END)
			return i;
		*other = 1;
		i++;
	}
}

/* Splits a record into START runs; returns how many. *ended: END was seen;
 * *stray: tokens outside any run; *after_end: tokens other than PAD after END. */
static size_t split_runs(struct collector *c, const struct tok_rec *t, int *ended, int *stray,
			 int *after_end)
{
	size_t n = t->n_tokens, i = 0, n_runs = 0;
	*ended = *stray = *after_end = 0;
	while (i < n) {
		uint16_t k = tok_at(t, i);
		if (k == TOK_END) {
			*ended = 1;
			i++;
			break;
		}
		int other = 0;
		size_t end = next_boundary(t, i + 1, &other);
		if (k != TOK_START) {
			*stray = 1;
			i = end;
			continue;
		}
		grow((void **)&c->runs, &c->runs_cap, n_runs + 1, sizeof *c->runs);
		c->runs[n_runs++] = (struct run){ i, end, end < n, other };
		i = end;
	}
	for (; i < n; i++)
		if (tok_at(t, i) != TOK_PAD) {
			*after_end = 1;
			break;
		}
	return n_runs;
}

/* The structural checks of one run, before any side data. */
static enum reason check_run(const struct tok_rec *t, const struct run *r)
{
	size_t len = r->end - r->start;
	if (!r->terminated)
		return R_NO_END;
	if (len < 2 || tok_at(t, r->start + 1) > 0xff)
		return R_LT_SPECIAL;
	if (len < TOK_PACKET_OVERHEAD)
		return R_SHORT_TIME;
	if (r->other_special)
		return R_SPECIAL;
	if (len == TOK_PACKET_OVERHEAD && !t->has_side) /* side data vouches for caplen 0 */
		return R_NO_BYTES;
	if (len - TOK_PACKET_OVERHEAD > MAX_PACKET_BYTES)
		return R_TOO_LONG;
	return N_REASONS;
}

/* The 8 big-endian interval bytes after START and the link type, as ns. */
static int interval_ns(const struct tok_rec *t, size_t start, int64_t *ns)
{
	uint64_t bits = 0;
	for (int i = 0; i < 8; i++)
		bits = bits << 8 | t->tokens_le[2 * (start + 2 + i)];
	double s;
	memcpy(&s, &bits, sizeof s);
	if (!isfinite(s) || fabs(s) > TOK_MAX_INTERVAL_S)
		return -1;
	*ns = llround(s * 1e9);
	return 0;
}

/* clock + ns, saturating: a saturated clock is out of pcap's range anyway. */
static int64_t advance(int64_t clock, int64_t ns)
{
	if (ns > 0 && clock > INT64_MAX - ns)
		return INT64_MAX;
	if (ns < 0 && clock < INT64_MIN - ns)
		return INT64_MIN;
	return clock + ns;
}

/* ------------------------------------------------------------ collecting */

/* Counts a dropped run; with --strict the first one is an error. */
static void drop(struct collector *c, enum reason why, const char *input, uint64_t record,
		 size_t packet)
{
	if (c->drops[why]++ == 0)
		c->first_drop[why] = (struct where){ input, record, packet };
	if (c->o->strict && !c->strict_failed) {
		c->strict_failed = 1;
		if (packet)
			warnx("%s: record %" PRIu64 ", packet %zu: %s (--strict)", input, record,
			      packet, reason_text[why]);
		else
			warnx("%s: record %" PRIu64 ": %s (--strict)", input, record, reason_text[why]);
	}
}

static struct lt_info *lt_info_for(struct collector *c, uint32_t linktype)
{
	for (size_t i = 0; i < c->n_lts; i++)
		if (c->lts[i].linktype == linktype)
			return &c->lts[i];
	grow((void **)&c->lts, &c->lts_cap, c->n_lts + 1, sizeof *c->lts);
	c->lts[c->n_lts] = (struct lt_info){ linktype, 0, 0 };
	return &c->lts[c->n_lts++];
}

/* The link type of a run: the token, resolved through side data or
 * --linktype when it is the escape. */
static enum reason run_linktype(const struct collector *c, const struct tok_rec *t,
				const struct run *r, uint32_t *linktype)
{
	uint16_t k = tok_at(t, r->start + 1);
	if (t->has_side) {
		uint32_t want = t->linktype < TOK_LINKTYPE_ESCAPE ? t->linktype : TOK_LINKTYPE_ESCAPE;
		if (k != want)
			return R_LT_MISMATCH;
		*linktype = t->linktype;
	} else if (k < TOK_LINKTYPE_ESCAPE) {
		*linktype = k;
	} else if (c->o->have_linktype) {
		*linktype = c->o->linktype;
	} else {
		return R_LT_ESCAPE;
	}
	return N_REASONS;
}

static void copy_low_bytes(uint8_t *dst, const uint8_t *le, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = le[2 * i];
}

/* Appends one packet: its bytes to the arena, its metadata to the list. */
static void keep_packet(struct collector *c, const struct tok_rec *t, const struct run *r,
			struct pkt_meta *m)
{
	size_t len = r->end - r->start - TOK_PACKET_OVERHEAD;
	grow((void **)&c->arena, &c->arena_cap, c->arena_len + len + 1, 1); /* never NULL */
	copy_low_bytes(c->arena + c->arena_len, t->tokens_le + 2 * (r->start + TOK_PACKET_OVERHEAD),
		       len);
	m->off = c->arena_len;
	m->seq = c->seq++;
	c->arena_len += len;
	grow((void **)&c->pkts, &c->pkts_cap, c->n_pkts + 1, sizeof *c->pkts);
	c->pkts[c->n_pkts++] = *m;

	struct lt_info *lt = lt_info_for(c, m->linktype);
	uint32_t snaplen = t->has_side ? t->snaplen : DEFAULT_SNAPLEN;
	if (snaplen > lt->snaplen)
		lt->snaplen = snaplen;
	lt->nano |= !t->has_side || t->tsprec == 9;
}

/* Decodes one packet run into *m, or says why it is no packet. The clock
 * (time of the previous kept packet) advances only for kept packets. */
static enum reason decode_run(struct collector *c, const struct tok_rec *t, size_t p,
			      int64_t *clock, uint32_t source, struct pkt_meta *m)
{
	const struct run *r = &c->runs[p];
	enum reason why = check_run(t, r);
	if (why != N_REASONS)
		return why;
	why = run_linktype(c, t, r, &m->linktype);
	if (why != N_REASONS)
		return why;
	int64_t ts, ns;
	if (t->ts_ns) /* exact time stamps: the intervals are only approximate */
		ts = t->ts_ns[p] > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)t->ts_ns[p];
	else if (interval_ns(t, r->start, &ns) == 0)
		ts = advance(*clock, ns);
	else
		return R_BAD_INTERVAL;
	if (ts < 0 || ts >= PCAP_TS_LIMIT_NS)
		return R_TS_RANGE;
	m->caplen = (uint32_t)(r->end - r->start - TOK_PACKET_OVERHEAD);
	/* Side data may hold a wire length below caplen: damaged captures do. */
	int64_t wirelen = (int64_t)m->caplen + (t->has_side ? t->wire_delta[p] : 0);
	if (wirelen < 0 || wirelen > UINT32_MAX)
		return R_WIRELEN;
	m->wirelen = (uint32_t)wirelen;
	m->ts_ns = ts;
	m->source = source;
	m->index = t->has_side ? t->index[p] : 0;
	*clock = ts;
	return N_REASONS;
}

/* Takes the packets of one record; returns -1 when --strict stops us. */
static int take_record(struct collector *c, const struct tok_rec *t, const char *input,
		       uint64_t record)
{
	int ended, stray, after_end;
	size_t n_runs = split_runs(c, t, &ended, &stray, &after_end);
	if (stray)
		drop(c, R_NO_START, input, record, 0);
	/* Without END the last run is unterminated and check_run counts it;
	 * a record without any run is counted here. */
	if (!ended && n_runs == 0)
		drop(c, R_NO_END, input, record, 0);
	if (t->has_side && t->n_packets != n_runs) {
		for (size_t p = 0; p < n_runs; p++)
			drop(c, R_SIDE_COUNT, input, record, p + 1);
		n_runs = 0;
	}
	uint32_t source = NO_SOURCE;
	if (t->has_side)
		source = t->source ? source_rank(&c->src, t->source, t->source_len)
				   : source_rank(&c->src, "", 0);
	int64_t clock = t->has_side ? (t->first_ns > (uint64_t)INT64_MAX ? INT64_MAX
									: (int64_t)t->first_ns)
				    : c->o->start_ns;
	for (size_t p = 0; p < n_runs && !c->strict_failed; p++) {
		struct pkt_meta m;
		enum reason why = decode_run(c, t, p, &clock, source, &m);
		if (why == N_REASONS)
			keep_packet(c, t, &c->runs[p], &m);
		else
			drop(c, why, input, record, p + 1);
	}
	if (after_end)
		drop(c, R_AFTER_END, input, record, n_runs);
	return c->strict_failed ? -1 : 0;
}

/* Reads every record of one input; returns 0 or an exit status. */
static int collect_input(struct collector *c, const char *path, struct progress *prog)
{
	struct rec_reader r;
	if (rec_open(&r, path) < 0) {
		warn("%s", path);
		return EX_NOINPUT;
	}
	const char *name = strcmp(path, "-") ? path : "<stdin>";
	int got, status = 0;
	while ((got = rec_next(&r, REC_TOK)) == REC_TOK) {
		c->records++;
		if (take_record(c, &r.tok, name, r.records) < 0) {
			status = EX_DATAERR;
			break;
		}
		progress_tick(prog, "%" PRIu64 " records, %zu packets, %.1f MB", c->records,
			      c->n_pkts, (double)c->arena_len / 1e6);
	}
	if (got < 0) {
		warnx("%s", r.error);
		status = EX_DATAERR;
	}
	rec_close(&r);
	return status;
}

static void report_drops(const struct collector *c)
{
	for (int i = 0; i < N_REASONS; i++) {
		if (!c->drops[i])
			continue;
		const struct where *w = &c->first_drop[i];
		warnx("dropped %" PRIu64 " token run%s: %s (first: %s, record %" PRIu64 ")",
		      c->drops[i], c->drops[i] == 1 ? "" : "s", reason_text[i], w->input, w->record);
	}
}

/* ------------------------------------------------------------ output */

/* Capture order: by link type (one capture each), then packets with side
 * data by source and index, then the others by time; ties by arrival. */
static int by_capture_order(const void *a, const void *b)
{
	const struct pkt_meta *x = a, *y = b;
	if (x->linktype != y->linktype)
		return x->linktype < y->linktype ? -1 : 1;
	if (x->source != y->source)
		return x->source < y->source ? -1 : 1;
	if (x->source != NO_SOURCE && x->index != y->index)
		return x->index < y->index ? -1 : 1;
	if (x->source == NO_SOURCE && x->ts_ns != y->ts_ns)
		return x->ts_ns < y->ts_ns ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* The pcap format (pcap-savefile(5)) in host byte order, as libpcap writes
 * it. Written here rather than through pcap_dump because libpcap refuses
 * some link types in savefiles (LINKTYPE_RAW 101, values above 289). */
static void write_pcap(FILE *f, const struct lt_info *lt, const struct pkt_meta *m, size_t n,
		       const uint8_t *arena)
{
	uint8_t h[24];
	uint16_t version[2] = { 2, 4 };
	put32(h, lt->nano ? 0xa1b23c4du : 0xa1b2c3d4u);
	memcpy(h + 4, version, 4);
	put32(h + 8, 0);  /* thiszone */
	put32(h + 12, 0); /* sigfigs */
	put32(h + 16, lt->snaplen);
	put32(h + 20, lt->linktype);
	fwrite(h, 1, sizeof h, f);
	for (size_t i = 0; i < n; i++) {
		uint64_t ts = (uint64_t)m[i].ts_ns;
		uint32_t frac = (uint32_t)(ts % 1000000000u);
		put32(h, (uint32_t)(ts / 1000000000u));
		put32(h + 4, lt->nano ? frac : frac / 1000);
		put32(h + 8, m[i].caplen);
		put32(h + 12, m[i].wirelen);
		fwrite(h, 1, 16, f);
		fwrite(arena + m[i].off, 1, m[i].caplen, f);
	}
}

static const struct lt_info *lt_info_of(const struct collector *c, uint32_t linktype)
{
	for (size_t i = 0; i < c->n_lts; i++)
		if (c->lts[i].linktype == linktype)
			return &c->lts[i];
	return NULL;
}

/* One capture per link type, PREFIX-LINKTYPE.pcap. */
static void write_split(const struct collector *c, const char *prefix)
{
	static char buf[1 << 20];
	for (size_t i = 0; i < c->n_pkts;) {
		size_t j = i;
		while (j < c->n_pkts && c->pkts[j].linktype == c->pkts[i].linktype)
			j++;
		const struct lt_info *lt = lt_info_of(c, c->pkts[i].linktype);
		size_t len = strlen(prefix) + 32;
		char *path = xmalloc(len);
		snprintf(path, len, "%s-%" PRIu32 ".pcap", prefix, lt->linktype);
		struct atomic_file out;
		atomic_open(&out, path);
		setvbuf(out.f, buf, _IOFBF, sizeof buf);
		write_pcap(out.f, lt, c->pkts + i, j - i, c->arena);
		atomic_commit(&out);
		free(path);
		i = j;
	}
}

/* Everything in one capture; returns 0, or EX_DATAERR for mixed link types. */
static int write_single(const struct collector *c, struct atomic_file *out)
{
	if (c->n_lts > 1) {
		warnx("records of link types %" PRIu32 " and %" PRIu32
		      " cannot share one pcap; use --split PREFIX for one capture each",
		      c->lts[0].linktype, c->lts[1].linktype);
		return EX_DATAERR;
	}
	struct lt_info empty = { c->o->have_linktype ? c->o->linktype : 1, DEFAULT_SNAPLEN, 0 };
	write_pcap(out->f, c->n_lts ? &c->lts[0] : &empty, c->pkts, c->n_pkts, c->arena);
	return 0;
}

/* ------------------------------------------------------------ options */

/* Seconds since the epoch with up to 9 decimals, as nanoseconds. */
static int64_t parse_start(const char *s)
{
	char ip[32];
	const char *dot = strchr(s, '.');
	size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
	uint64_t sec, frac = 0;
	if (ilen == 0 || ilen >= sizeof ip)
		goto bad;
	memcpy(ip, s, ilen);
	ip[ilen] = 0;
	if (parse_u64(ip, 0, UINT32_MAX, &sec) < 0)
		goto bad;
	if (dot) {
		size_t digits = strlen(dot + 1);
		if (digits == 0 || digits > 9)
			goto bad;
		for (size_t i = 0; i < 9; i++) {
			char d = i < digits ? dot[1 + i] : '0';
			if (d < '0' || d > '9')
				goto bad;
			frac = frac * 10 + (uint64_t)(d - '0');
		}
	}
	return (int64_t)(sec * 1000000000u + frac);
bad:
	cli_usage_error(usage, "--start: '%s' is not seconds since the epoch (0 to 4294967295, "
		       "up to 9 decimals)", s);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_SPLIT = 256, OPT_START, OPT_LINKTYPE, OPT_STRICT, OPT_FORCE };
	static const struct option longopts[] = {
		{ "write", required_argument, NULL, 'w' },
		{ "split", required_argument, NULL, OPT_SPLIT },
		{ "start", required_argument, NULL, OPT_START },
		{ "linktype", required_argument, NULL, OPT_LINKTYPE },
		{ "strict", no_argument, NULL, OPT_STRICT },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const libs[] = { NULL };
	int c;
	memset(o, 0, sizeof *o);
	o->start_ns = (int64_t)DEFAULT_START_NS;
	while ((c = getopt_long(argc, argv, "w:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w': o->output = optarg; break;
		case OPT_SPLIT: o->split = optarg; break;
		case OPT_START: o->start_ns = parse_start(optarg); break;
		case OPT_LINKTYPE:
			o->linktype = (uint32_t)opt_u64(usage, "--linktype", optarg, 0, UINT32_MAX);
			o->have_linktype = 1;
			break;
		case OPT_STRICT: o->strict = 1; break;
		case OPT_FORCE: o->force = 1; break;
		case 'q': o->quiet = 1; break;
		case 'h': cli_help(usage);
		case 'V': cli_version(libs);
		default: cli_usage_error(usage, "unknown option or missing argument");
		}
	}
	if (o->split && o->output)
		cli_usage_error(usage, "-w and --split exclude each other");
	if (o->split && !*o->split)
		cli_usage_error(usage, "--split: empty prefix");
	if (!o->split && !o->output)
		o->output = "-";
}

static void collector_free(struct collector *c)
{
	free(c->arena);
	free(c->pkts);
	free(c->runs);
	free(c->lts);
	sources_free(&c->src);
}

int main(int argc, char **argv)
{
	struct options o;
	cli_init(argc, argv);
	parse_options(argc, argv, &o);
	struct atomic_file out = { 0 };
	static char obuf[1 << 20];
	if (!o.split) {
		if (strcmp(o.output, "-") == 0)
			cli_refuse_tty(o.force);
		atomic_open(&out, o.output);
		setvbuf(out.f, obuf, _IOFBF, sizeof obuf);
	}

	struct collector c = { .o = &o };
	struct progress prog;
	progress_init(&prog, o.quiet);
	int status = 0;
	char *stdin_only[] = { "-" };
	char **inputs = optind < argc ? argv + optind : stdin_only;
	int n_inputs = optind < argc ? argc - optind : 1;
	for (int i = 0; i < n_inputs && !c.strict_failed; i++) {
		int s = collect_input(&c, inputs[i], &prog);
		if (s && !status)
			status = s;
	}
	progress_done(&prog);
	if (!o.strict)
		report_drops(&c);
	if (!status && c.records && !c.n_pkts) {
		/* an empty capture written with exit 0 would pass for output */
		warnx("no packet in %" PRIu64 " record%s: the capture is empty", c.records,
		      c.records == 1 ? "" : "s");
		status = EX_DATAERR;
	}

	if (c.n_pkts)
		qsort(c.pkts, c.n_pkts, sizeof *c.pkts, by_capture_order);
	if (o.split) {
		write_split(&c, o.split);
	} else {
		int s = write_single(&c, &out);
		if (s) {
			atomic_abort(&out);
			status = s;
		} else {
			atomic_commit(&out);
		}
	}
	collector_free(&c);
	return status;
}
