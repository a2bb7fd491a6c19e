/* flow2tok: flow records (pcap2flow) to token records, with the paper's
 * tokenizer (tgpt-stream(5), flow2tok(1)): per packet START, link type, 8
 * bytes of float64 interval and every captured byte; END closes the flow. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "packet.h"
#include "record.h"
#include "stream.h"

static const char usage[] =
	"usage: flow2tok [-qV] [--no-side] [--mask mac,ip,port] [--max-tokens N] [-l LABEL]\n"
	"                [--first-packets K] [--first-bytes N] [-o FILE] [--force] [FILE ...]\n"
	"Reads flow records (pcap2flow) from FILEs or stdin ('-') and writes one\n"
	"token record per flow (tgpt-stream(5)) to stdout or FILE.\n"
	"  -o, --output FILE   write to FILE (replaced atomically); '-' is stdout\n"
	"  -l, --label LABEL   label every record with LABEL\n"
	"      --mask LIST     zero these fields, keeping offsets: mac, ip, port\n"
	"      --max-tokens N  cut flows at a packet boundary to fit N tokens (N >= 12)\n"
	"      --first-packets K  only the first K packets of each flow\n"
	"      --first-bytes N    only the first N captured bytes of each packet (as a\n"
	"                         snaplen would; its wire length is kept)\n"
	"      --no-side       drop the side data (source, times, lengths, indices)\n"
	"      --force         write binary output even to a terminal\n"
	"  -q, --quiet         no progress, no summary\n"
	"  -h, --help          this help\n"
	"  -V, --version       version and libraries\n";

/* The smallest budget that still holds one byte of one packet and END. */
#define MIN_MAX_TOKENS (TOK_PACKET_OVERHEAD + 2)

struct options {
	const char *output, *label;
	unsigned mask;
	size_t max_tokens; /* 0: no limit */
	size_t first_packets, first_bytes; /* 0: all */
	int no_side, force, quiet;
};

/* Reusable buffers for one token record, and counts for the summary. */
struct tokenizer {
	uint16_t *tokens;
	size_t tokens_cap;
	int64_t *wire_delta;
	uint64_t *index, *ts_ns;
	size_t side_cap;
	uint64_t flows, packets, bytes, tokens_out;
	uint64_t cut_flows, truncated_first, inexact_flows;
};

static unsigned parse_mask(const char *list)
{
	unsigned mask = 0;
	char *copy = xstrdup(list), *save = NULL;
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (strcmp(w, "mac") == 0)
			mask |= PKT_MASK_MAC;
		else if (strcmp(w, "ip") == 0)
			mask |= PKT_MASK_IP;
		else if (strcmp(w, "port") == 0)
			mask |= PKT_MASK_PORT;
		else
			cli_usage_error(usage, "--mask: unknown field '%s' (mac, ip, port)", w);
	}
	free(copy);
	if (!mask)
		cli_usage_error(usage, "--mask: no field given (mac, ip, port)");
	return mask;
}

/* The interval from prev to cur as float64 seconds. Returns 1 when tok2pcap's
 * llround(seconds * 1e9) gives back exactly the nanoseconds, 0 otherwise. */
static int interval_seconds(uint64_t prev, uint64_t cur, double *seconds)
{
	uint64_t mag = cur >= prev ? cur - prev : prev - cur;
	int fits = mag <= (uint64_t)INT64_MAX;
	int64_t ns = fits ? (int64_t)mag : INT64_MAX;
	if (cur < prev)
		ns = -ns;
	*seconds = (double)ns / 1e9;
	double back = *seconds * 1e9;
	return fits && fabs(back) < 9.2e18 && llround(back) == ns;
}

/* START, the link-type token and the 8 big-endian bytes of the interval. */
static uint16_t *put_packet_head(uint16_t *w, uint16_t linktype_token, double seconds)
{
	uint64_t bits;
	memcpy(&bits, &seconds, sizeof bits);
	w[0] = TOK_START;
	w[1] = linktype_token;
	for (int i = 0; i < 8; i++)
		w[2 + i] = (uint16_t)((bits >> (56 - 8 * i)) & 0xff);
	return w + TOK_PACKET_OVERHEAD;
}

static void widen_bytes(uint16_t *w, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w[i] = p[i];
}

/* Zeroes n tokens at off, clipped to the len tokens written. */
static void zero_field(uint16_t *w, size_t len, int off, size_t n)
{
	if (off < 0 || (size_t)off >= len)
		return;
	if (n > len - (size_t)off)
		n = len - (size_t)off;
	memset(w + off, 0, n * sizeof *w);
}

/* Masks the fields the decoder finds in the full captured frame, in the
 * first len tokens written for it. */
static void mask_packet(uint16_t *w, size_t len, uint32_t linktype, const struct packet *p,
			unsigned mask)
{
	struct pkt_info pi;
	struct pkt_span span[PKT_MASK_SPANS];
	pkt_decode(linktype, p->data, p->caplen, &pi);
	int n = pkt_mask_spans(&pi, mask, span);
	for (int i = 0; i < n; i++)
		zero_field(w, len, span[i].off, span[i].len);
}

/* The captured bytes of a packet that are tokenized: --first-bytes of them
 * at most. */
static size_t kept_len(const struct packet *p, const struct options *o)
{
	return o->first_bytes && p->caplen > o->first_bytes ? o->first_bytes : p->caplen;
}

/* How many packets fit the budget (--first-packets of them at most), and
 * the captured bytes kept of the first when even it does not fit (else its
 * kept_len). */
static size_t packets_that_fit(const struct flow_rec *f, const struct options *o,
			       size_t *first_len)
{
	size_t max_tokens = o->max_tokens;
	size_t all = o->first_packets && f->n_packets > o->first_packets ? o->first_packets
									 : f->n_packets;
	*first_len = all ? kept_len(&f->pkt[0], o) : 0;
	if (!max_tokens)
		return all;
	size_t used = 1; /* END */
	size_t n = 0;
	for (; n < all; n++) {
		size_t cost = TOK_PACKET_OVERHEAD + kept_len(&f->pkt[n], o);
		if (used + cost > max_tokens)
			break;
		used += cost;
	}
	if (n == 0 && all > 0) {
		*first_len = max_tokens - 1 - TOK_PACKET_OVERHEAD;
		n = 1;
	}
	return n;
}

static void grow_side(struct tokenizer *tz, size_t n)
{
	if (n <= tz->side_cap)
		return;
	size_t cap = tz->side_cap;
	grow((void **)&tz->wire_delta, &cap, n, sizeof *tz->wire_delta);
	cap = tz->side_cap;
	grow((void **)&tz->index, &cap, n, sizeof *tz->index);
	cap = tz->side_cap;
	grow((void **)&tz->ts_ns, &cap, n, sizeof *tz->ts_ns);
	tz->side_cap = cap;
}

/* Tokens of the flow into tz->tokens and the side data into t. */
static void tokenize(struct tokenizer *tz, const struct flow_rec *f, const struct options *o,
		     struct tok_rec *t)
{
	size_t first_len;
	size_t n = packets_that_fit(f, o, &first_len);
	size_t total = 1;
	for (size_t i = 0; i < n; i++)
		total += TOK_PACKET_OVERHEAD + (i ? kept_len(&f->pkt[i], o) : first_len);
	grow((void **)&tz->tokens, &tz->tokens_cap, total, sizeof *tz->tokens);
	grow_side(tz, n);

	uint16_t lt_token = (uint16_t)(f->linktype < TOK_LINKTYPE_ESCAPE ? f->linktype
									  : TOK_LINKTYPE_ESCAPE);
	uint16_t *w = tz->tokens;
	int exact = 1, shortened = 0;
	for (size_t i = 0; i < n; i++) {
		const struct packet *p = &f->pkt[i];
		size_t len = i ? kept_len(p, o) : first_len;
		shortened |= len < p->caplen;
		double seconds = 0;
		if (i)
			exact &= interval_seconds(f->pkt[i - 1].ts_ns, p->ts_ns, &seconds);
		w = put_packet_head(w, lt_token, seconds);
		widen_bytes(w, p->data, len);
		if (o->mask)
			mask_packet(w, len, f->linktype, p, o->mask);
		w += len;
		tz->wire_delta[i] = (int64_t)p->wirelen - (int64_t)len;
		tz->index[i] = p->index;
		tz->ts_ns[i] = p->ts_ns;
		tz->bytes += len;
	}
	*w++ = TOK_END;

	memset(t, 0, sizeof *t);
	t->id = f->id;
	t->label = o->label ? o->label : f->label;
	t->label_len = o->label ? strlen(o->label) : f->label_len;
	t->cut = n < f->n_packets || shortened;
	t->n_tokens = (size_t)(w - tz->tokens);
	if (!exact) {
		tz->inexact_flows++;
		warnx("%.*s: flow %" PRIu64 ": a time interval does not survive float64 seconds%s",
		      (int)f->source_len, f->source ? f->source : "", f->id,
		      o->no_side ? "; --no-side drops the exact time stamps"
				 : "; exact time stamps kept in \"ts_ns\"");
	}
	if (!o->no_side) {
		t->source = f->source;
		t->source_len = f->source_len;
		t->has_side = 1;
		t->linktype = f->linktype;
		t->snaplen = f->snaplen;
		t->tsprec = f->tsprec;
		t->first_ns = n ? f->pkt[0].ts_ns : f->first_ns;
		t->n_packets = n;
		t->wire_delta = tz->wire_delta;
		t->index = tz->index;
		t->ts_ns = exact ? NULL : tz->ts_ns;
	}
	tz->flows++;
	tz->packets += n;
	tz->tokens_out += t->n_tokens;
	tz->cut_flows += t->cut;
	tz->truncated_first += n > 0 && first_len < kept_len(&f->pkt[0], o);
}

/* Tokenizes every flow of one input; returns 0, or an exit status. */
static int tokenize_input(const char *path, struct tokenizer *tz, const struct options *o,
			  struct mp_writer *w, struct progress *prog)
{
	struct rec_reader r;
	if (rec_open(&r, path) < 0) {
		warn("%s", path);
		return EX_NOINPUT;
	}
	int status = 0, got;
	struct tok_rec t;
	while ((got = rec_next(&r, REC_FLOW)) == REC_FLOW) {
		tokenize(tz, &r.flow, o, &t);
		tok_write(&w->pk, &t, tz->tokens);
		if (w->failed)
			break;
		progress_tick(prog, "%" PRIu64 " flows, %.1f MB of packets", tz->flows,
			      (double)tz->bytes / 1e6);
	}
	if (got < 0) {
		warnx("%s", r.error);
		status = EX_DATAERR;
	}
	rec_close(&r);
	return status;
}

static void summary(const struct tokenizer *tz, const struct options *o)
{
	if (o->quiet)
		return;
	if (tz->cut_flows && !o->first_packets && !o->first_bytes)
		warnx("%" PRIu64 " of %" PRIu64 " flows cut by --max-tokens %zu"
		      " (%" PRIu64 " of them inside their first packet)",
		      tz->cut_flows, tz->flows, o->max_tokens, tz->truncated_first);
	else if (tz->cut_flows)
		warnx("%" PRIu64 " of %" PRIu64 " flows cut by --first-packets, --first-bytes"
		      " or --max-tokens", tz->cut_flows, tz->flows);
	if (tz->inexact_flows)
		warnx("%" PRIu64 " %s a time interval float64 cannot hold exactly",
		      tz->inexact_flows, plural(tz->inexact_flows, "flow with", "flows with"));
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_MASK = 256, OPT_MAX_TOKENS, OPT_FIRST_PACKETS, OPT_FIRST_BYTES, OPT_NO_SIDE,
	       OPT_FORCE };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "label", required_argument, NULL, 'l' },
		{ "mask", required_argument, NULL, OPT_MASK },
		{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
		{ "first-packets", required_argument, NULL, OPT_FIRST_PACKETS },
		{ "first-bytes", required_argument, NULL, OPT_FIRST_BYTES },
		{ "no-side", no_argument, NULL, OPT_NO_SIDE },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const libs[] = { NULL };
	int c;
	memset(o, 0, sizeof *o);
	o->output = "-";
	while ((c = cli_getopt(argc, argv, "o:l:qhV", longopts, usage)) != -1) {
		switch (c) {
		case 'o': o->output = optarg; break;
		case 'l': o->label = optarg; break;
		case OPT_MASK: o->mask = parse_mask(optarg); break;
		case OPT_MAX_TOKENS:
			o->max_tokens = (size_t)opt_u64(usage, "--max-tokens", optarg, MIN_MAX_TOKENS,
							SIZE_MAX / 4);
			break;
		case OPT_FIRST_PACKETS:
			o->first_packets = (size_t)opt_u64(usage, "--first-packets", optarg, 1,
							   SIZE_MAX / 4);
			break;
		case OPT_FIRST_BYTES:
			o->first_bytes = (size_t)opt_u64(usage, "--first-bytes", optarg, 1, SIZE_MAX / 4);
			break;
		case OPT_NO_SIDE: o->no_side = 1; break;
		case OPT_FORCE: o->force = 1; break;
		case 'q': o->quiet = 1; break;
		case 'h': cli_help(usage);
		case 'V': cli_version(libs);
		default: cli_usage_error(usage, "unknown option or missing argument");
		}
	}
}

int main(int argc, char **argv)
{
	struct options o;
	cli_init(argc, argv);
	parse_options(argc, argv, &o);
	if (strcmp(o.output, "-") == 0)
		cli_refuse_tty(o.force);

	struct atomic_file out;
	atomic_open(&out, o.output);
	static char obuf[1 << 20];
	setvbuf(out.f, obuf, _IOFBF, sizeof obuf);
	struct mp_writer w;
	mp_writer_init(&w, out.f, o.output);
	hdr_write(&w.pk, SCHEMA_TOK, "flow2tok");

	struct tokenizer tz = { 0 };
	struct progress prog;
	progress_init(&prog, o.quiet);
	int status = 0;
	char *stdin_only[] = { "-" };
	char **inputs = optind < argc ? argv + optind : stdin_only;
	int n_inputs = optind < argc ? argc - optind : 1;
	for (int i = 0; i < n_inputs && !w.failed; i++) {
		int s = tokenize_input(inputs[i], &tz, &o, &w, &prog);
		if (s && !status)
			status = s;
	}
	progress_done(&prog);
	if (mp_writer_flush(&w) < 0) {
		warn("%s", strcmp(o.output, "-") ? o.output : "stdout");
		atomic_abort(&out);
		return EX_IOERR;
	}
	if (status)
		atomic_fail(&out, tz.flows, plural(tz.flows, "token record", "token records"));
	else
		atomic_commit(&out);
	summary(&tz, &o);
	free(tz.tokens);
	free(tz.wire_delta);
	free(tz.index);
	free(tz.ts_ns);
	return status;
}
