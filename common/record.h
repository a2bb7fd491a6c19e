/* record.h: the records of tgpt-stream(5), version 1: headers, flow records
 * (pcap2flow's output) and token records (flow2tok's), with their encoders,
 * decoders and validation. A reader that sees a header of another schema or
 * version, or a record the last header did not announce, reports it. */
#ifndef TGPT_RECORD_H
#define TGPT_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

#define TGPT_STREAM_VERSION 1
#define SCHEMA_FLOW "tgpt.flow"
#define SCHEMA_TOK "tgpt.tok"

/* The paper's tokenizer (tgpt-stream(5), TOKENS). */
#define TOKENIZER_NAME "tgpt-bytes"
#define TOKENIZER_VERSION 1
#define TOK_START 256
#define TOK_END 257
#define TOK_CLS 258
#define TOK_PAD 259
#define TOK_VOCAB 260
/* The link-type token holds the pcap LINKTYPE when it is below 255; 255 says
 * "the record's linktype field holds it" (e.g. LINKTYPE_LINUX_SLL2 = 276). */
#define TOK_LINKTYPE_ESCAPE 255
#define TOK_PACKET_OVERHEAD 10 /* START, link type, 8 time bytes */
/* Intervals beyond 2^32 s cannot be written to a pcap (32-bit seconds). */
#define TOK_MAX_INTERVAL_S 4294967296.0

/* Limits a decoder enforces so a hostile stream cannot ask for absurd
 * allocations: msgpack lengths are not capped by the format itself. */
#define MAX_PACKET_BYTES (256u * 1024u)
#define MAX_FLOW_PACKETS (1u << 24)

enum rec_kind { REC_END = 0, REC_HDR = 1, REC_FLOW = 2, REC_TOK = 3 };

enum flow_end { END_EOF, END_IDLE, END_FIN, END_RST, END_FRAME };
extern const char *const flow_end_names[]; /* "eof", "idle", "fin", "rst", "frame" */

struct packet {
	uint64_t ts_ns;      /* nanoseconds since the epoch */
	uint32_t caplen;     /* bytes captured = length of data */
	uint32_t wirelen;    /* length on the wire */
	uint64_t index;      /* 0-based position of the packet in its file */
	uint8_t dir;         /* 0: as the flow's first packet, 1: reverse */
	const uint8_t *data;
};

struct flow_rec {
	uint64_t id;         /* per source, in order of the flows' first packets */
	const char *source;  /* capture file name as given ("-" for stdin) */
	size_t source_len;
	uint32_t linktype, snaplen;
	uint8_t tsprec;      /* 6 (microseconds) or 9 (nanoseconds) */
	uint8_t ip_version;  /* 0 (not IP), 4 or 6 */
	uint8_t proto;       /* IP protocol number, 0 when not IP */
	uint8_t src_ip[16], dst_ip[16];
	uint16_t src_port, dst_port;
	uint8_t n_vlan;
	uint16_t vlan[2];    /* outer first */
	uint64_t first_ns, last_ns;
	uint64_t packets[2], bytes[2]; /* [0] src to dst, [1] dst to src; wire bytes */
	enum flow_end end;
	const char *label;   /* NULL when unlabelled */
	size_t label_len;
	size_t n_packets;
	struct packet *pkt;  /* decoder: owned by the flow_rec, reused */
	size_t pkt_cap;
};

struct tok_rec {
	uint64_t id;
	const char *source, *label; /* NULL when absent */
	size_t source_len, label_len;
	int has_side;        /* side data present: linktype .. index below */
	uint32_t linktype, snaplen;
	uint8_t tsprec;
	uint64_t first_ns;
	size_t n_packets;
	int64_t *wire_delta; /* per packet, wire length minus captured length (0 but in
	                      * snaplen-cut packets, or damaged ones where it is negative) */
	uint64_t *index;     /* per packet, position in the source file */
	const uint64_t *ts_ns; /* per packet exact time stamps, or NULL: optional side
	                      * field "ts_ns", written only when an interval does not
	                      * survive float64 seconds (flow2tok(1)) */
	int cut;             /* the flow was cut by --max-tokens */
	size_t n_tokens;
	const uint8_t *tokens_le; /* n_tokens little-endian uint16 */
	size_t side_cap;     /* decoder: capacity of wire_delta/index */
	uint64_t *ts_buf;    /* decoder: storage behind ts_ns */
	size_t ts_cap;
};

static inline uint16_t tok_at(const struct tok_rec *t, size_t i)
{
	return (uint16_t)(t->tokens_le[2 * i] | t->tokens_le[2 * i + 1] << 8);
}

/* Writers. A header opens every stream the tool writes. */
void hdr_write(msgpack_packer *pk, const char *schema, const char *tool);
void flow_write(msgpack_packer *pk, const struct flow_rec *f);
/* tokens are host uint16; they are written little-endian. */
void tok_write(msgpack_packer *pk, const struct tok_rec *t, const uint16_t *tokens);

/* Decoders of one object; return 0, or -1 with a message in err. */
int flow_decode(const msgpack_object *o, struct flow_rec *f, char *err, size_t errlen);
int tok_decode(const msgpack_object *o, struct tok_rec *t, char *err, size_t errlen);
void flow_rec_free(struct flow_rec *f);
void tok_rec_free(struct tok_rec *t);

/* A record reader over one input: checks headers and yields records of the
 * kind the caller wants. */
struct rec_reader {
	struct mp_reader mp;
	enum rec_kind announced; /* what the last header announced */
	uint64_t records;        /* records returned so far */
	struct flow_rec flow;
	struct tok_rec tok;
	char error[320];
};
/* Opens PATH ("-": stdin); returns -1 with errno on failure. */
int rec_open(struct rec_reader *r, const char *path);
void rec_open_fd(struct rec_reader *r, int fd, const char *name);
void rec_open_mem(struct rec_reader *r, const void *buf, size_t len, const char *name);
/* Next record of kind WANT (REC_FLOW or REC_TOK): returns WANT with r->flow
 * or r->tok filled, REC_END at a clean end, or -1 with r->error naming the
 * input and byte offset (damaged stream, wrong schema, wrong record type). */
int rec_next(struct rec_reader *r, enum rec_kind want);
void rec_close(struct rec_reader *r);

#endif
