/* labels.c: the flow table behind pcap2flow --labels. The table (nDPI's
 * flow_labels.tsv layout, or a Zeek conn.log) is read whole at the start,
 * its rows normalised to pcap2flow's bidirectional key; for each capture
 * the rows naming it go into an open-addressing hash, so that a flow costs
 * one lookup when it opens and nothing per packet. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bytes.h"
#include "cli.h"
#include "intern.h"
#include "labels.h"

#define NONE INTERN_NONE /* no capture, no label */
#define PROTO_TCP 6
#define PROTO_UDP 17
#define VLAN_MAX 4095

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* ------------------------------------------------------------ the table */

/* pcap2flow's flow key without the VLAN ids: endpoint a is the smaller
 * (address, port). */
struct tuple {
	uint8_t a[16], b[16];
	uint16_t port_a, port_b;
	uint8_t proto, ip_version, pad[2]; /* pad: zero */
};

struct row {
	struct tuple key;
	uint16_t vlan;
	uint8_t has_vlan;
	uint8_t ambiguous;      /* left out: an address nDPI wrote ambiguously */
	uint32_t capture;       /* interned base name; NONE in a table without */
	uint32_t label;         /* interned; NONE: left out (filter, no label) */
	uint64_t line;
};

/* One 5-tuple (and VLAN) of the selected rows: the first row naming it,
 * and how many did. */
struct entry {
	uint64_t hash;
	size_t row;
	uint64_t n_rows;        /* 0: an empty slot */
	uint64_t used_in;       /* the last capture (t->gen) a flow matched it in */
};

struct counts {
	uint64_t flows, labelled, rows, used, left_out;
};

struct label_table {
	const char *path;
	int quiet;
	int keyed;              /* rows name their capture */
	struct intern str;      /* labels and capture names, each kept once */
	struct row *rows;
	size_t n_rows, rows_cap;
	/* the selection: the rows of one capture, hashed */
	uint32_t selected;      /* its capture (NONE: none the table names) */
	struct entry *slot;     /* NULL before the first capture */
	size_t mask;
	uint64_t sel_rows, sel_left_out;
	uint64_t gen;           /* counts the captures */
	struct counts file, total;
};

static uint64_t tuple_hash(const struct tuple *k)
{
	uint64_t w[5];
	_Static_assert(sizeof *k == sizeof w, "a tuple is hashed as five words");
	memcpy(w, k, sizeof w);
	return hash_words(w, 5);
}

/* The key of two endpoints in either order, as pcap2flow's make_key puts
 * them; ports count only for TCP and UDP, as they do there. */
static void tuple_make(struct tuple *k, const uint8_t *x, uint16_t port_x, const uint8_t *y,
		       uint16_t port_y, uint8_t proto, uint8_t ip_version)
{
	if (proto != PROTO_TCP && proto != PROTO_UDP)
		port_x = port_y = 0;
	int cmp = memcmp(x, y, 16);
	if (cmp == 0)
		cmp = (int)port_x - (int)port_y;
	int x_is_a = cmp <= 0;
	memset(k, 0, sizeof *k);
	memcpy(k->a, x_is_a ? x : y, 16);
	memcpy(k->b, x_is_a ? y : x, 16);
	k->port_a = x_is_a ? port_x : port_y;
	k->port_b = x_is_a ? port_y : port_x;
	k->proto = proto;
	k->ip_version = ip_version;
}

/* ------------------------------------------------------------ reading it */

/* Where the columns a row needs are (field numbers from 0, -1 absent). */
struct columns {
	int key, proto, src, src_port, dst, dst_port, vlan, label;
	int *filter;            /* one per --label-filter */
	int max;
};

struct parser {
	struct label_table *t;
	const struct label_options *o;
	enum label_format format;
	uint64_t line;
	char **field;
	size_t n_field, field_cap;
	struct columns col;
	int have_columns;
	char *unset, *empty;    /* Zeek: the markers of no value */
};

/* The fields of a line, split at tabs in place. */
static void split(struct parser *p, char *line)
{
	p->n_field = 0;
	for (;;) {
		grow((void **)&p->field, &p->field_cap, p->n_field + 1, sizeof *p->field);
		p->field[p->n_field++] = line;
		char *tab = strchr(line, '\t');
		if (!tab)
			break;
		*tab = '\0';
		line = tab + 1;
	}
}

/* A bad table: exits EX_DATAERR naming it and the line. */
static _Noreturn __attribute__((format(printf, 2, 3))) void bad(const struct parser *p,
								 const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	errx(EX_DATAERR, "%s:%" PRIu64 ": %s", p->t->path, p->line, why);
}

/* The field number of a header column, counting from field first (1
 * passes over Zeek's "#fields"), or -1. */
static int find_column(const struct parser *p, size_t first, const char *name)
{
	for (size_t i = first; i < p->n_field; i++)
		if (strcmp(p->field[i], name) == 0)
			return (int)(i - first);
	return -1;
}

static int need_column(struct parser *p, size_t first, const char *name)
{
	int c = find_column(p, first, name);
	if (c < 0)
		bad(p, "no column \"%s\"", name);
	if (c > p->col.max)
		p->col.max = c;
	return c;
}

/* The columns from a header line (its fields split, from field first). */
static void read_header(struct parser *p, size_t first)
{
	const struct label_options *o = p->o;
	struct columns *c = &p->col;
	int zeek = p->format == LABELS_ZEEK;
	c->max = 0;
	c->key = -1;
	if (o->key || !zeek)
		c->key = need_column(p, first, o->key ? o->key : "pcap");
	if (zeek) {
		c->src = need_column(p, first, "id.orig_h");
		c->src_port = need_column(p, first, "id.orig_p");
		c->dst = need_column(p, first, "id.resp_h");
		c->dst_port = need_column(p, first, "id.resp_p");
		c->proto = need_column(p, first, "proto");
	} else {
		c->proto = need_column(p, first, "l4");
		c->src = need_column(p, first, "src");
		c->dst = need_column(p, first, "dst");
		c->src_port = c->dst_port = -1;
	}
	c->label = need_column(p, first, o->column ? o->column : zeek ? "service" : "category");
	for (size_t i = 0; i < o->n_filters; i++)
		c->filter[i] = need_column(p, first, o->filters[i].column);
	c->vlan = find_column(p, first, "vlan");
	if (c->vlan > c->max)
		c->max = c->vlan;
	p->have_columns = 1;
}

/* IP protocol numbers by the names tables use (nDPI's upper case, Zeek's
 * lower case), or a number. Returns -1 when unknown. */
static int parse_proto(const char *s)
{
	static const struct {
		const char *name;
		int number;
	} names[] = {
		{"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmpv6", 58}, {"ipv6-icmp", 58},
		{"icmp6", 58}, {"igmp", 2}, {"gre", 47}, {"esp", 50}, {"ah", 51},
		{"ospf", 89}, {"pim", 103}, {"vrrp", 112}, {"pgm", 113}, {"l2tp", 115},
		{"sctp", 132},
	};
	uint64_t v;
	if (parse_u64(s, 0, 255, &v) == 0)
		return (int)v;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].number;
	return -1;
}

/* nDPI's rewriting of inet_ntop's text, in one pass from the left: each
 * ":0:" becomes "::", the scan going on after it. */
static void ndpi_zero_groups(char *s)
{
	size_t from = 0, to = 0;
	while (s[from]) {
		if (s[from] == ':' && s[from + 1] == '0' && s[from + 2] == ':') {
			s[to++] = ':';
			s[to++] = ':';
			from += 3;
		} else {
			s[to++] = s[from++];
		}
	}
	s[to] = '\0';
}

/* An IPv6 address as nDPI's reader writes it: inet_ntop's text with every
 * ":0:" then turned into "::" (ndpi_patchIPv6Address). A single zero group
 * next to the compressed run so gives a second "::", which inet_pton
 * refuses. Each "::" in turn is read as the compressed run and the others
 * as one zero group; the readings nDPI would write as s are kept. Returns
 * how many there were (the address is the first), up to 2. */
static int parse_ndpi_ipv6(const char *s, uint8_t addr[16])
{
	size_t len = strlen(s);
	char text[INET6_ADDRSTRLEN + 16], back[INET6_ADDRSTRLEN];
	int found = 0;
	if (len + 16 > sizeof text)
		return 0;
	for (const char *run = strstr(s, "::"); run && found < 2; run = strstr(run + 1, "::")) {
		/* the other "::" become ":0:" */
		size_t n = 0;
		for (const char *c = s; *c; c++) {
			text[n++] = *c;
			if (c[0] == ':' && c[1] == ':' && c != run) {
				text[n++] = '0';
				text[n++] = ':';
				c++;
			}
		}
		text[n] = '\0';
		uint8_t a[16];
		if (inet_pton(AF_INET6, text, a) != 1 || !inet_ntop(AF_INET6, a, back, sizeof back))
			continue;
		ndpi_zero_groups(back);
		if (strcmp(back, s) != 0)
			continue;
		if (found++ == 0)
			memcpy(addr, a, 16);
	}
	return found;
}

/* Whether s has "::" twice: the mark of nDPI's rewriting. */
static int two_runs(const char *s)
{
	const char *run = strstr(s, "::");
	return run && strstr(run + 2, "::");
}

/* An address: 16 bytes, IPv4 in the first four. Returns the IP version,
 * 0 when s is not an address, -1 when it is nDPI's ambiguous text of one
 * (see parse_ndpi_ipv6). */
static int parse_addr(const char *s, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, addr) == 1)
		return 6;
	if (two_runs(s)) {
		int readings = parse_ndpi_ipv6(s, addr);
		return readings == 1 ? 6 : readings > 1 ? -1 : 0;
	}
	return 0;
}

/* An endpoint as nDPI writes it: "a.b.c.d:port", "[v6]:port", or either
 * without a port (0), or a bare IPv6 address. s is changed. Returns the IP
 * version, 0 when unparsable, -1 when ambiguous (parse_addr). */
static int parse_endpoint(char *s, uint8_t addr[16], uint16_t *port)
{
	char *port_s = NULL, *addr_s = s;
	if (s[0] == '[') {
		char *close = strchr(s, ']');
		if (!close || (close[1] != '\0' && close[1] != ':'))
			return 0;
		*close = '\0';
		addr_s = s + 1;
		if (close[1] == ':')
			port_s = close + 2;
	} else {
		char *colon = strchr(s, ':');
		if (colon && !strchr(colon + 1, ':')) { /* one colon: IPv4 and port */
			*colon = '\0';
			port_s = colon + 1;
		}
	}
	uint64_t v = 0;
	if (port_s && parse_u64(port_s, 0, 65535, &v) < 0)
		return 0;
	*port = (uint16_t)v;
	int version = parse_addr(addr_s, addr);
	if (s[0] == '[' && version == 4)
		return 0;
	return version;
}

/* Zeek writes a missing value as the unset marker, and an empty one as
 * the empty marker. */
static int no_value(const struct parser *p, const char *s)
{
	return *s == '\0' ||
	       (p->format == LABELS_ZEEK && (strcmp(s, p->unset) == 0 || strcmp(s, p->empty) == 0));
}

/* The row's key from its endpoints. Returns 0 when an address is
 * ambiguous (nDPI's text, parse_ndpi_ipv6): the row is left out. */
static int read_endpoints(struct parser *p, struct row *r, uint8_t proto)
{
	const struct columns *c = &p->col;
	uint8_t addr[2][16];
	uint16_t port[2] = {0, 0};
	int version[2];
	int col[2] = {c->src, c->dst}, port_col[2] = {c->src_port, c->dst_port};
	for (int i = 0; i < 2; i++) {
		char *s = p->field[col[i]];
		if (port_col[i] < 0) {
			char text[128];
			snprintf(text, sizeof text, "%s", s);
			version[i] = parse_endpoint(s, addr[i], &port[i]);
			if (!version[i])
				bad(p, "unparsable endpoint \"%s\"", text);
			continue;
		}
		version[i] = parse_addr(s, addr[i]);
		if (!version[i])
			bad(p, "unparsable address \"%s\"", s);
		uint64_t v;
		if (parse_u64(p->field[port_col[i]], 0, 65535, &v) < 0)
			bad(p, "unparsable port \"%s\"", p->field[port_col[i]]);
		port[i] = (uint16_t)v;
	}
	if (version[0] < 0 || version[1] < 0)
		return 0;
	if (version[0] != version[1])
		bad(p, "an IPv4 and an IPv6 endpoint");
	tuple_make(&r->key, addr[0], port[0], addr[1], port[1], proto, (uint8_t)version[0]);
	return 1;
}

static void read_row(struct parser *p)
{
	struct label_table *t = p->t;
	const struct columns *c = &p->col;
	if (!p->have_columns)
		bad(p, "a row before the header");
	if ((int)p->n_field <= c->max)
		bad(p, "only %zu fields, %d needed", p->n_field, c->max + 1);
	grow((void **)&t->rows, &t->rows_cap, t->n_rows + 1, sizeof *t->rows);
	struct row *r = &t->rows[t->n_rows];
	memset(r, 0, sizeof *r);
	r->line = p->line;
	r->capture = NONE;
	r->label = NONE;
	int usable = 1;
	if (c->key >= 0) {
		const char *name = base_name(p->field[c->key]);
		r->capture = intern_add(&t->str, name, strlen(name));
	}
	for (size_t i = 0; i < p->o->n_filters; i++) {
		const char *prefix = p->o->filters[i].prefix;
		if (strncmp(p->field[c->filter[i]], prefix, strlen(prefix)) != 0)
			usable = 0;
	}
	const char *label = p->field[c->label];
	if (no_value(p, label))
		usable = 0;
	int proto = parse_proto(p->field[c->proto]);
	if (proto < 0 && p->format == LABELS_ZEEK && strcmp(p->field[c->proto], "unknown_transport") == 0)
		usable = 0; /* Zeek saw no protocol it knows: nothing to match */
	else if (proto < 0)
		bad(p, "unknown transport \"%s\"", p->field[c->proto]);
	if (c->vlan >= 0 && !no_value(p, p->field[c->vlan])) {
		uint64_t v;
		if (parse_u64(p->field[c->vlan], 0, VLAN_MAX, &v) < 0)
			bad(p, "unparsable VLAN id \"%s\"", p->field[c->vlan]);
		r->vlan = (uint16_t)v;
		r->has_vlan = 1;
	}
	/* last: it cuts the endpoint fields up */
	if (!read_endpoints(p, r, (uint8_t)(proto < 0 ? 0 : proto))) {
		r->ambiguous = (uint8_t)usable;
		usable = 0;
	}
	if (usable)
		r->label = intern_add(&t->str, label, strlen(label));
	t->n_rows++;
}

/* Zeek's header lines: the field separator (a tab is all we read), the
 * markers of no value, and the columns. */
static void read_directive(struct parser *p, char *line)
{
	if (strncmp(line, "#separator ", 11) == 0) {
		if (strcmp(line + 11, "\\x09") != 0)
			bad(p, "a separator other than a tab (\\x09)");
		return;
	}
	split(p, line);
	if (p->n_field < 2)
		return;
	if (strcmp(p->field[0], "#unset_field") == 0) {
		free(p->unset);
		p->unset = xstrdup(p->field[1]);
	} else if (strcmp(p->field[0], "#empty_field") == 0) {
		free(p->empty);
		p->empty = xstrdup(p->field[1]);
	} else if (strcmp(p->field[0], "#fields") == 0) {
		read_header(p, 1);
	}
}

/* The format a table's first line shows. */
static enum label_format detect(const char *line)
{
	return strncmp(line, "#separator", 10) == 0 || strncmp(line, "#fields", 7) == 0
		       ? LABELS_ZEEK
		       : LABELS_TSV;
}

static void read_line(struct parser *p, char *line)
{
	if (p->format == LABELS_AUTO)
		p->format = detect(line);
	if (p->format == LABELS_ZEEK && line[0] == '#') {
		read_directive(p, line);
		return;
	}
	split(p, line);
	if (p->format == LABELS_TSV && !p->have_columns)
		read_header(p, 0);
	else
		read_row(p);
}

struct label_table *labels_load(const struct label_options *o)
{
	struct label_table *t = xcalloc(1, sizeof *t);
	struct parser p;
	memset(&p, 0, sizeof p);
	t->path = o->path;
	t->quiet = o->quiet;
	t->selected = NONE;
	p.t = t;
	p.o = o;
	p.format = o->format;
	p.col.filter = xcalloc(o->n_filters + 1, sizeof *p.col.filter);
	FILE *f = strcmp(o->path, "-") == 0 ? stdin : fopen(o->path, "r");
	if (!f)
		err(EX_NOINPUT, "%s", o->path);
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	p.unset = xstrdup("-");
	p.empty = xstrdup("(empty)");
	while ((n = getline(&buf, &cap, f)) >= 0) {
		p.line++;
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			buf[--n] = '\0';
		if (n == 0)
			continue;
		read_line(&p, buf);
	}
	if (ferror(f))
		err(EX_IOERR, "%s", o->path);
	if (!p.have_columns)
		errx(EX_DATAERR, "%s: no header line", o->path);
	t->keyed = p.col.key >= 0;
	free(buf);
	free(p.field);
	free(p.col.filter);
	free(p.unset);
	free(p.empty);
	if (f != stdin)
		fclose(f);
	return t;
}

/* ------------------------------------------------------------ selecting */

static int same_place(const struct row *x, const struct row *y)
{
	return memcmp(&x->key, &y->key, sizeof x->key) == 0 && x->has_vlan == y->has_vlan &&
	       x->vlan == y->vlan;
}

/* Hashes the rows of a capture (all, unkeyed) that give labels; a second
 * row for the same 5-tuple and VLAN only counts, and is a conflict when its
 * label differs. Says so, and which rows with an address nDPI wrote
 * ambiguously would have given labels. */
static void select_rows(struct label_table *t, uint32_t capture, const char *name)
{
	size_t n = 0;
	uint64_t ambiguous = 0, first_ambiguous = 0;
	t->sel_rows = t->sel_left_out = 0;
	for (size_t i = 0; i < t->n_rows; i++) {
		const struct row *r = &t->rows[i];
		if (t->keyed && r->capture != capture)
			continue;
		if (r->label == NONE)
			t->sel_left_out++;
		else
			n++;
		if (r->ambiguous && !ambiguous++)
			first_ambiguous = r->line;
	}
	if (ambiguous && !t->quiet)
		warnx("%s:%" PRIu64 ": %s%s%" PRIu64 " %s left out: an IPv6 address nDPI wrote "
		      "ambiguously (\":0:\" as \"::\")",
		      t->path, first_ambiguous, t->keyed ? name : "", t->keyed ? ": " : "", ambiguous,
		      ambiguous == 1 ? "row" : "rows");
	size_t size = 16;
	while (size < 2 * n)
		size *= 2;
	free(t->slot);
	t->slot = xcalloc(size, sizeof *t->slot);
	t->mask = size - 1;
	t->sel_rows = n;
	uint64_t conflicts = 0;
	for (size_t i = 0; i < t->n_rows && n > 0; i++) {
		const struct row *r = &t->rows[i];
		if ((t->keyed && r->capture != capture) || r->label == NONE)
			continue;
		uint64_t h = tuple_hash(&r->key);
		size_t at = h & t->mask;
		struct entry *e;
		for (; (e = &t->slot[at])->n_rows; at = (at + 1) & t->mask)
			if (e->hash == h && same_place(&t->rows[e->row], r))
				break;
		if (e->n_rows == 0) {
			e->hash = h;
			e->row = i;
		} else if (t->rows[e->row].label != r->label) {
			conflicts++;
		}
		e->n_rows++;
	}
	if (conflicts && !t->quiet)
		warnx("%s: %s%s%" PRIu64 " %s a flow an earlier row labels differently: "
		      "the earlier row's label is used",
		      t->path, t->keyed ? name : "", t->keyed ? ": " : "", conflicts,
		      conflicts == 1 ? "row names" : "rows name");
}

void labels_begin(struct label_table *t, const char *capture)
{
	const char *name = base_name(capture);
	uint32_t id = t->keyed ? intern_find(&t->str, name, strlen(name)) : NONE;
	if (!t->slot || id != t->selected) {
		select_rows(t, id, name);
		t->selected = id;
	}
	t->gen++;
	memset(&t->file, 0, sizeof t->file);
	t->file.rows = t->sel_rows;
	t->file.left_out = t->sel_left_out;
}

static int carries_vlan(const struct label_query *q, uint16_t vlan)
{
	for (int i = 0; i < q->n_vlan && i < 2; i++)
		if (q->vlan[i] == vlan)
			return 1;
	return 0;
}

const char *labels_find(struct label_table *t, const struct label_query *q, size_t *len)
{
	struct tuple k;
	tuple_make(&k, q->addr[0], q->port[0], q->addr[1], q->port[1], q->proto, q->ip_version);
	uint64_t h = tuple_hash(&k);
	struct entry *e;
	for (size_t at = h & t->mask; (e = &t->slot[at])->n_rows; at = (at + 1) & t->mask) {
		const struct row *r = &t->rows[e->row];
		if (e->hash != h || memcmp(&r->key, &k, sizeof k) != 0)
			continue;
		if (r->has_vlan && !carries_vlan(q, r->vlan))
			continue;
		if (e->used_in != t->gen) {
			e->used_in = t->gen;
			t->file.used += e->n_rows;
		}
		t->file.labelled++;
		*len = t->str.e[r->label].len;
		return t->str.e[r->label].s;
	}
	return NULL;
}

/* ------------------------------------------------------------ summaries */

static void say_counts(const char *what, const struct counts *c)
{
	char left_out[64] = "";
	if (c->left_out)
		snprintf(left_out, sizeof left_out, " (%" PRIu64 " more filtered out or unlabelled)",
			 c->left_out);
	warnx("%s: %" PRIu64 "/%" PRIu64 " flows labelled, %" PRIu64 "/%" PRIu64
	      " table rows used%s",
	      what, c->labelled, c->flows, c->used, c->rows, left_out);
}

void labels_end(struct label_table *t, const char *msgname, uint64_t flows)
{
	struct counts *c = &t->file;
	c->flows = flows;
	t->total.flows += c->flows;
	t->total.labelled += c->labelled;
	t->total.rows += c->rows;
	t->total.used += c->used;
	t->total.left_out += c->left_out;
	if (!t->quiet)
		say_counts(msgname, c);
}

void labels_total(const struct label_table *t)
{
	char what[64];
	snprintf(what, sizeof what, "%" PRIu64 " captures", t->gen);
	if (!t->quiet && t->gen > 1)
		say_counts(what, &t->total);
}

void labels_free(struct label_table *t)
{
	if (!t)
		return;
	intern_free(&t->str);
	free(t->rows);
	free(t->slot);
	free(t);
}
