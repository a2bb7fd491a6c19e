/* fuzz-stream.c: libFuzzer target for the stream reader and the record
 * decoders: any bytes must give records or a clean error, never a crash,
 * a leak or an out-of-bounds read. Records are re-encoded and decoded again
 * to check that what the decoder accepts, the encoder can write. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

static void reencode_flow(const struct flow_rec *f)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	hdr_write(&pk, SCHEMA_FLOW, "fuzz");
	flow_write(&pk, f);
	struct rec_reader r;
	rec_open_mem(&r, sb.data, sb.size, "reencoded");
	if (rec_next(&r, REC_FLOW) != REC_FLOW || r.flow.n_packets != f->n_packets)
		abort();
	rec_close(&r);
	msgpack_sbuffer_destroy(&sb);
}

/* A container header may claim 2^32 entries: msgpack-c then asks for the
 * memory up front. Outside ASan, malloc fails and the reader reports "out of
 * memory decoding the object at byte offset N"; here we make ASan behave
 * the same instead of aborting. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=2048";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte picks which record kind the "tool" wants. */
	enum rec_kind want = size && data[0] & 1 ? REC_TOK : REC_FLOW;
	struct rec_reader r;
	rec_open_mem(&r, data, size, "fuzz");
	int k;
	while ((k = rec_next(&r, want)) > 0) {
		if (k == REC_FLOW)
			reencode_flow(&r.flow);
		else
			for (size_t i = 0; i < r.tok.n_tokens; i++)
				(void)tok_at(&r.tok, i);
	}
	rec_close(&r);
	return 0;
}
