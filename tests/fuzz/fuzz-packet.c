/* fuzz-packet.c: libFuzzer target for the packet decoder: any frame of any
 * link type must decode within its captured bytes, and every offset the
 * decoder reports must lie inside them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"

static const uint32_t linktypes[] = { LT_NULL, LT_ETHERNET, LT_RAW, LT_LOOP, LT_LINUX_SLL,
				      LT_IPV4, LT_IPV6, LT_LINUX_SLL2 };

static void check_off(int off, size_t len, size_t caplen)
{
	if (off >= 0 && (size_t)off + len > caplen)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t lt = linktypes[data[0] % (sizeof linktypes / sizeof linktypes[0])];
	/* A heap copy of exactly the frame, so ASan sees any read past it. */
	size_t caplen = size - 1;
	uint8_t *frame = malloc(caplen ? caplen : 1);
	memcpy(frame, data + 1, caplen);
	struct pkt_info pi;
	pkt_decode(lt, frame, caplen, &pi);
	for (int i = 0; i < 2; i++)
		check_off(pi.l2_addr_off[i], pi.l2_addr_len[i], caplen);
	if (pi.ip_version) {
		check_off(pi.src_off, pi.addr_len, caplen);
		check_off(pi.dst_off, pi.addr_len, caplen);
	}
	if (pi.has_ports)
		check_off(pi.port_off, 4, caplen);
	free(frame);
	return 0;
}
