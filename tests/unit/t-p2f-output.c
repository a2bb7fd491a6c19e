/* t-p2f-output.c: pcap2flow's own packing of flow records (output.c) gives
 * the bytes of record.h's flow_write, whatever the sizes of the numbers,
 * strings and packets, and through drains of its buffer and iovecs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../tools/pcap2flow/output.h"
#include "cli.h"
#include "record.h"
#include "../tap.h"

/* Boundaries of msgpack's number forms. */
static const uint64_t numbers[] = {
	0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295ull, 4294967296ull,
	1700000000123456789ull, UINT64_MAX,
};
#define N_NUMBERS (sizeof numbers / sizeof numbers[0])

static uint8_t bytes[300000];

/* What flow_write packs. */
static size_t reference(const struct flow_rec *f, uint8_t **out)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	flow_write(&pk, f);
	*out = (uint8_t *)sb.data;
	return sb.size;
}

/* What out_flow writes, n times over, to a file read back. */
static size_t ours(const struct flow_rec *f, int n, uint8_t **out)
{
	FILE *tf = tmpfile();
	struct out o;
	out_init(&o, fileno(tf), "tmpfile");
	for (int i = 0; i < n; i++)
		out_flow(&o, f);
	out_drain(&o);
	out_free(&o);
	off_t size = lseek(fileno(tf), 0, SEEK_END);
	if (size < 0)
		size = 0;
	*out = xmalloc((size_t)size + 1);
	size_t got = (size_t)pread(fileno(tf), *out, (size_t)size, 0);
	fclose(tf);
	return got;
}

/* Whether out_flow, n times, is flow_write n times. */
static int same(const struct flow_rec *f, int n)
{
	uint8_t *want, *got;
	size_t want_len = reference(f, &want), got_len = ours(f, n, &got);
	int ok = got_len == want_len * (size_t)n;
	for (int i = 0; ok && i < n; i++)
		ok = memcmp(got + (size_t)i * want_len, want, want_len) == 0;
	free(want);
	free(got);
	return ok;
}

static struct flow_rec base(struct packet *pk, size_t n_pk)
{
	struct flow_rec f = { 0 };
	f.id = 7;
	f.source = "capture.pcap", f.source_len = 12;
	f.linktype = 1, f.snaplen = 262144, f.tsprec = 6;
	f.ip_version = 4, f.proto = 6;
	for (int i = 0; i < 16; i++)
		f.src_ip[i] = (uint8_t)(i + 1), f.dst_ip[i] = (uint8_t)(200 + i);
	f.src_port = 40000, f.dst_port = 443;
	f.first_ns = 1700000000000000000ull, f.last_ns = f.first_ns + 5;
	f.packets[0] = 3, f.bytes[1] = 1500;
	f.end = END_FIN;
	for (size_t i = 0; i < n_pk; i++)
		pk[i] = (struct packet){ f.first_ns + i, (uint32_t)(i * 7 % 1600), 1500, i, (uint8_t)(i & 1),
					 bytes + i };
	f.n_packets = n_pk, f.pkt = pk;
	return f;
}

int main(void)
{
	static struct packet pk[70000];
	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (uint8_t)(i * 31 + 7);

	struct flow_rec f = base(pk, 3);
	ok(same(&f, 1), "an IPv4 TCP flow");
	f.ip_version = 6, f.proto = 17;
	ok(same(&f, 1), "IPv6 addresses");
	f.ip_version = 0, f.proto = 0, f.end = END_FRAME;
	ok(same(&f, 1), "no addresses when not IP");
	f = base(pk, 3);
	f.n_vlan = 1, f.vlan[0] = 100;
	ok(same(&f, 1), "one VLAN");
	f.n_vlan = 2, f.vlan[0] = 4095, f.vlan[1] = 200;
	ok(same(&f, 1), "two VLANs");
	f.label = "web", f.label_len = 3;
	ok(same(&f, 1), "a short label");
	static char long_text[70000];
	memset(long_text, 'x', sizeof long_text);
	size_t text_lens[] = { 31, 32, 255, 256, 65535, 65536 };
	int all = 1;
	for (size_t i = 0; i < sizeof text_lens / sizeof *text_lens; i++) {
		f.label = long_text, f.label_len = text_lens[i];
		f.source = long_text, f.source_len = text_lens[i];
		all &= same(&f, 1);
	}
	ok(all, "sources and labels of every string form");
	f = base(pk, 3);
	f.source = NULL, f.source_len = 0;
	ok(same(&f, 1), "no source");
	all = 1;
	for (int e = END_EOF; e <= END_FRAME; e++) {
		f.end = (enum flow_end)e;
		all &= same(&f, 1);
	}
	ok(all, "every end");

	all = 1;
	for (size_t i = 0; i < N_NUMBERS; i++) {
		uint64_t v = numbers[i];
		f = base(pk, 2);
		f.id = v, f.first_ns = v, f.last_ns = v, f.packets[0] = v, f.bytes[0] = v;
		f.packets[1] = v, f.bytes[1] = v;
		f.linktype = (uint32_t)v, f.snaplen = (uint32_t)v;
		f.src_port = (uint16_t)v, f.dst_port = (uint16_t)v;
		f.n_vlan = 1, f.vlan[0] = (uint16_t)v;
		pk[0].ts_ns = v, pk[0].index = v, pk[0].wirelen = (uint32_t)v;
		all &= same(&f, 1);
	}
	ok(all, "numbers at every form's bounds");

	all = 1;
	uint32_t caplens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536, 262144 };
	for (size_t i = 0; i < sizeof caplens / sizeof *caplens; i++) {
		f = base(pk, 1);
		pk[0].caplen = caplens[i];
		all &= same(&f, 1);
	}
	ok(all, "packets of every bin form, copied or taken in place");

	size_t counts[] = { 0, 15, 16, 65535, 65536 };
	all = 1;
	for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
		f = base(pk, counts[i]);
		all &= same(&f, 1);
	}
	ok(all, "packet arrays of every form");
	f = base(pk, 5000);
	ok(same(&f, 40), "many records through many drains");
	return tap_done();
}
