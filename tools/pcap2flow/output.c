/* output.c: pcap2flow's stream out: a buffer for msgpack's small pieces and
 * writev(2) of the packet bytes where they lie (see output.h). */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"

/* flow_write hands over pieces of GATHER_MIN bytes or more only for packet
 * bytes and for the source name and label, which live as long as the run;
 * smaller ones, its keys, numbers and addresses among them (in its own or
 * msgpack's short-lived buffers), are copied. So whatever holds the packet
 * bytes of a written flow keeps them until the next drain (o->drained). */
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
 * for each number), so the bytes are flow_write_packet's (t-p2f-output). */
#define ENTRY_MAX 31 /* array, uint64, uint32, uint64, uint8, bin32 header */

static uint8_t *put_be16(uint8_t *d, uint16_t v)
{
	v = __builtin_bswap16(v);
	memcpy(d, &v, sizeof v);
	return d + sizeof v;
}

static uint8_t *put_be32(uint8_t *d, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(d, &v, sizeof v);
	return d + sizeof v;
}

static uint8_t *put_be64(uint8_t *d, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(d, &v, sizeof v);
	return d + sizeof v;
}

/* An unsigned integer: fixint, then uint 8, 16, 32, 64. */
static uint8_t *put_uint(uint8_t *d, uint64_t v)
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
static uint8_t *put_bin_header(uint8_t *d, uint32_t len)
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

void out_flow(struct out *o, const struct flow_rec *rec)
{
	flow_write_head(&o->pk, rec);
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
