/* output.c: pcap2flow's stream out (see output.h): a buffer for the small
 * pieces, writev(2) of the packet bytes where they lie, and the packing of
 * flow records. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"

/* Pieces of GATHER_MIN bytes or more are taken in place: packet bytes, and
 * the source name and label, which live as long as the run; smaller ones
 * (keys, numbers, addresses, and all that msgpack's writer hands over from
 * its short-lived buffers) are copied. So whatever holds the packet bytes
 * of a written flow keeps them until the next drain (o->drained). */
#define OUT_BUF (256u * 1024u)
#define GATHER_MIN 32
/* The size asked of an output pipe: beyond the default 64 KiB, pcap2flow
 * and its reader switch less often (the benchmark's 200 MB through
 * "| cat" takes 0.26 s, not 0.37). 1 MiB is what fs.pipe-max-size lets
 * anyone ask by default. */
#define OUT_PIPE_SIZE (1 << 20)

/* The buffered bytes since the last piece taken in place become an iovec. */
static void out_close_run(struct out *o)
{
	if (o->used > o->run) {
		o->iov[o->n_iov].iov_base = o->buf + o->run;
		o->iov[o->n_iov].iov_len = o->used - o->run;
		o->n_iov++;
		o->run = o->used;
	}
}

__attribute__((noinline)) void out_drain(struct out *o)
{
	out_close_run(o);
	struct iovec *v = o->iov;
	int n = o->n_iov;
	size_t left = 0;
	for (int i = 0; i < n; i++)
		left += v[i].iov_len;
	while (n > 0 && !o->failed) {
		ssize_t k = writev(o->fd, v, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			o->failed = k < 0 ? errno : EIO;
			break;
		}
		if ((size_t)k == left)
			break; /* the common case: all of it */
		left -= (size_t)k;
		for (; n > 0 && (size_t)k >= v->iov_len; v++, n--)
			k -= (ssize_t)v->iov_len;
		if (n > 0) {
			v->iov_base = (uint8_t *)v->iov_base + k;
			v->iov_len -= (size_t)k;
		}
	}
	o->n_iov = 0;
	o->used = o->run = 0;
	if (o->drained)
		o->drained(o->drained_arg);
}

/* Copies a piece shorter than GATHER_MIN: most are a byte or a few (a
 * msgpack header, a number, a key), and a call to memcpy would cost more
 * than the copy. Two overlapping copies of a power of two cover the
 * lengths up to twice it. */
static inline void out_copy_small(uint8_t *d, const char *p, size_t len)
{
	if (len >= 8) {
		if (len <= 16) {
			memcpy(d, p, 8);
			memcpy(d + len - 8, p + len - 8, 8);
		} else {
			memcpy(d, p, len);
		}
	} else if (len >= 4) {
		memcpy(d, p, 4);
		memcpy(d + len - 4, p + len - 4, 4);
	} else if (len >= 2) {
		memcpy(d, p, 2);
		memcpy(d + len - 2, p + len - 2, 2);
	} else if (len == 1) {
		*d = (uint8_t)*p;
	}
}

/* A piece taken in place: an iovec of its own. Keeps at most OUT_IOV - 1
 * iovecs between calls, so that out_drain can always close the run. */
static inline void out_gather(struct out *o, const void *p, size_t len)
{
	if (o->n_iov + 3 > OUT_IOV)
		out_drain(o);
	out_close_run(o);
	o->iov[o->n_iov].iov_base = (void *)p;
	o->iov[o->n_iov].iov_len = len;
	o->n_iov++;
}

/* msgpack_packer's writer, called for every key, number and header of a
 * record: the common case, a short piece with room for it, is kept to a
 * few instructions (the drain is out of line). */
static int out_put(void *data, const char *p, size_t len)
{
	struct out *o = data;
	if (__builtin_expect(len < GATHER_MIN && OUT_BUF - o->used >= GATHER_MIN, 1)) {
		out_copy_small(o->buf + o->used, p, len);
		o->used += len;
	} else if (len < GATHER_MIN) {
		out_drain(o);
		out_copy_small(o->buf + o->used, p, len);
		o->used += len;
	} else {
		out_gather(o, p, len);
	}
	return o->failed ? -1 : 0;
}

/* ------------------------------------------------------------ packets */

/* A packet entry of a flow record, [ts_ns, wirelen, index, dir, data], is
 * packed here rather than through msgpack's writer: one call for the whole
 * entry instead of seven, each with its own tests, is what makes writing a
 * flow cheap beside reading it. The forms are msgpack-c's (the shortest
 * for each number), so the bytes are record.h's flow_write's (t-p2f-output
 * compares the two). */
#define ENTRY_MAX 31 /* array, uint64, uint32, uint64, uint8, bin32 header */

static inline uint8_t *put_be16(uint8_t *d, uint16_t v)
{
	v = __builtin_bswap16(v);
	memcpy(d, &v, sizeof v);
	return d + sizeof v;
}

static inline uint8_t *put_be32(uint8_t *d, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(d, &v, sizeof v);
	return d + sizeof v;
}

static inline uint8_t *put_be64(uint8_t *d, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(d, &v, sizeof v);
	return d + sizeof v;
}

/* An unsigned integer: fixint, then uint 8, 16, 32, 64. */
static inline uint8_t *put_uint(uint8_t *d, uint64_t v)
{
	if (v < 0x80) {
		*d = (uint8_t)v;
		return d + 1;
	}
	if (v <= UINT8_MAX) {
		d[0] = 0xcc, d[1] = (uint8_t)v;
		return d + 2;
	}
	if (v <= UINT16_MAX) {
		*d = 0xcd;
		return put_be16(d + 1, (uint16_t)v);
	}
	if (v <= UINT32_MAX) {
		*d = 0xce;
		return put_be32(d + 1, (uint32_t)v);
	}
	*d = 0xcf;
	return put_be64(d + 1, v);
}

/* A bin header: bin 8, 16 or 32. */
static inline uint8_t *put_bin_header(uint8_t *d, uint32_t len)
{
	if (len <= UINT8_MAX) {
		d[0] = 0xc4, d[1] = (uint8_t)len;
		return d + 2;
	}
	if (len <= UINT16_MAX) {
		*d = 0xc5;
		return put_be16(d + 1, (uint16_t)len);
	}
	*d = 0xc6;
	return put_be32(d + 1, len);
}

static void out_packet(struct out *o, const struct packet *p)
{
	if (OUT_BUF - o->used < ENTRY_MAX + GATHER_MIN)
		out_drain(o);
	uint8_t *d = o->buf + o->used;
	*d++ = 0x95; /* fixarray of 5 */
	d = put_uint(d, p->ts_ns);
	d = put_uint(d, p->wirelen);
	d = put_uint(d, p->index);
	d = put_uint(d, p->dir);
	d = put_bin_header(d, p->caplen);
	if (p->caplen < GATHER_MIN) {
		out_copy_small(d, (const char *)p->data, p->caplen);
		d += p->caplen;
		o->used = (size_t)(d - o->buf);
		return;
	}
	o->used = (size_t)(d - o->buf);
	out_gather(o, p->data, p->caplen);
}

/* ------------------------------------------------------------ flow head */

/* The record's fields before its packets, as flow_write packs them: the
 * keys are constants, spelled out here once, and all but the source name and the label fit in HEAD_MAX
 * bytes, so a head takes one check for room instead of some fifty calls
 * of msgpack's writer, which cost as much as the flow's packets. */
#define HEAD_MAX 512

/* A key: fixstr of a literal. */
#define PUT_KEY(d, k) put_fixstr(d, k, sizeof k - 1)

static uint8_t *put_fixstr(uint8_t *d, const char *s, size_t len)
{
	*d++ = (uint8_t)(0xa0 | len);
	memcpy(d, s, len);
	return d + len;
}

/* A str header: fixstr, str 8, 16 or 32. */
static uint8_t *put_str_header(uint8_t *d, size_t len)
{
	if (len < 32) {
		*d = (uint8_t)(0xa0 | len);
		return d + 1;
	}
	if (len <= UINT8_MAX) {
		d[0] = 0xd9, d[1] = (uint8_t)len;
		return d + 2;
	}
	if (len <= UINT16_MAX) {
		*d = 0xda;
		return put_be16(d + 1, (uint16_t)len);
	}
	*d = 0xdb;
	return put_be32(d + 1, (uint32_t)len);
}

/* A map or array header: fix form (below 16), then 16 or 32 bits. */
static uint8_t *put_container(uint8_t *d, uint8_t fix, uint8_t b16, size_t n)
{
	if (n < 16) {
		*d = (uint8_t)(fix | n);
		return d + 1;
	}
	if (n <= UINT16_MAX) {
		*d = b16;
		return put_be16(d + 1, (uint16_t)n);
	}
	*d = (uint8_t)(b16 + 1);
	return put_be32(d + 1, (uint32_t)n);
}

static uint8_t *put_key_uint(uint8_t *d, const char *key, size_t key_len, uint64_t v)
{
	return put_uint(put_fixstr(d, key, key_len), v);
}

#define PUT_KEY_UINT(d, k, v) put_key_uint(d, k, sizeof k - 1, v)

/* A str value whose bytes live as long as the run (the source name, a
 * label): copied when short, else taken in place, as out_put does. */
static uint8_t *put_str(struct out *o, uint8_t *d, const char *s, size_t len)
{
	d = put_str_header(d, len);
	if (len < GATHER_MIN) {
		out_copy_small(d, s, len);
		return d + len;
	}
	o->used = (size_t)(d - o->buf);
	out_gather(o, s, len);
	if (OUT_BUF - o->used < HEAD_MAX)
		out_drain(o);
	return o->buf + o->used;
}

static void out_head(struct out *o, const struct flow_rec *f)
{
	int ip = f->ip_version == 4 || f->ip_version == 6;
	uint32_t alen = f->ip_version == 6 ? 16 : 4;
	if (OUT_BUF - o->used < HEAD_MAX)
		out_drain(o);
	uint8_t *d = o->buf + o->used;
	d = put_container(d, 0x80, 0xde, 18 + (ip ? 2 : 0) + (f->n_vlan > 0) + (f->label != NULL));
	d = PUT_KEY(d, "t");
	d = PUT_KEY(d, "flow");
	d = PUT_KEY_UINT(d, "id", f->id);
	d = PUT_KEY(d, "source");
	d = put_str(o, d, f->source ? f->source : "", f->source ? f->source_len : 0);
	d = PUT_KEY_UINT(d, "linktype", f->linktype);
	d = PUT_KEY_UINT(d, "snaplen", f->snaplen);
	d = PUT_KEY_UINT(d, "tsprec", f->tsprec);
	d = PUT_KEY_UINT(d, "ip_version", f->ip_version);
	d = PUT_KEY_UINT(d, "proto", f->proto);
	if (ip) {
		d = put_bin_header(PUT_KEY(d, "src_ip"), alen);
		memcpy(d, f->src_ip, alen);
		d = put_bin_header(PUT_KEY(d + alen, "dst_ip"), alen);
		memcpy(d, f->dst_ip, alen);
		d += alen;
	}
	d = PUT_KEY_UINT(d, "src_port", f->src_port);
	d = PUT_KEY_UINT(d, "dst_port", f->dst_port);
	if (f->n_vlan > 0) {
		d = put_container(PUT_KEY(d, "vlan"), 0x90, 0xdc, f->n_vlan);
		for (int i = 0; i < f->n_vlan; i++)
			d = put_uint(d, f->vlan[i]);
	}
	d = PUT_KEY_UINT(d, "first_ns", f->first_ns);
	d = PUT_KEY_UINT(d, "last_ns", f->last_ns);
	d = PUT_KEY_UINT(d, "src2dst_packets", f->packets[0]);
	d = PUT_KEY_UINT(d, "src2dst_bytes", f->bytes[0]);
	d = PUT_KEY_UINT(d, "dst2src_packets", f->packets[1]);
	d = PUT_KEY_UINT(d, "dst2src_bytes", f->bytes[1]);
	const char *end = flow_end_names[f->end];
	d = put_fixstr(PUT_KEY(d, "end"), end, strlen(end));
	if (f->label)
		d = put_str(o, PUT_KEY(d, "label"), f->label, f->label_len);
	d = put_container(PUT_KEY(d, "packets"), 0x90, 0xdc, f->n_packets);
	o->used = (size_t)(d - o->buf);
}

void out_flow(struct out *o, const struct flow_rec *rec)
{
	out_head(o, rec);
	for (size_t i = 0; i < rec->n_packets && !o->failed; i++)
		out_packet(o, &rec->pkt[i]);
}

void out_init(struct out *o, int fd, const char *name)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		(void)fcntl(fd, F_SETPIPE_SZ, OUT_PIPE_SIZE); /* best effort */
	memset(o, 0, sizeof *o);
	o->fd = fd;
	o->name = name;
	o->buf = xmalloc(OUT_BUF);
	msgpack_packer_init(&o->pk, o, out_put);
}

void out_free(struct out *o)
{
	free(o->buf);
	o->buf = NULL;
}
