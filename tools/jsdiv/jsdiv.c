/* jsdiv: how far apart two sets of traffic are, field by field: reads two
 * captures (pcap, pcapng; grouped into flows by pcap2flow) or flow streams,
 * bins each packet and flow field (jsdiv(1), BINNING) and prints the
 * Jensen-Shannon divergence (base 2), total variation and Hellinger distance
 * of every field, as a table, as JSON, and optionally as histogram plots
 * through gnuplot. The fields and their histograms live in tools/eval. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "../eval/fields.h"
#include "../eval/input.h"
#include "json.h"

static const char usage[] =
	"usage: jsdiv [-q] [--json] [--fields LIST] [-m max] [--plot DIR] [-t secs] [--ip-layer]\n"
	"             file1 file2\n"
	"Compares two captures (pcap, pcapng) or flow streams (pcap2flow) field by\n"
	"field: Jensen-Shannon divergence (base 2), total variation and Hellinger\n"
	"distance between the histograms of each field. \"-\" is stdin (one side).\n"
	"      --fields LIST        only these fields: names, f1..f6, or the groups\n"
	"                           packet and flow, comma-separated\n"
	"      --json               one JSON document instead of the table\n"
	"  -m, --max-jsd X          exit 1 when a field's divergence exceeds X\n"
	"      --plot DIR           write DIR/FIELD.png, both histograms overlaid\n"
	"  -t, --idle-timeout SECS  captures: end a flow after SECS without packets (120)\n"
	"      --ip-layer           compare packets from their IP header on (sides of\n"
	"                           different link types); frames without one left out\n"
	"  -q, --quiet              no progress on the terminal\n"
	"  -h, --help               this text\n"
	"  -V, --version            version and libraries\n"
	"Packet fields: src_ip dst_ip src_port dst_port pkt_len ttl ip_proto tcp_flags\n"
	"  tcp_window iat. Flow fields: in_pkts (f1) out_frac (f2) in_frac (f3)\n"
	"  out_order_std (f4) out_pkts (f5) alt_conc_sum (f6) flow_pkts flow_bytes\n"
	"  duration. Captures are read through pcap2flow --all. Binning and\n"
	"  definitions: jsdiv(1).\n";

#define PROGRESS_EVERY 65536
#define PLOT_TOP 30 /* categorical plots: the most frequent values */

/* ------------------------------------------------------------ the comparison */

struct side {
	const char *path;    /* as given */
	const char *name;    /* for messages */
	enum input_format format;
	struct linktype_set linktypes;
};

struct compare {
	struct field_set fs;
	struct side side[2];
	struct progress progress;
};

/* Reads one side's flow records into the histograms. */
static void read_side(struct compare *c, int k, double idle, int ip_layer)
{
	struct side *s = &c->side[k];
	struct input in;
	input_open(&in, s->path, idle);
	in.ip_layer = ip_layer;
	s->format = in.format;
	const struct flow_rec *f;
	uint64_t records = 0, last_tick = 0;
	while ((f = input_next(&in))) {
		field_set_add_flow(&c->fs, k, f);
		records++;
		if (c->fs.packets[k] / PROGRESS_EVERY != last_tick) {
			last_tick = c->fs.packets[k] / PROGRESS_EVERY;
			progress_tick(&c->progress, "%s: %" PRIu64 " packets", s->name, c->fs.packets[k]);
		}
	}
	input_close(&in);
	s->linktypes = in.linktypes;
	c->fs.skipped[k] += in.not_ip;
	field_set_warn_skipped(&c->fs, k, s->name);
	if (c->fs.packets[k] == 0)
		errx(EX_DATAERR, "%s: no IP packets to compare (%" PRIu64 " flow record%s)", s->name,
		     records, records == 1 ? "" : "s");
}

/* ------------------------------------------------------------ results */

static void print_table(const struct compare *c, const struct field_result *res)
{
	for (int k = 0; k < 2; k++) {
		const struct side *s = &c->side[k];
		uint64_t packets = c->fs.packets[k], flows = c->fs.flows[k];
		printf("%c: %s (%s): %" PRIu64 " IP packet%s in %" PRIu64 " flow%s", "ab"[k], s->name,
		       input_format_names[s->format], packets, packets == 1 ? "" : "s", flows,
		       flows == 1 ? "" : "s");
		if (c->fs.skipped[k])
			printf(", %" PRIu64 " other frames left out", c->fs.skipped[k]);
		putchar('\n');
	}
	printf("\n%-14s %7s %7s %9s %12s %12s\n", "field", "jsd", "tvd", "hellinger", "n(a)", "n(b)");
	for (int i = 0; i < N_FIELDS; i++) {
		if (!c->fs.selected[i])
			continue;
		if (res[i].defined)
			printf("%-14s %7.4f %7.4f %9.4f", field_defs[i].name, res[i].d.jsd, res[i].d.tvd,
			       res[i].d.hellinger);
		else
			printf("%-14s %7s %7s %9s", field_defs[i].name, "-", "-", "-");
		printf(" %12" PRIu64 " %12" PRIu64 "\n", c->fs.hist[i].total[0], c->fs.hist[i].total[1]);
	}
	double mp = field_mean_jsd(res, 0), mf = field_mean_jsd(res, 1);
	printf("\nmean jsd:");
	if (!isnan(mp))
		printf(" packet fields %.4f", mp);
	if (!isnan(mf))
		printf("%s flow fields %.4f", isnan(mp) ? "" : ",", mf);
	if (isnan(mp) && isnan(mf))
		printf(" -");
	putchar('\n');
}

static void print_json(const struct compare *c, const struct field_result *res)
{
	putchar('{');
	for (int k = 0; k < 2; k++) {
		const struct side *s = &c->side[k];
		printf("\"%c\":{\"source\":", "ab"[k]);
		json_string(stdout, s->path);
		printf(",\"format\":\"%s\",\"packets\":%" PRIu64 ",\"flows\":%" PRIu64
		       ",\"skipped\":%" PRIu64 "},", input_format_names[s->format], c->fs.packets[k],
		       c->fs.flows[k], c->fs.skipped[k]);
	}
	printf("\n\"fields\":[");
	const char *sep = "\n";
	for (int i = 0; i < N_FIELDS; i++) {
		if (!c->fs.selected[i])
			continue;
		printf("%s{\"field\":\"%s\",\"level\":\"%s\",\"jsd\":", sep, field_defs[i].name,
		       field_is_flow(i) ? "flow" : "packet");
		json_number(stdout, res[i].defined ? res[i].d.jsd : NAN, JSON_DIGITS);
		fputs(",\"tvd\":", stdout);
		json_number(stdout, res[i].defined ? res[i].d.tvd : NAN, JSON_DIGITS);
		fputs(",\"hellinger\":", stdout);
		json_number(stdout, res[i].defined ? res[i].d.hellinger : NAN, JSON_DIGITS);
		printf(",\"n_a\":%" PRIu64 ",\"n_b\":%" PRIu64 ",\"bins\":%zu}", c->fs.hist[i].total[0],
		       c->fs.hist[i].total[1], res[i].bins);
		sep = ",\n";
	}
	fputs("],\n\"mean_jsd_packet\":", stdout);
	json_number(stdout, field_mean_jsd(res, 0), JSON_DIGITS);
	fputs(",\"mean_jsd_flow\":", stdout);
	json_number(stdout, field_mean_jsd(res, 1), JSON_DIGITS);
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
	if (field_defs[id].bin == BIN_ADDR && key < c->fs.addrs.n) {
		const struct addr *a = (const struct addr *)c->fs.addrs.e[key].s;
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
	const struct hist2 *h = &c->fs.hist[id];
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
	fprintf(gp, "set xlabel '%s (the %d most frequent values)'\n", field_defs[id].unit, PLOT_TOP);
	fputs("plot $d using 2:xtic(1) title ta, '' using 3 title tb\n", gp);
}

/* Binned numbers: both histograms as steps over the bins' lower edges, with
 * a zero step where bins are empty on both sides. */
static void plot_binned(FILE *gp, const struct compare *c, int id, const struct hist_bin *b, size_t n)
{
	const struct field_def *d = &field_defs[id];
	const struct hist2 *h = &c->fs.hist[id];
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

static void plot_field(FILE *gp, const struct compare *c, const struct field_result *res, int id,
		       const char *dir)
{
	size_t n;
	struct hist_bin *b = hist2_sorted(&c->fs.hist[id], &n);
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.png", dir, field_defs[id].name);
	fputs("reset\nset terminal pngcairo size 1000,560\nset output ", gp);
	gp_quote(gp, path);
	fprintf(gp, "\nset key top right\nset ylabel 'share of values'\nset grid ytics\n");
	if (res[id].defined)
		fprintf(gp, "set title '%s: JSD %.4f, TVD %.4f, Hellinger %.4f' noenhanced\n",
			field_defs[id].name, res[id].d.jsd, res[id].d.tvd, res[id].d.hellinger);
	else
		fprintf(gp, "set title '%s: no values on either side' noenhanced\n", field_defs[id].name);
	if (n == 0)
		fputs("set xrange [0:1]\nplot 2 notitle\n", gp);
	else if (field_defs[id].bin == BIN_ADDR || field_defs[id].bin == BIN_EXACT)
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

static void plot_all(const struct compare *c, const struct field_result *res, const char *dir)
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
		if (c->fs.selected[i])
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
			int group = (strcmp(w, "packet") == 0 && !field_is_flow(i)) ||
				    (strcmp(w, "flow") == 0 && field_is_flow(i)) || strcmp(w, "all") == 0;
			if (group || strcmp(w, field_defs[i].name) == 0 ||
			    (field_defs[i].alias && strcmp(w, field_defs[i].alias) == 0))
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
	int json, quiet, ip_layer;
	double max_jsd;       /* negative: no verdict */
	const char *plot_dir;
	double idle;
};

int main(int argc, char **argv)
{
	/* long only: a short letter means one thing in every tool (README) */
	enum { OPT_FIELDS = 256, OPT_JSON, OPT_PLOT, OPT_IP_LAYER };
	static const struct option longopts[] = {
		{ "fields", required_argument, NULL, OPT_FIELDS },
		{ "ip-layer", no_argument, NULL, OPT_IP_LAYER },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "max-jsd", required_argument, NULL, 'm' },
		{ "plot", required_argument, NULL, OPT_PLOT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "idle-timeout", required_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct compare c;
	struct options o = { 0, 0, 0, -1, NULL, 120 };
	const char *field_list = "all";
	int ch;

	cli_init(argc, argv);
	while ((ch = cli_getopt(argc, argv, "hm:qt:V", longopts, usage)) != -1) {
		switch (ch) {
		case OPT_FIELDS:
			field_list = optarg;
			break;
		case 'h':
			cli_help(usage);
		case OPT_JSON:
			o.json = 1;
			break;
		case 'm':
			o.max_jsd = opt_double(usage, "--max-jsd", optarg, 0, 1);
			break;
		case OPT_PLOT:
			o.plot_dir = optarg;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 't':
			o.idle = opt_double(usage, "--idle-timeout", optarg, 0, 1e9);
			break;
		case OPT_IP_LAYER:
			o.ip_layer = 1;
			break;
		case 'V': {
			const char *const libs[] = { NULL };
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
	field_set_init(&c.fs);
	select_fields(field_list, c.fs.selected);
	if (o.plot_dir)
		plot_prepare(o.plot_dir);

	progress_init(&c.progress, o.quiet);
	for (int k = 0; k < 2; k++) {
		c.side[k].path = argv[k];
		c.side[k].name = strcmp(argv[k], "-") == 0 ? "<stdin>" : argv[k];
		read_side(&c, k, o.idle, o.ip_layer);
	}
	progress_done(&c.progress);
	linktypes_warn(&c.side[0].linktypes, c.side[0].name, &c.side[1].linktypes, c.side[1].name,
		       o.ip_layer);

	struct field_result res[N_FIELDS];
	field_set_compare(&c.fs, res);
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
	field_set_free(&c.fs);
	return exceeded ? 1 : 0;
}
