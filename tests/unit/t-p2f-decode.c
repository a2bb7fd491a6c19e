/* t-p2f-decode.c: pcap2flow's quick decoding of plain Ethernet/IPv4/TCP or
 * UDP frames (flowtable.c) gives pkt_decode's pkt_info, field for field,
 * for frames cut at every length and with every header variant around the
 * plain one, and for every frame of the corpus ($CORPUS) when it is there. */
#include <dirent.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/pcap2flow/flowtable.h"
#include "packet.h"
#include "../tap.h"

static unsigned long compared, differing;

/* Both decoders on one frame; counts a difference in result or any byte
 * of the pkt_info (both start from a zeroed one, padding included). */
static void compare(uint32_t linktype, const uint8_t *p, size_t caplen)
{
	struct pkt_info want, got;
	memset(&want, 0xa5, sizeof want);
	memset(&got, 0x5a, sizeof got);
	int rw = pkt_decode(linktype, p, caplen, &want);
	int rg = flow_decode_frame(linktype, p, caplen, &got);
	compared++;
	if (rw != rg || memcmp(&want, &got, sizeof want) != 0) {
		if (differing++ < 5)
			printf("# differs: linktype %u, caplen %zu\n", linktype, caplen);
	}
}

/* An Ethernet II frame with an IPv4 header of hlen bytes and a TCP or UDP
 * header after it. */
static size_t plain_frame(uint8_t *f, int proto, size_t hlen)
{
	memset(f, 0, 128);
	for (int i = 0; i < 12; i++)
		f[i] = (uint8_t)(0x10 + i);
	f[12] = 0x08, f[13] = 0x00;
	f[14] = (uint8_t)(0x40 | (hlen / 4));
	f[16] = 0x00, f[17] = 60;                /* total length */
	f[22] = 64, f[23] = (uint8_t)proto;      /* TTL, protocol */
	for (int i = 0; i < 8; i++)
		f[26 + i] = (uint8_t)(10 + i);   /* addresses */
	size_t l4 = 14 + hlen;
	f[l4] = 0xc3, f[l4 + 1] = 0x50, f[l4 + 2] = 0x01, f[l4 + 3] = 0xbb;
	for (int i = 4; i < 12; i++)
		f[l4 + i] = (uint8_t)(0x70 + i); /* sequence and ack numbers */
	f[l4 + 12] = 0x50, f[l4 + 13] = 0x18, f[l4 + 14] = 0x01, f[l4 + 15] = 0xf6;
	return l4 + 20 + 8;
}

static void synthetic(void)
{
	uint8_t f[128];
	int protos[] = { 6, 17, 1, 0 };
	for (size_t pi = 0; pi < sizeof protos / sizeof *protos; pi++)
		for (size_t hlen = 0; hlen <= 60; hlen += 4)
			for (size_t cut = 0; cut <= 96; cut++) {
				size_t len = plain_frame(f, protos[pi], hlen < 20 ? 20 : hlen);
				f[14] = (uint8_t)(0x40 | (hlen / 4)); /* also IHL below 5 */
				compare(1, f, cut < len ? cut : len);
			}
	/* fragments, versions, ethertypes, TCP data offsets, link types */
	for (int bit = -1; bit < 16; bit++) { /* no flag, then each bit of the field */
		uint16_t frag = bit < 0 ? 0 : (uint16_t)(1u << bit);
		size_t len = plain_frame(f, 6, 20);
		f[20] = (uint8_t)(frag >> 8), f[21] = (uint8_t)frag;
		compare(1, f, len);
	}
	for (int v = 0; v < 16; v++) {
		size_t len = plain_frame(f, 17, 20);
		f[14] = (uint8_t)(v << 4 | 5);
		compare(1, f, len);
	}
	uint16_t types[] = { 0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806, 0x0801, 0x0005 };
	for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
		size_t len = plain_frame(f, 6, 20);
		f[12] = (uint8_t)(types[i] >> 8), f[13] = (uint8_t)types[i];
		compare(1, f, len);
	}
	for (int off = 0; off < 16; off++)
		for (size_t cut = 54; cut <= 96; cut++) {
			size_t len = plain_frame(f, 6, 20);
			f[14 + 20 + 12] = (uint8_t)(off << 4);
			compare(1, f, cut < len ? cut : len);
		}
	uint32_t linktypes[] = { 0, 101, 113, 228, 276, 12345 };
	for (size_t i = 0; i < sizeof linktypes / sizeof *linktypes; i++) {
		size_t len = plain_frame(f, 6, 20);
		compare(linktypes[i], f, len);
	}
	compare(1, NULL, 0);
}

/* Every frame of every capture below dir. */
static void corpus(const char *dir, unsigned *files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR) {
			corpus(path, files);
			continue;
		}
		char eb[PCAP_ERRBUF_SIZE];
		pcap_t *p = pcap_open_offline(path, eb);
		if (!p)
			continue;
		(*files)++;
		/* libpcap's DLT_ values equal the LINKTYPE_ ones the decoder
		 * knows, but raw IP */
		int dlt = pcap_datalink(p);
		uint32_t linktype = dlt == DLT_RAW ? LT_RAW : (uint32_t)dlt;
		struct pcap_pkthdr *h;
		const u_char *bytes;
		while (pcap_next_ex(p, &h, &bytes) == 1)
			compare(linktype, bytes, h->caplen);
		pcap_close(p);
	}
	closedir(d);
}

int main(void)
{
	synthetic();
	is_u64(differing, 0, "the same pkt_info as pkt_decode for every synthetic frame");
	ok(compared > 6000, "thousands of synthetic frames compared");
	const char *dir = getenv("CORPUS");
	if (!dir || !*dir) {
		printf("ok %d # skip CORPUS not set\n", ++tap_count);
		return tap_done();
	}
	unsigned files = 0;
	unsigned long before = compared;
	differing = 0;
	corpus(dir, &files);
	printf("# %u captures, %lu frames\n", files, compared - before);
	if (files == 0)
		printf("ok %d # skip no captures under %s\n", ++tap_count, dir);
	else
		is_u64(differing, 0, "the same pkt_info as pkt_decode for every frame of the corpus");
	return tap_done();
}
