/* pcap2flow: reads captures (pcap or pcapng files, or a live interface) and
 * writes their bidirectional flows as tgpt-stream(5) flow records, each flow
 * when it ends (idle timeout, TCP close, end of input), so memory holds only
 * the open flows. This file is the command line and the main loop; the
 * captures are read by reader.c, the flows kept by flowtable.c, written by
 * output.c, and labelled by labels.c. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "flowtable.h"
#include "labels.h"
#include "output.h"
#include "reader.h"
#include "record.h"

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

/* After FIN in both directions, the final ACKs still belong to the flow. */
#define FIN_LINGER_NS (2 * NS_PER_S)
#define LIVE_SNAPLEN 262144
#define PROGRESS_EVERY 16384

struct options {
	int all, force, quiet, verbose;
	uint64_t count;         /* 0: no limit */
	const char *filter, *label, *iface, *output;
	uint64_t idle_ns, linger_ns;
	int snaplen;
	struct label_options labels; /* labels.path: --labels given */
};


/* What the flow records of the capture being read say about it. */
struct source {
	const char *name;       /* recorded in the flows: the path as given */
	size_t name_len;
	const char *msgname;    /* for messages */
	const struct capture *cap; /* link types, snapshot lengths, precisions */
	uint64_t index;         /* packets read so far */
	unsigned warned_caplen;
};

/* The filter (-f) compiled for each link type met: a pcap-filter(7)
 * expression means different code on different link layers. */
struct filters {
	struct filter {
		uint32_t linktype;
		struct bpf_program prog;
	} *e;
	size_t n, cap;
};

struct run {
	struct options opt;
	struct out out;
	struct atomic_file *out_file;
	struct source src;
	struct filters filters;
	struct flow_table flows;
	struct label_table *labels; /* --labels */
	/* totals */
	uint64_t files, packets, filtered, flows_written, passed;
	int live_flush;         /* flush after each flow (live capture) */
	struct progress progress;
};

/* ------------------------------------------------------------ flows out */

/* The flow table's emit callback: an ended flow as a flow record. */
static void flow_emit(void *arg, struct flow *f, enum flow_end end)
{
	struct run *r = arg;
	const struct flow_key *k = &f->key;
	struct flow_rec rec;
	memset(&rec, 0, sizeof rec);
	rec.id = f->id;
	struct capture_lt lt = capture_lt_of(r->src.cap, k->linktype);
	rec.source = r->src.name;
	rec.source_len = r->src.name_len;
	rec.linktype = lt.linktype;
	rec.snaplen = lt.snaplen;
	rec.tsprec = lt.tsprec;
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
	out_flow(&r->out, &rec);
	r->flows_written++;
	if (r->live_flush)
		out_drain(&r->out);
	if (r->out.failed) {
		/* a full disk or a closed pipe: no use reading on */
		warnx("%s: %s", r->out.name, strerror(r->out.failed));
		atomic_abort(r->out_file);
		exit(EX_IOERR);
	}
}

/* ------------------------------------------------------------ packets in */

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

/* The filter's program for a link type, compiled the first time it is met;
 * NULL after a message when it does not compile. */
static const struct bpf_program *filter_for(struct run *r, uint32_t linktype)
{
	struct filters *fs = &r->filters;
	for (size_t i = 0; i < fs->n; i++)
		if (fs->e[i].linktype == linktype)
			return &fs->e[i].prog;
	pcap_t *p = pcap_open_dead(dlt_of_linktype(linktype), MAX_PACKET_BYTES);
	if (!p)
		errx(EX_OSERR, "pcap_open_dead failed");
	grow((void **)&fs->e, &fs->cap, fs->n + 1, sizeof *fs->e);
	struct filter *f = &fs->e[fs->n];
	int rc = pcap_compile(p, &f->prog, r->opt.filter, 1, PCAP_NETMASK_UNKNOWN);
	if (rc < 0)
		warnx("%s: filter \"%s\" (link type %" PRIu32 "): %s", r->src.msgname, r->opt.filter,
		      linktype, pcap_geterr(p));
	pcap_close(p);
	if (rc < 0)
		return NULL;
	f->linktype = linktype;
	return &fs->e[fs->n++].prog;
}

static void filters_free(struct filters *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		pcap_freecode(&fs->e[i].prog);
	free(fs->e);
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
	struct packet pk = {
		.ts_ns = raw->ts_ns,
		.caplen = raw->caplen,
		.wirelen = raw->wirelen,
		.index = index,
	};
	cap_caplen(r, &pk);
	flows_add(&r->flows, &pk, raw->data, raw->linktype);
	if (r->passed % PROGRESS_EVERY == 0)
		progress_tick(&r->progress, "%" PRIu64 " packets, %zu flows open",
			      r->packets, r->flows.n_open);
}

static int count_reached(const struct run *r)
{
	return r->opt.count && r->passed >= r->opt.count;
}

/* A capture opened: its flows start with id 0 and a clock of its own. */
static void source_begin(struct run *r, const char *name, const struct capture *c)
{
	memset(&r->src, 0, sizeof r->src);
	r->src.name = name;
	r->src.name_len = strlen(name);
	r->src.msgname = c->msgname;
	r->src.cap = c;
	flows_begin(&r->flows, NULL);
}

/* A capture of one link type the decoder does not know would give no flow
 * but single frames (--all): nothing usable, which is an error, not an
 * empty stream. (In a pcapng file of several link types, the packets of
 * such an interface are counted as skipped.) */
static int check_linktype(const struct run *r, const struct capture *c)
{
	if (c->ng || r->opt.all || pkt_linktype_known(c->linktype))
		return 0;
	warnx("%s: link type %" PRIu32 " (%s) is not one pcap2flow decodes into flows; "
	      "--all keeps its packets, each a flow of its own", c->msgname, c->linktype,
	      pcap_datalink_val_to_name(dlt_of_linktype(c->linktype)) ?
	      pcap_datalink_val_to_name(dlt_of_linktype(c->linktype)) : "unknown");
	return EX_DATAERR;
}

/* The packets of a capture file. A mapped file's windows are looked at
 * each time the reader maps a new one: the flows keep within their budget,
 * and the windows no flow points into go once the output is written. */
static int read_packets(struct run *r, struct capture *c)
{
	const struct bpf_program *prog = NULL;
	uint32_t prog_linktype = 0;
	struct windows *win = capture_windows(c);
	const struct window *seen = NULL;
	struct raw raw;
	r->flows.win = win;
	while (!count_reached(r)) {
		int rc = capture_next(c, &raw);
		if (rc == CAP_END)
			break;
		if (rc == CAP_ERROR) {
			warnx("%s: packet %" PRIu64 ": %s", r->src.msgname, r->src.index + 1, c->why);
			return EX_DATAERR;
		}
		if (win && win->newest != seen) {
			seen = win->newest;
			if (flows_settle_windows(&r->flows)) {
				out_drain(&r->out);
				capture_unmap_unused(c);
			}
		}
		if (r->opt.filter && (!prog || raw.linktype != prog_linktype)) {
			prog_linktype = raw.linktype;
			if (!(prog = filter_for(r, raw.linktype)))
				return EX_USAGE;
		}
		take_packet(r, prog, &raw);
	}
	return 0;
}

/* Reads one capture file into flows. Returns 0 or an exit status; either
 * way every packet read before a problem is written. */
static int read_file(struct run *r, const char *path)
{
	struct capture c;
	const char *msgname = strcmp(path, "-") == 0 ? "<stdin>" : path;
	r->files++;
	int status = capture_open(&c, path, msgname);
	if (status)
		return status;
	source_begin(r, path, &c);
	/* a filter that does not compile for the capture's link type stops
	 * the run before any packet is read */
	status = check_linktype(r, &c);
	if (!status && r->opt.filter && !c.ng && !filter_for(r, c.linktype))
		status = EX_USAGE;
	if (status) {
		capture_close(&c);
		return status;
	}
	uint64_t flows_before = r->flows_written;
	if (r->labels)
		labels_begin(r->labels, path);
	status = read_packets(r, &c);
	flows_end_source(&r->flows); /* while the flows' windows are known */
	out_drain(&r->out); /* the flows written may point into the file */
	if (r->labels)
		labels_end(r->labels, r->src.msgname, r->flows_written - flows_before);
	if (c.ts_clamped && !r->opt.quiet)
		warnx("%s: %" PRIu64 " %s time stamps past 2554, which nanoseconds in 64 bits do not "
		      "reach: kept as the last they do", r->src.msgname, c.ts_clamped,
		      plural(c.ts_clamped, "packet has", "packets have"));
	capture_close(&c);
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

/* The filter of a live capture runs in the kernel. */
static int set_live_filter(struct run *r, pcap_t *p)
{
	if (!r->opt.filter)
		return 0;
	struct bpf_program prog;
	if (pcap_compile(p, &prog, r->opt.filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		warnx("%s: filter \"%s\": %s", r->src.msgname, r->opt.filter, pcap_geterr(p));
		return EX_USAGE;
	}
	int status = 0;
	if (pcap_setfilter(p, &prog) < 0) {
		warnx("%s: filter: %s", r->src.msgname, pcap_geterr(p));
		status = EX_USAGE;
	}
	pcap_freecode(&prog);
	return status;
}

/* Captures until SIGINT or SIGTERM (or -c); the flows' clock runs on with
 * the wall clock while the wire is quiet, so they go idle. */
static int read_live(struct run *r)
{
	struct capture c;
	r->files++;
	int status = capture_open_live(&c, r->opt.iface, r->opt.snaplen, r->opt.quiet);
	if (status)
		return status;
	source_begin(r, r->opt.iface, &c);
	r->live_flush = 1;
	status = set_live_filter(r, c.p);
	if (status) {
		capture_close(&c);
		return status;
	}
	if (r->labels)
		labels_begin(r->labels, r->opt.iface);
	live_handle = c.p;
	catch_signals();
	struct raw raw;
	while (!stop_requested && !count_reached(r)) {
		int rc = capture_next(&c, &raw);
		if (rc == CAP_PACKET) {
			take_packet(r, NULL, &raw); /* the kernel filtered */
		} else if (rc == CAP_QUIET) {
			flows_tick(&r->flows, wall_ns());
		} else if (rc == CAP_END) {
			break;
		} else {
			warnx("%s: packet %" PRIu64 ": %s", r->src.msgname, r->src.index + 1, c.why);
			status = EX_IOERR;
			break;
		}
	}
	live_handle = NULL;
	flows_end_source(&r->flows);
	if (r->labels)
		labels_end(r->labels, r->src.msgname, r->flows_written);
	capture_close(&c);
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
	while ((c = cli_getopt(argc, argv, "ac:f:hi:l:o:qs:t:vV", longopts, usage)) != -1) {
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

/* The packets in no flow, and why: said whenever there are any (unless
 * -q), as a packet left out is data lost to what comes after. */
static void skipped_summary(const struct run *r)
{
	const struct flow_table *t = &r->flows;
	uint64_t n = t->skipped + t->skipped_cut + t->skipped_linktype;
	if (n == 0)
		return;
	char why[256];
	size_t at = 0;
	if (t->skipped)
		at += (size_t)snprintf(why + at, sizeof why - at, ", %" PRIu64 " not TCP or UDP",
				       t->skipped);
	if (t->skipped_cut && at < sizeof why)
		at += (size_t)snprintf(why + at, sizeof why - at,
				       ", %" PRIu64 " cut by the snapshot length before their ports",
				       t->skipped_cut);
	if (t->skipped_linktype && at < sizeof why)
		snprintf(why + at, sizeof why - at, ", %" PRIu64 " of a link type it does not decode",
			 t->skipped_linktype);
	warnx("%" PRIu64 " %s in no flow (--all keeps every packet): %s", n,
	      plural(n, "packet", "packets"), why + 2);
}

static void summary(const struct run *r)
{
	const struct flow_table *t = &r->flows;
	fprintf(stderr,
		"%s: %" PRIu64 " %s, %" PRIu64 " %s, %" PRIu64 " %s, %" PRIu64
		" packets skipped (%" PRIu64 " not TCP/UDP, %" PRIu64 " cut, %" PRIu64
		" of unknown link types), %" PRIu64 " filtered out\n",
		cli_progname(), r->files,
		r->opt.iface ? plural(r->files, "interface", "interfaces") : plural(r->files, "file", "files"),
		r->packets, plural(r->packets, "packet", "packets"), r->flows_written,
		plural(r->flows_written, "flow", "flows"),
		t->skipped + t->skipped_cut + t->skipped_linktype, t->skipped, t->skipped_cut,
		t->skipped_linktype, r->filtered);
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
	out_init(&r.out, fileno(out.f), r.opt.output ? r.opt.output : "<stdout>");
	r.out_file = &out;
	hdr_write(&r.out.pk, SCHEMA_FLOW, "pcap2flow");
	struct flow_config cfg = {
		.idle_ns = r.opt.idle_ns,
		.linger_ns = r.opt.linger_ns,
		.all = r.opt.all,
		.labels = r.labels,
		.emit = flow_emit,
		.emit_arg = &r,
	};
	flows_init(&r.flows, &cfg);
	/* the packets of written flows may go once the output is drained */
	r.out.drained = flows_drained;
	r.out.drained_arg = &r.flows;
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

	/* What was read is written, even when a capture was damaged: to the
	 * stream, or, since a failed run replaces no file, to FILE.partial. */
	out_drain(&r.out);
	if (r.out.failed) {
		warnx("%s: %s", r.out.name, strerror(r.out.failed));
		atomic_abort(&out);
		return EX_IOERR;
	}
	if (status)
		atomic_fail(&out, r.flows_written, plural(r.flows_written, "flow", "flows"));
	else
		atomic_commit(&out);
	if (r.opt.verbose)
		summary(&r);
	else if (!r.opt.quiet)
		skipped_summary(&r);
	if (r.labels)
		labels_total(r.labels);
	flows_free(&r.flows);
	filters_free(&r.filters);
	out_free(&r.out);
	labels_free(r.labels);
	free((void *)r.opt.labels.filters);
	return status;
}
