/* output.h: pcap2flow's stream out. msgpack's small pieces are packed into
 * a buffer; packet bytes are not copied but gathered as iovecs, so writev(2)
 * takes them from where they lie (a flow's chunks, or the mapped file). */
#ifndef PCAP2FLOW_OUTPUT_H
#define PCAP2FLOW_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "record.h"
#include "stream.h"

#define OUT_IOV 1024 /* IOV_MAX on Linux */

struct out {
	int fd;
	const char *name;       /* for messages */
	msgpack_packer pk;
	uint8_t *buf;
	size_t used, run;       /* bytes in buf; start of those not yet in iov */
	struct iovec iov[OUT_IOV];
	int n_iov;
	int failed;             /* errno of the first failed write, or 0 */
	/* Called after each drain: the bytes the iovecs pointed to may go. */
	void (*drained)(void *arg);
	void *drained_arg;
};

/* Writes to fd (name for messages); asks a pipe for a larger buffer. */
void out_init(struct out *o, int fd, const char *name);
/* Writes everything gathered, then calls o->drained. After a failed write
 * the rest is dropped: the caller gives up on seeing o->failed. */
void out_drain(struct out *o);
/* A flow record (record.h's flow_write, faster). */
void out_flow(struct out *o, const struct flow_rec *rec);
void out_free(struct out *o);

#endif
