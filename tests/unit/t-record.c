/* t-record.c: unit tests of tgpt-stream(5) records: flow and token records
 * survive encode/decode field for field, the reader checks headers, schemas
 * and record types, and decoders reject inconsistent records. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "record.h"
#include "../tap.h"

static const uint8_t frame_a[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const uint8_t frame_b[] = { 0xff, 0xee };

static struct flow_rec sample_flow(struct packet *pk)
{
	struct flow_rec f = { 0 };
	f.id = 42;
	f.source = "a.pcap", f.source_len = 6;
	f.linktype = 1, f.snaplen = 65535, f.tsprec = 9;
	f.ip_version = 6, f.proto = 17;
	for (int i = 0; i < 16; i++)
		f.src_ip[i] = (uint8_t)i, f.dst_ip[i] = (uint8_t)(0xf0 + i % 16);
	f.src_port = 5353, f.dst_port = 53;
	f.n_vlan = 2, f.vlan[0] = 100, f.vlan[1] = 4095;
	f.first_ns = 1700000000123456789ull, f.last_ns = f.first_ns + 1000;
	f.packets[0] = 1, f.packets[1] = 1, f.bytes[0] = 10, f.bytes[1] = 60;
	f.end = END_IDLE;
	f.label = "dns", f.label_len = 3;
	pk[0] = (struct packet){ f.first_ns, sizeof frame_a, sizeof frame_a, 7, 0, frame_a };
	pk[1] = (struct packet){ f.last_ns, sizeof frame_b, 60, 9, 1, frame_b };
	f.n_packets = 2, f.pkt = pk;
	return f;
}

/* Packs objects into a temp file and opens a record reader on it. */
static FILE *stream_file(void (*fill)(msgpack_packer *pk))
{
	FILE *f = tmpfile();
	struct mp_writer w;
	mp_writer_init(&w, f, "tmp");
	fill(&w.pk);
	mp_writer_flush(&w);
	rewind(f);
	return f;
}

static void fill_flows(msgpack_packer *pk)
{
	struct packet p[2];
	struct flow_rec f = sample_flow(p);
	hdr_write(pk, SCHEMA_FLOW, "t-record");
	flow_write(pk, &f);
	hdr_write(pk, SCHEMA_FLOW, "again"); /* concatenated streams */
	f.label = NULL, f.n_vlan = 0, f.ip_version = 0, f.id = 43;
	flow_write(pk, &f);
}

static void test_flow_round_trip(void)
{
	FILE *file = stream_file(fill_flows);
	struct rec_reader r;
	rec_open_fd(&r, fileno(file), "flows");
	struct packet p[2];
	struct flow_rec want = sample_flow(p);
	if (!ok(rec_next(&r, REC_FLOW) == REC_FLOW, "first flow record")) {
		printf("#   %s\n", r.error);
		return;
	}
	struct flow_rec *g = &r.flow;
	is_u64(g->id, 42, "id");
	ok(g->source_len == 6 && memcmp(g->source, "a.pcap", 6) == 0, "source");
	ok(g->linktype == 1 && g->snaplen == 65535 && g->tsprec == 9, "linktype, snaplen, tsprec");
	ok(g->ip_version == 6 && g->proto == 17, "ip version and protocol");
	is_mem(g->src_ip, want.src_ip, 16, "src_ip");
	is_mem(g->dst_ip, want.dst_ip, 16, "dst_ip");
	ok(g->src_port == 5353 && g->dst_port == 53, "ports");
	ok(g->n_vlan == 2 && g->vlan[0] == 100 && g->vlan[1] == 4095, "vlan ids");
	is_u64(g->first_ns, want.first_ns, "first_ns keeps every nanosecond");
	ok(g->packets[1] == 1 && g->bytes[1] == 60, "counters");
	is_int(g->end, END_IDLE, "end reason");
	ok(g->label_len == 3 && memcmp(g->label, "dns", 3) == 0, "label");
	is_int(g->n_packets, 2, "two packets");
	ok(g->pkt[1].caplen == 2 && g->pkt[1].wirelen == 60 && g->pkt[1].index == 9 &&
	   g->pkt[1].dir == 1 && memcmp(g->pkt[1].data, frame_b, 2) == 0, "second packet field for field");
	is_int(rec_next(&r, REC_FLOW), REC_FLOW, "a header in the middle is accepted");
	ok(g->label == NULL && g->n_vlan == 0 && g->ip_version == 0 && g->id == 43, "optional fields absent");
	is_int(rec_next(&r, REC_END), REC_END, "then a clean end");
	rec_close(&r);
	fclose(file);
}

static const uint16_t toks[] = { 256, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0x00, 257 };

static void fill_toks(msgpack_packer *pk)
{
	int64_t wl[2] = { 1514 - 2, -2 }; /* snaplen-cut, then damaged */
	uint64_t idx[2] = { 77, 78 };
	struct tok_rec t = { .id = 5, .label = "web", .label_len = 3, .has_side = 1, .linktype = 276,
			     .snaplen = 96, .tsprec = 6, .first_ns = 1000, .n_packets = 2,
			     .wire_delta = wl, .index = idx, .n_tokens = 13 };
	hdr_write(pk, SCHEMA_TOK, "t-record");
	tok_write(pk, &t, toks);
	struct tok_rec bare = { .id = 6, .n_tokens = 13 };
	tok_write(pk, &bare, toks);
}

static void test_tok_round_trip(void)
{
	FILE *file = stream_file(fill_toks);
	struct rec_reader r;
	rec_open_fd(&r, fileno(file), "toks");
	if (!ok(rec_next(&r, REC_TOK) == REC_TOK, "token record")) {
		printf("#   %s\n", r.error);
		return;
	}
	struct tok_rec *t = &r.tok;
	int same = t->n_tokens == 13;
	for (size_t i = 0; same && i < 13; i++)
		same = tok_at(t, i) == toks[i];
	ok(same, "tokens read back, specials above 255 included");
	ok(t->tokens_le[0] == 0x00 && t->tokens_le[1] == 0x01, "tokens are little-endian on the wire");
	ok(t->has_side && t->linktype == 276 && t->snaplen == 96 && t->tsprec == 6 && t->first_ns == 1000,
	   "side data");
	ok(t->n_packets == 2 && t->wire_delta[0] == 1512 && t->index[0] == 77, "per-packet side data");
	ok(t->wire_delta[1] == -2 && t->index[1] == 78, "a negative wire-length difference survives");
	ok(t->label_len == 3 && !t->source, "label present, source absent");
	is_int(rec_next(&r, REC_TOK), REC_TOK, "record without side data");
	ok(!t->has_side && t->n_packets == 0 && t->id == 6, "decodes with has_side 0");
	rec_close(&r);
	fclose(file);
}

/* Raw objects for the reader's checks. */
static int mode;
static void fill_bad(msgpack_packer *pk)
{
	switch (mode) {
	case 0: /* a record before any header */
		msgpack_pack_map(pk, 2);
		mp_key(pk, "t"), mp_cstr(pk, "tok");
		mp_key(pk, "tokens"), mp_bin(pk, "\0\1", 2);
		break;
	case 1: /* another schema */
		msgpack_pack_map(pk, 3);
		mp_key(pk, "t"), mp_cstr(pk, "hdr");
		mp_key(pk, "schema"), mp_cstr(pk, "other.thing");
		mp_key(pk, "v"), msgpack_pack_uint32(pk, 1);
		break;
	case 2: /* a newer version */
		msgpack_pack_map(pk, 3);
		mp_key(pk, "t"), mp_cstr(pk, "hdr");
		mp_key(pk, "schema"), mp_cstr(pk, SCHEMA_TOK);
		mp_key(pk, "v"), msgpack_pack_uint32(pk, 2);
		break;
	case 3: /* a flow stream where tokens are wanted */
		fill_flows(pk);
		break;
	case 4: /* a direction that is neither 0 nor 1 */
		hdr_write(pk, SCHEMA_FLOW, "t");
		{
			struct packet p[2];
			struct flow_rec f = sample_flow(p);
			p[1].dir = 2;
			flow_write(pk, &f);
		}
		break;
	case 5: /* not a map */
		msgpack_pack_array(pk, 0);
		break;
	case 6: /* odd number of token bytes */
		hdr_write(pk, SCHEMA_TOK, "t");
		msgpack_pack_map(pk, 2);
		mp_key(pk, "t"), mp_cstr(pk, "tok");
		mp_key(pk, "tokens"), mp_bin(pk, "\0\1\2", 3);
		break;
	}
}

static void expect_error(int m, enum rec_kind want, const char *needle, const char *what)
{
	mode = m;
	FILE *file = stream_file(fill_bad);
	struct rec_reader r;
	rec_open_fd(&r, fileno(file), "bad.mp");
	int ret = rec_next(&r, want);
	ok(ret == -1 && strstr(r.error, needle) && strstr(r.error, "bad.mp: record at byte offset"), what);
	if (ret != -1 || !strstr(r.error, needle))
		printf("#   ret %d, error \"%s\"\n", ret, r.error);
	rec_close(&r);
	fclose(file);
}

static void test_reader_checks(void)
{
	expect_error(0, REC_TOK, "before any header", "a record before any header is refused");
	expect_error(1, REC_TOK, "unknown schema \"other.thing\"", "an unknown schema is refused");
	expect_error(2, REC_TOK, "version 2", "a newer stream version is refused");
	expect_error(3, REC_TOK, "flow records, this tool reads tok records", "a record of the wrong type is refused");
	expect_error(4, REC_FLOW, "packet 2: wire length or direction out of range", "a bad direction is refused");
	expect_error(5, REC_FLOW, "not a tgpt record", "a non-map object is refused");
	expect_error(6, REC_TOK, "whole uint16", "an odd token byte count is refused");
}

static void test_numbers(void)
{
	uint64_t u;
	double d;
	ok(parse_u64("12032", 1, 100000, &u) == 0 && u == 12032, "parse_u64 takes a plain number");
	ok(parse_u64("12x", 0, 100, &u) < 0, "parse_u64 refuses trailing junk");
	ok(parse_u64("-1", 0, 100, &u) < 0, "parse_u64 refuses a sign");
	ok(parse_u64("101", 0, 100, &u) < 0, "parse_u64 refuses out of range");
	ok(parse_u64("", 0, 100, &u) < 0, "parse_u64 refuses an empty string");
	ok(parse_u64("18446744073709551616", 0, UINT64_MAX, &u) < 0, "parse_u64 refuses overflow");
	ok(parse_double("0.25", 0, 1, &d) == 0 && d == 0.25, "parse_double");
	ok(parse_double("nan", 0, 1, &d) < 0, "parse_double refuses NaN");
	ok(parse_double("2", 0, 1, &d) < 0, "parse_double refuses out of range");
}

int main(void)
{
	test_flow_round_trip();
	test_tok_round_trip();
	test_reader_checks();
	test_numbers();
	return tap_done();
}
