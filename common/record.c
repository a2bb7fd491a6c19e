/* record.c: encoders, decoders and the checking reader of tgpt-stream(5)
 * records. Decoding validates types and lengths against the schema, so tools
 * can trust a decoded record (caplen == bytes present, sane counts). */
#include "record.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"

const char *const flow_end_names[] = { "eof", "idle", "fin", "rst", "frame" };

/* ------------------------------------------------------------ writers */

void hdr_write(msgpack_packer *pk, const char *schema, const char *tool)
{
	int tok = strcmp(schema, SCHEMA_TOK) == 0;
	msgpack_pack_map(pk, tok ? 8 : 5);
	mp_key(pk, "t"), mp_cstr(pk, "hdr");
	mp_key(pk, "schema"), mp_cstr(pk, schema);
	mp_key(pk, "v"), msgpack_pack_uint32(pk, TGPT_STREAM_VERSION);
	mp_key(pk, "tool"), mp_cstr(pk, tool);
	mp_key(pk, "tool_v"), mp_cstr(pk, TGPT_VERSION);
	if (tok) {
		mp_key(pk, "tokenizer"), mp_cstr(pk, TOKENIZER_NAME);
		mp_key(pk, "tokenizer_v"), msgpack_pack_uint32(pk, TOKENIZER_VERSION);
		mp_key(pk, "vocab"), msgpack_pack_uint32(pk, TOK_VOCAB);
	}
}

static void pack_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
	mp_key(pk, key);
	msgpack_pack_uint64(pk, v);
}

/* 18 keys always, then src_ip/dst_ip, vlan and label when present. */
void flow_write(msgpack_packer *pk, const struct flow_rec *f)
{
	int ip = f->ip_version == 4 || f->ip_version == 6;
	size_t alen = f->ip_version == 6 ? 16 : 4;
	msgpack_pack_map(pk, 18 + (ip ? 2 : 0) + (f->n_vlan > 0) + (f->label != NULL));
	mp_key(pk, "t"), mp_cstr(pk, "flow");
	pack_u64(pk, "id", f->id);
	mp_key(pk, "source"), mp_str(pk, f->source ? f->source : "", f->source ? f->source_len : 0);
	pack_u64(pk, "linktype", f->linktype);
	pack_u64(pk, "snaplen", f->snaplen);
	pack_u64(pk, "tsprec", f->tsprec);
	pack_u64(pk, "ip_version", f->ip_version);
	pack_u64(pk, "proto", f->proto);
	if (ip) {
		mp_key(pk, "src_ip"), mp_bin(pk, f->src_ip, alen);
		mp_key(pk, "dst_ip"), mp_bin(pk, f->dst_ip, alen);
	}
	pack_u64(pk, "src_port", f->src_port);
	pack_u64(pk, "dst_port", f->dst_port);
	if (f->n_vlan > 0) {
		mp_key(pk, "vlan");
		msgpack_pack_array(pk, f->n_vlan);
		for (int i = 0; i < f->n_vlan; i++)
			msgpack_pack_uint16(pk, f->vlan[i]);
	}
	pack_u64(pk, "first_ns", f->first_ns);
	pack_u64(pk, "last_ns", f->last_ns);
	pack_u64(pk, "src2dst_packets", f->packets[0]);
	pack_u64(pk, "src2dst_bytes", f->bytes[0]);
	pack_u64(pk, "dst2src_packets", f->packets[1]);
	pack_u64(pk, "dst2src_bytes", f->bytes[1]);
	mp_key(pk, "end"), mp_cstr(pk, flow_end_names[f->end]);
	if (f->label)
		mp_key(pk, "label"), mp_str(pk, f->label, f->label_len);
	mp_key(pk, "packets");
	msgpack_pack_array(pk, f->n_packets);
	for (size_t i = 0; i < f->n_packets; i++) {
		const struct packet *p = &f->pkt[i];
		msgpack_pack_array(pk, 5);
		msgpack_pack_uint64(pk, p->ts_ns);
		msgpack_pack_uint32(pk, p->wirelen);
		msgpack_pack_uint64(pk, p->index);
		msgpack_pack_uint8(pk, p->dir);
		mp_bin(pk, p->data, p->caplen);
	}
}

void tok_write(msgpack_packer *pk, const struct tok_rec *t, const uint16_t *tokens)
{
	int opt = (t->source != NULL) + (t->label != NULL) + (t->cut != 0);
	msgpack_pack_map(pk, 3 + opt + (t->has_side ? 6 + (t->ts_ns != NULL) : 0));
	mp_key(pk, "t"), mp_cstr(pk, "tok");
	pack_u64(pk, "id", t->id);
	if (t->source)
		mp_key(pk, "source"), mp_str(pk, t->source, t->source_len);
	if (t->label)
		mp_key(pk, "label"), mp_str(pk, t->label, t->label_len);
	if (t->cut)
		mp_key(pk, "cut"), msgpack_pack_true(pk);
	if (t->has_side) {
		pack_u64(pk, "linktype", t->linktype);
		pack_u64(pk, "snaplen", t->snaplen);
		pack_u64(pk, "tsprec", t->tsprec);
		pack_u64(pk, "first_ns", t->first_ns);
		mp_key(pk, "wirelen");
		msgpack_pack_array(pk, t->n_packets);
		for (size_t i = 0; i < t->n_packets; i++)
			msgpack_pack_int64(pk, t->wire_delta[i]);
		mp_key(pk, "index");
		msgpack_pack_array(pk, t->n_packets);
		for (size_t i = 0; i < t->n_packets; i++)
			msgpack_pack_uint64(pk, t->index[i]);
		if (t->ts_ns) {
			mp_key(pk, "ts_ns");
			msgpack_pack_array(pk, t->n_packets);
			for (size_t i = 0; i < t->n_packets; i++)
				msgpack_pack_uint64(pk, t->ts_ns[i]);
		}
	}
	mp_key(pk, "tokens");
	msgpack_pack_bin(pk, t->n_tokens * 2);
	/* Little-endian on the wire whatever the host: copy in blocks. */
	uint8_t buf[4096];
	for (size_t i = 0; i < t->n_tokens;) {
		size_t n = 0;
		for (; n < sizeof buf && i < t->n_tokens; i++) {
			buf[n++] = (uint8_t)(tokens[i] & 0xff);
			buf[n++] = (uint8_t)(tokens[i] >> 8);
		}
		msgpack_pack_bin_body(pk, buf, n);
	}
}

/* ------------------------------------------------------------ decoders */

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A required unsigned field within [0, max]. */
static int need_u64(const msgpack_object *o, const char *key, uint64_t max, uint64_t *out,
		    char *err, size_t n)
{
	int r = mp_get_u64(o, key, max, out);
	if (r == 1)
		return fail(err, n, "field \"%s\" missing", key);
	if (r < 0)
		return fail(err, n, "field \"%s\" is not a whole number up to %llu", key,
			    (unsigned long long)max);
	return 0;
}

/* An optional string; absent leaves *s NULL. */
static int opt_str(const msgpack_object *o, const char *key, const char **s, size_t *len,
		   char *err, size_t n)
{
	*s = NULL;
	*len = 0;
	if (mp_get_str(o, key, s, len) < 0)
		return fail(err, n, "field \"%s\" is not a string", key);
	return 0;
}

static int decode_end(const msgpack_object *o, enum flow_end *end, char *err, size_t n)
{
	const msgpack_object *v = mp_get(o, "end");
	*end = END_EOF;
	if (!v)
		return 0;
	for (int i = 0; i <= END_FRAME; i++)
		if (mp_str_eq(v, flow_end_names[i])) {
			*end = (enum flow_end)i;
			return 0;
		}
	return fail(err, n, "field \"end\" is not one of eof, idle, fin, rst, frame");
}

static int decode_ip(const msgpack_object *o, const char *key, uint8_t *dst, size_t alen,
		     char *err, size_t n)
{
	const uint8_t *p;
	size_t len;
	int r = mp_get_bin(o, key, &p, &len);
	if (r == 1)
		return fail(err, n, "field \"%s\" missing", key);
	if (r < 0 || len != alen)
		return fail(err, n, "field \"%s\" is not %zu bytes of bin", key, alen);
	memcpy(dst, p, alen);
	return 0;
}

static int decode_packet(const msgpack_object *a, struct packet *p, size_t i, char *err, size_t n)
{
	if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 5)
		return fail(err, n, "packet %zu is not an array of 5", i + 1);
	const msgpack_object *v = a->via.array.ptr;
	for (int k = 0; k < 4; k++)
		if (v[k].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return fail(err, n, "packet %zu: element %d is not a whole number", i + 1, k + 1);
	if (v[4].type != MSGPACK_OBJECT_BIN)
		return fail(err, n, "packet %zu: bytes are not bin", i + 1);
	if (v[1].via.u64 > UINT32_MAX || v[3].via.u64 > 1)
		return fail(err, n, "packet %zu: wire length or direction out of range", i + 1);
	if (v[4].via.bin.size > MAX_PACKET_BYTES)
		return fail(err, n, "packet %zu: %u bytes, more than %u", i + 1,
			    v[4].via.bin.size, MAX_PACKET_BYTES);
	p->ts_ns = v[0].via.u64;
	p->wirelen = (uint32_t)v[1].via.u64;
	p->index = v[2].via.u64;
	p->dir = (uint8_t)v[3].via.u64;
	p->caplen = v[4].via.bin.size;
	p->data = (const uint8_t *)v[4].via.bin.ptr;
	/* A wire length below the captured length is wrong, but captures hold
	 * such packets (fuzzed or damaged files): keep it, so they round-trip. */
	return 0;
}

static int decode_vlan(const msgpack_object *o, struct flow_rec *f, char *err, size_t n)
{
	const msgpack_object *v = mp_get(o, "vlan");
	f->n_vlan = 0;
	if (!v)
		return 0;
	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > 2)
		return fail(err, n, "field \"vlan\" is not an array of at most 2 ids");
	for (uint32_t i = 0; i < v->via.array.size; i++) {
		const msgpack_object *id = &v->via.array.ptr[i];
		if (id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || id->via.u64 > 4095)
			return fail(err, n, "field \"vlan\" holds an id that is not 0 to 4095");
		f->vlan[f->n_vlan++] = (uint16_t)id->via.u64;
	}
	return 0;
}

int flow_decode(const msgpack_object *o, struct flow_rec *f, char *err, size_t n)
{
	uint64_t v[16];
	static const struct { const char *key; uint64_t max; } u[] = {
		{ "id", UINT64_MAX }, { "linktype", UINT32_MAX }, { "snaplen", UINT32_MAX },
		{ "tsprec", 9 }, { "ip_version", 6 }, { "proto", 255 },
		{ "src_port", 65535 }, { "dst_port", 65535 }, { "first_ns", UINT64_MAX },
		{ "last_ns", UINT64_MAX }, { "src2dst_packets", UINT64_MAX },
		{ "src2dst_bytes", UINT64_MAX }, { "dst2src_packets", UINT64_MAX },
		{ "dst2src_bytes", UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
		if (need_u64(o, u[i].key, u[i].max, &v[i], err, n) < 0)
			return -1;
	f->id = v[0], f->linktype = (uint32_t)v[1], f->snaplen = (uint32_t)v[2];
	f->tsprec = (uint8_t)v[3], f->ip_version = (uint8_t)v[4], f->proto = (uint8_t)v[5];
	f->src_port = (uint16_t)v[6], f->dst_port = (uint16_t)v[7];
	f->first_ns = v[8], f->last_ns = v[9];
	f->packets[0] = v[10], f->bytes[0] = v[11], f->packets[1] = v[12], f->bytes[1] = v[13];
	if (f->tsprec != 6 && f->tsprec != 9)
		return fail(err, n, "field \"tsprec\" is %u, not 6 or 9", f->tsprec);
	if (f->ip_version != 0 && f->ip_version != 4 && f->ip_version != 6)
		return fail(err, n, "field \"ip_version\" is %u, not 0, 4 or 6", f->ip_version);
	memset(f->src_ip, 0, sizeof f->src_ip);
	memset(f->dst_ip, 0, sizeof f->dst_ip);
	if (f->ip_version) {
		size_t alen = f->ip_version == 6 ? 16 : 4;
		if (decode_ip(o, "src_ip", f->src_ip, alen, err, n) < 0 ||
		    decode_ip(o, "dst_ip", f->dst_ip, alen, err, n) < 0)
			return -1;
	}
	if (decode_vlan(o, f, err, n) < 0 || decode_end(o, &f->end, err, n) < 0 ||
	    opt_str(o, "source", &f->source, &f->source_len, err, n) < 0 ||
	    opt_str(o, "label", &f->label, &f->label_len, err, n) < 0)
		return -1;
	const msgpack_object *pk = mp_get(o, "packets");
	if (!pk || pk->type != MSGPACK_OBJECT_ARRAY)
		return fail(err, n, "field \"packets\" missing or not an array");
	if (pk->via.array.size > MAX_FLOW_PACKETS)
		return fail(err, n, "%u packets in one flow, more than %u", pk->via.array.size,
			    MAX_FLOW_PACKETS);
	f->n_packets = pk->via.array.size;
	grow((void **)&f->pkt, &f->pkt_cap, f->n_packets, sizeof *f->pkt);
	for (size_t i = 0; i < f->n_packets; i++)
		if (decode_packet(&pk->via.array.ptr[i], &f->pkt[i], i, err, n) < 0)
			return -1;
	return 0;
}

/* The per-packet side arrays: absent, or exactly n_packets whole numbers. */
static int decode_side_array(const msgpack_object *o, const char *key, uint64_t max,
			     struct tok_rec *t, int is_index, char *err, size_t n)
{
	const msgpack_object *a = mp_get(o, key);
	if (!a)
		return fail(err, n, "side data without field \"%s\"", key);
	if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > MAX_FLOW_PACKETS)
		return fail(err, n, "field \"%s\" is not an array", key);
	if (is_index)
		t->n_packets = a->via.array.size;
	else if (a->via.array.size != t->n_packets)
		return fail(err, n, "field \"%s\" has %u entries for %zu packets", key,
			    a->via.array.size, t->n_packets);
	size_t cap = t->side_cap;
	grow((void **)&t->index, &cap, t->n_packets, sizeof *t->index);
	cap = t->side_cap;
	grow((void **)&t->wire_delta, &cap, t->n_packets, sizeof *t->wire_delta);
	t->side_cap = cap;
	for (size_t i = 0; i < t->n_packets; i++) {
		const msgpack_object *e = &a->via.array.ptr[i];
		/* index: 0..max; wirelen: a difference of two uint32, -max..max */
		int neg_ok = !is_index && e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
			     e->via.i64 >= -(int64_t)max;
		if (!neg_ok && (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER || e->via.u64 > max))
			return fail(err, n, "field \"%s\": entry %zu is out of range", key, i + 1);
		if (is_index)
			t->index[i] = e->via.u64;
		else
			t->wire_delta[i] = neg_ok ? e->via.i64 : (int64_t)e->via.u64;
	}
	return 0;
}

/* The optional exact time stamps ("ts_ns"): absent, or one per packet. */
static int decode_ts(const msgpack_object *o, struct tok_rec *t, char *err, size_t n)
{
	const msgpack_object *a = mp_get(o, "ts_ns");
	if (!a)
		return 0;
	if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != t->n_packets)
		return fail(err, n, "field \"ts_ns\" is not an array of %zu entries", t->n_packets);
	grow((void **)&t->ts_buf, &t->ts_cap, t->n_packets, sizeof *t->ts_buf);
	for (size_t i = 0; i < t->n_packets; i++) {
		const msgpack_object *e = &a->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return fail(err, n, "field \"ts_ns\": entry %zu is not a whole number", i + 1);
		t->ts_buf[i] = e->via.u64;
	}
	t->ts_ns = t->ts_buf;
	return 0;
}

static int decode_side(const msgpack_object *o, struct tok_rec *t, char *err, size_t n)
{
	uint64_t lt, snap, prec, first;
	t->has_side = mp_get(o, "first_ns") != NULL;
	t->n_packets = 0;
	t->ts_ns = NULL;
	if (!t->has_side)
		return 0;
	if (need_u64(o, "linktype", UINT32_MAX, &lt, err, n) < 0 ||
	    need_u64(o, "snaplen", UINT32_MAX, &snap, err, n) < 0 ||
	    need_u64(o, "tsprec", 9, &prec, err, n) < 0 ||
	    need_u64(o, "first_ns", UINT64_MAX, &first, err, n) < 0)
		return -1;
	if (prec != 6 && prec != 9)
		return fail(err, n, "field \"tsprec\" is %llu, not 6 or 9", (unsigned long long)prec);
	t->linktype = (uint32_t)lt, t->snaplen = (uint32_t)snap;
	t->tsprec = (uint8_t)prec, t->first_ns = first;
	return decode_side_array(o, "index", UINT64_MAX, t, 1, err, n) < 0 ||
	       decode_side_array(o, "wirelen", UINT32_MAX, t, 0, err, n) < 0 ||
	       decode_ts(o, t, err, n) < 0 ? -1 : 0;
}

int tok_decode(const msgpack_object *o, struct tok_rec *t, char *err, size_t n)
{
	const uint8_t *p;
	size_t len;
	int r = mp_get_bin(o, "tokens", &p, &len);
	if (r == 1)
		return fail(err, n, "field \"tokens\" missing");
	if (r < 0 || len % 2)
		return fail(err, n, "field \"tokens\" is not bin of whole uint16 tokens");
	t->tokens_le = p;
	t->n_tokens = len / 2;
	t->id = 0;
	if (mp_get_u64(o, "id", UINT64_MAX, &t->id) < 0)
		return fail(err, n, "field \"id\" is not a whole number");
	const msgpack_object *cut = mp_get(o, "cut");
	t->cut = cut && cut->type == MSGPACK_OBJECT_BOOLEAN && cut->via.boolean;
	if (opt_str(o, "source", &t->source, &t->source_len, err, n) < 0 ||
	    opt_str(o, "label", &t->label, &t->label_len, err, n) < 0)
		return -1;
	return decode_side(o, t, err, n);
}

void flow_rec_free(struct flow_rec *f)
{
	free(f->pkt);
	f->pkt = NULL;
	f->pkt_cap = 0;
}

void tok_rec_free(struct tok_rec *t)
{
	free(t->wire_delta);
	free(t->index);
	free(t->ts_buf);
	t->wire_delta = NULL;
	t->index = NULL;
	t->ts_ns = t->ts_buf = NULL;
	t->side_cap = t->ts_cap = 0;
}

/* ------------------------------------------------------------ reader */

int rec_open(struct rec_reader *r, const char *path)
{
	memset(r, 0, sizeof *r);
	return mp_open(&r->mp, path);
}

void rec_open_fd(struct rec_reader *r, int fd, const char *name)
{
	memset(r, 0, sizeof *r);
	mp_open_fd(&r->mp, fd, name);
}

void rec_open_mem(struct rec_reader *r, const void *buf, size_t len, const char *name)
{
	memset(r, 0, sizeof *r);
	mp_open_mem(&r->mp, buf, len, name);
}

static int reader_fail(struct rec_reader *r, const char *what)
{
	snprintf(r->error, sizeof r->error, "%s: record at byte offset %llu: %s", r->mp.name,
		 (unsigned long long)r->mp.record_offset, what);
	return -1;
}

/* A header: checks the schema and version, and notes what follows. */
static int take_header(struct rec_reader *r, const msgpack_object *o)
{
	const char *schema;
	size_t len;
	uint64_t v;
	if (mp_get_str(o, "schema", &schema, &len) != 0)
		return reader_fail(r, "header without a \"schema\" string");
	if (need_u64(o, "v", UINT32_MAX, &v, r->error, sizeof r->error) < 0)
		return reader_fail(r, "header without a version \"v\"");
	char name[64];
	snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), schema);
	if (strcmp(name, SCHEMA_FLOW) == 0)
		r->announced = REC_FLOW;
	else if (strcmp(name, SCHEMA_TOK) == 0)
		r->announced = REC_TOK;
	else {
		char why[128];
		snprintf(why, sizeof why, "unknown schema \"%s\"", name);
		return reader_fail(r, why);
	}
	if (v != TGPT_STREAM_VERSION) {
		char why[128];
		snprintf(why, sizeof why, "%s version %llu, this tool reads version %d", name,
			 (unsigned long long)v, TGPT_STREAM_VERSION);
		return reader_fail(r, why);
	}
	return 0;
}

static const char *kind_name(enum rec_kind k)
{
	return k == REC_FLOW ? "flow" : k == REC_TOK ? "tok" : "no";
}

int rec_next(struct rec_reader *r, enum rec_kind want)
{
	msgpack_object o;
	for (;;) {
		int got = mp_next(&r->mp, &o);
		if (got == 0)
			return REC_END;
		if (got < 0) {
			snprintf(r->error, sizeof r->error, "%s", r->mp.error);
			return -1;
		}
		const msgpack_object *t = o.type == MSGPACK_OBJECT_MAP ? mp_get(&o, "t") : NULL;
		if (!t || t->type != MSGPACK_OBJECT_STR)
			return reader_fail(r, "not a tgpt record (a map with a \"t\" string)");
		if (mp_str_eq(t, "hdr")) {
			if (take_header(r, &o) < 0)
				return -1;
			continue;
		}
		enum rec_kind kind = mp_str_eq(t, "flow") ? REC_FLOW : mp_str_eq(t, "tok") ? REC_TOK : REC_END;
		char why[200];
		if (kind == REC_END)
			return reader_fail(r, "unknown record type");
		if (r->announced == REC_END)
			return reader_fail(r, "record before any header: not a tgpt stream");
		if (kind != r->announced) {
			snprintf(why, sizeof why, "a %s record where the header announced %s records",
				 kind_name(kind), kind_name(r->announced));
			return reader_fail(r, why);
		}
		if (kind != want) {
			snprintf(why, sizeof why, "%s records, this tool reads %s records (%s)",
				 kind_name(kind), kind_name(want),
				 want == REC_FLOW ? "from pcap2flow" : "from flow2tok");
			return reader_fail(r, why);
		}
		int bad = kind == REC_FLOW ? flow_decode(&o, &r->flow, why, sizeof why)
					   : tok_decode(&o, &r->tok, why, sizeof why);
		if (bad)
			return reader_fail(r, why);
		r->records++;
		return kind;
	}
}

void rec_close(struct rec_reader *r)
{
	mp_close(&r->mp);
	flow_rec_free(&r->flow);
	tok_rec_free(&r->tok);
}
