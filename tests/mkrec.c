/* mkrec: writes tgpt-stream(5) records described in text, so the tests of
 * flow2tok and tok2pcap can craft exactly the token runs and flows they need
 * (bad ones included). Reads the description from stdin, one item a line:
 *   hdr SCHEMA                     a header (tgpt.tok, tgpt.flow, or any string)
 *   tok [KEY=VALUE ...] : TOKENS   a token record
 *   flow [KEY=VALUE ...] : PACKETS a flow record
 *   raw HEX                        bytes as they are (damage)
 * tok keys: id source label cut=1, and side data linktype snaplen tsprec
 * first_ns wirelen=A,B,.. (wire minus captured length, signed) index=A,B,..
 * ts_ns=A,B,.. (any of them turns side data on; the others default to 1,
 * 262144, 9, 0, zeros, 0..n-1 for n START
 * tokens). TOKENS: S E C P (START END CLS PAD), a decimal id, xHEX (one token
 * per byte), dSECONDS (8 big-endian float64 bytes: d0.5, dnan, d-inf), zN (N
 * zero bytes).
 * flow keys: id source label linktype snaplen tsprec; PACKETS: TS_NS/HEX or
 * TS_NS/WIRELEN/INDEX/DIR/HEX. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "record.h"
#include "stream.h"

#define MAX_ITEMS 4096

struct list {
	uint64_t v[MAX_ITEMS];
	size_t n;
};

static void parse_list(const char *s, struct list *l)
{
	char *copy = xstrdup(s), *save = NULL;
	l->n = 0;
	for (char *w = strtok_r(copy, ",", &save); w && l->n < MAX_ITEMS; w = strtok_r(NULL, ",", &save))
		l->v[l->n++] = *w == '-' ? (uint64_t)strtoll(w, NULL, 0) : strtoull(w, NULL, 0);
	free(copy);
}

static size_t parse_hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (; s[0] && s[1] && n < cap; s += 2) {
		char b[3] = { s[0], s[1], 0 };
		out[n++] = (uint8_t)strtoul(b, NULL, 16);
	}
	return n;
}

/* Appends the tokens one word stands for. */
static void add_tokens(const char *w, uint16_t **tok, size_t *n, size_t *cap)
{
	static uint8_t bytes[MAX_PACKET_BYTES];
	size_t k = 0;
	if (strcmp(w, "S") == 0 || strcmp(w, "E") == 0 || strcmp(w, "C") == 0 || strcmp(w, "P") == 0) {
		grow((void **)tok, cap, *n + 1, sizeof **tok);
		(*tok)[(*n)++] = w[0] == 'S' ? TOK_START : w[0] == 'E' ? TOK_END : w[0] == 'C' ? TOK_CLS : TOK_PAD;
		return;
	}
	if (w[0] == 'x') {
		k = parse_hex(w + 1, bytes, sizeof bytes);
	} else if (w[0] == 'd') {
		double d = strtod(w + 1, NULL);
		uint64_t bits;
		memcpy(&bits, &d, 8);
		for (k = 0; k < 8; k++)
			bytes[k] = (uint8_t)(bits >> (56 - 8 * k));
	} else if (w[0] == 'z') {
		k = strtoul(w + 1, NULL, 10);
		if (k > sizeof bytes)
			errx(EX_DATAERR, "%s: too many bytes", w);
		memset(bytes, 0, k);
	} else {
		grow((void **)tok, cap, *n + 1, sizeof **tok);
		(*tok)[(*n)++] = (uint16_t)strtoul(w, NULL, 0);
		return;
	}
	grow((void **)tok, cap, *n + k, sizeof **tok);
	for (size_t i = 0; i < k; i++)
		(*tok)[(*n)++] = bytes[i];
}

static void write_tok(msgpack_packer *pk, char *rest)
{
	static struct list wirelen, index, ts;
	struct tok_rec t = { 0 };
	uint16_t *tok = NULL;
	size_t n = 0, cap = 0, starts = 0;
	int side = 0, in_tokens = 0, have_wl = 0, have_ix = 0, have_ts = 0;
	t.linktype = 1, t.snaplen = 262144, t.tsprec = 9;
	char *save = NULL;
	for (char *w = strtok_r(rest, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		if (in_tokens) {
			starts += strcmp(w, "S") == 0;
			add_tokens(w, &tok, &n, &cap);
			continue;
		}
		if (strcmp(w, ":") == 0) {
			in_tokens = 1;
			continue;
		}
		char *eq = strchr(w, '=');
		if (!eq)
			errx(EX_DATAERR, "tok: '%s' is not KEY=VALUE", w);
		*eq++ = 0;
		if (strcmp(w, "id") == 0) t.id = strtoull(eq, NULL, 0);
		else if (strcmp(w, "source") == 0) t.source = eq, t.source_len = strlen(eq);
		else if (strcmp(w, "label") == 0) t.label = eq, t.label_len = strlen(eq);
		else if (strcmp(w, "cut") == 0) t.cut = atoi(eq);
		else if ((side = 1) && strcmp(w, "linktype") == 0) t.linktype = (uint32_t)strtoul(eq, NULL, 0);
		else if (strcmp(w, "snaplen") == 0) t.snaplen = (uint32_t)strtoul(eq, NULL, 0);
		else if (strcmp(w, "tsprec") == 0) t.tsprec = (uint8_t)atoi(eq);
		else if (strcmp(w, "first_ns") == 0) t.first_ns = strtoull(eq, NULL, 0);
		else if (strcmp(w, "wirelen") == 0) parse_list(eq, &wirelen), have_wl = 1;
		else if (strcmp(w, "index") == 0) parse_list(eq, &index), have_ix = 1;
		else if (strcmp(w, "ts_ns") == 0) parse_list(eq, &ts), have_ts = 1;
		else errx(EX_DATAERR, "tok: unknown key '%s'", w);
	}
	int64_t wl[MAX_ITEMS];
	if (side) {
		t.has_side = 1;
		t.n_packets = have_ix ? index.n : have_wl ? wirelen.n : starts;
		if (t.n_packets > MAX_ITEMS)
			errx(EX_DATAERR, "tok: more than %d packets", MAX_ITEMS);
		for (size_t i = 0; i < t.n_packets; i++) {
			wl[i] = have_wl && i < wirelen.n ? (int64_t)wirelen.v[i] : 0;
			if (!have_ix)
				index.v[i] = i;
		}
		t.wire_delta = wl;
		t.index = index.v;
		t.ts_ns = have_ts ? ts.v : NULL;
	}
	t.n_tokens = n;
	tok_write(pk, &t, tok);
	free(tok);
}

static void write_flow(msgpack_packer *pk, char *rest)
{
	static struct packet pkts[MAX_ITEMS];
	struct flow_rec f = { 0 };
	f.linktype = 1, f.snaplen = 262144, f.tsprec = 9;
	int in_packets = 0;
	char *save = NULL;
	for (char *w = strtok_r(rest, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		if (in_packets) {
			if (f.n_packets >= MAX_ITEMS)
				errx(EX_DATAERR, "flow: too many packets");
			struct packet *p = &pkts[f.n_packets];
			char *field[5];
			int nf = 0;
			char *s2 = NULL;
			for (char *x = strtok_r(w, "/", &s2); x && nf < 5; x = strtok_r(NULL, "/", &s2))
				field[nf++] = x;
			if (nf != 2 && nf != 5)
				errx(EX_DATAERR, "flow: packet '%s' is not TS/HEX or TS/WIRELEN/INDEX/DIR/HEX", w);
			const char *hex = field[nf - 1];
			size_t len = strlen(hex) / 2;
			uint8_t *buf = xmalloc(len);
			p->caplen = (uint32_t)parse_hex(hex, buf, len);
			p->data = buf;
			p->ts_ns = strtoull(field[0], NULL, 0);
			p->wirelen = nf == 5 ? (uint32_t)strtoul(field[1], NULL, 0) : p->caplen;
			p->index = nf == 5 ? strtoull(field[2], NULL, 0) : f.n_packets;
			p->dir = nf == 5 ? (uint8_t)atoi(field[3]) : 0;
			if (f.n_packets == 0 || p->ts_ns < f.first_ns)
				f.first_ns = p->ts_ns;
			if (p->ts_ns > f.last_ns)
				f.last_ns = p->ts_ns;
			f.packets[p->dir]++;
			f.bytes[p->dir] += p->wirelen;
			f.n_packets++;
			continue;
		}
		if (strcmp(w, ":") == 0) {
			in_packets = 1;
			continue;
		}
		char *eq = strchr(w, '=');
		if (!eq)
			errx(EX_DATAERR, "flow: '%s' is not KEY=VALUE", w);
		*eq++ = 0;
		if (strcmp(w, "id") == 0) f.id = strtoull(eq, NULL, 0);
		else if (strcmp(w, "source") == 0) f.source = eq, f.source_len = strlen(eq);
		else if (strcmp(w, "label") == 0) f.label = eq, f.label_len = strlen(eq);
		else if (strcmp(w, "linktype") == 0) f.linktype = (uint32_t)strtoul(eq, NULL, 0);
		else if (strcmp(w, "snaplen") == 0) f.snaplen = (uint32_t)strtoul(eq, NULL, 0);
		else if (strcmp(w, "tsprec") == 0) f.tsprec = (uint8_t)atoi(eq);
		else errx(EX_DATAERR, "flow: unknown key '%s'", w);
	}
	f.pkt = pkts;
	flow_write(pk, &f);
	for (size_t i = 0; i < f.n_packets; i++)
		free((void *)pkts[i].data);
}

int main(int argc, char **argv)
{
	cli_init(argc, argv);
	struct mp_writer w;
	mp_writer_init(&w, stdout, "stdout");
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		char *save = NULL;
		char *kind = strtok_r(line, " \t\n", &save);
		char *rest = strtok_r(NULL, "\n", &save);
		static char empty[] = "";
		if (!rest)
			rest = empty;
		if (!kind || kind[0] == '#')
			continue;
		if (strcmp(kind, "hdr") == 0) {
			char *schema = strtok_r(rest, " \t", &save);
			hdr_write(&w.pk, schema ? schema : "", "mkrec");
		} else if (strcmp(kind, "tok") == 0) {
			write_tok(&w.pk, rest);
		} else if (strcmp(kind, "flow") == 0) {
			write_flow(&w.pk, rest);
		} else if (strcmp(kind, "raw") == 0) {
			static uint8_t bytes[65536];
			size_t n = parse_hex(rest, bytes, sizeof bytes);
			fwrite(bytes, 1, n, stdout);
		} else {
			errx(EX_DATAERR, "unknown item '%s'", kind);
		}
	}
	free(line);
	if (mp_writer_flush(&w) < 0)
		err(EX_IOERR, "stdout");
	return 0;
}
