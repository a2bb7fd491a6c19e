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

void out_drain(struct out *o)
{
	out_close_run(o);
	struct iovec *v = o->iov;
	int n = o->n_iov;
	while (n > 0 && !o->failed) {
		ssize_t k = writev(o->fd, v, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			o->failed = k < 0 ? errno : EIO;
			break;
		}
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
 * msgpack header, a number), and a call to memcpy would cost more than the
 * copy. Two overlapping 8-byte copies cover 8 to 16 bytes. */
static void out_copy_small(uint8_t *d, const char *p, size_t len)
{
	if (len >= 8 && len <= 16) {
		memcpy(d, p, 8);
		memcpy(d + len - 8, p + len - 8, 8);
	} else if (len < 8) {
		for (size_t i = 0; i < len; i++)
			d[i] = (uint8_t)p[i];
	} else {
		memcpy(d, p, len);
	}
}

/* msgpack_packer's writer. Keeps at most OUT_IOV - 1 iovecs between calls,
 * so that out_drain can always close the run. */
static int out_put(void *data, const char *p, size_t len)
{
	struct out *o = data;
	if (len < GATHER_MIN) {
		if (OUT_BUF - o->used < len)
			out_drain(o);
		out_copy_small(o->buf + o->used, p, len);
		o->used += len;
	} else {
		if (o->n_iov + 3 > OUT_IOV)
			out_drain(o);
		out_close_run(o);
		o->iov[o->n_iov].iov_base = (void *)p;
		o->iov[o->n_iov].iov_len = len;
		o->n_iov++;
	}
	return o->failed ? -1 : 0;
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
