/* t-p2f-pcapng.c: pcap2flow's reader of pcapng files whose interfaces have
 * several link types (pcapng.c), on a file built here block by block: two
 * sections of either byte order, interfaces with if_tsresol (decimal and
 * binary) and if_tsoffset, enhanced, simple and obsolete packet blocks, and
 * a block it must skip. Every packet's link type, time, lengths and bytes
 * are checked against what the file was built from. Then the file damaged
 * every way a byte can damage it (cut at every length; each byte set to
 * 0x00, 0xff, 0x7f or flipped): the reader returns packets, the end or an
 * error, never reads outside the block it holds (asserted here, and under
 * make check SAN=1 by ASan), and a file cut short yields only packets that
 * are the file's own. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/pcap2flow/reader.h"
#include "../tap.h"

#define NS UINT64_C(1000000000)

/* ------------------------------------------------------------ building */

static uint8_t file[4096];
static size_t file_len;
static int big; /* the section being written is big-endian */

static void put16(uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(big ? v >> 8 : v), (uint8_t)(big ? v : v >> 8) };
	memcpy(file + file_len, b, 2);
	file_len += 2;
}

static void put32(uint32_t v)
{
	for (int i = 0; i < 4; i++)
		file[file_len++] = (uint8_t)(v >> (big ? 24 - 8 * i : 8 * i));
}

static void put_bytes(const void *p, size_t n)
{
	memcpy(file + file_len, p, n);
	file_len += n;
	while (file_len % 4)
		file[file_len++] = 0;
}

/* A block: its type and length, the body put by the caller, then the length again. */
static size_t block_start(uint32_t type)
{
	size_t at = file_len;
	put32(type);
	put32(0); /* the length, set by block_end */
	return at;
}

static void block_end(size_t at)
{
	uint32_t len = (uint32_t)(file_len + 4 - at);
	size_t end = file_len;
	file_len = at + 4;
	put32(len);
	file_len = end;
	put32(len);
}

static void section(int big_endian)
{
	big = big_endian;
	size_t at = block_start(0x0a0d0d0a);
	put32(0x1a2b3c4d);
	put16(1);
	put16(0);
	put32(0xffffffff);
	put32(0xffffffff);
	block_end(at);
}

static void interface(uint16_t linktype, uint32_t snaplen, int tsresol, int64_t tsoffset)
{
	size_t at = block_start(1);
	put16(linktype);
	put16(0);
	put32(snaplen);
	if (tsresol >= 0) {
		put16(9);
		put16(1);
		uint8_t v = (uint8_t)tsresol;
		put_bytes(&v, 1);
	}
	if (tsoffset) {
		put16(14);
		put16(8);
		uint64_t u = (uint64_t)tsoffset;
		put32(big ? (uint32_t)(u >> 32) : (uint32_t)u);
		put32(big ? (uint32_t)u : (uint32_t)(u >> 32));
	}
	put16(0);
	put16(0);
	block_end(at);
}

/* What a packet must come back as. */
struct want {
	uint32_t linktype, caplen, wirelen;
	uint64_t ts_ns;
	uint8_t first; /* its bytes are first, first + 1, ... */
};
static struct want wants[16];
static size_t n_wants;

static void payload(uint8_t *p, uint32_t n, uint8_t first)
{
	for (uint32_t i = 0; i < n; i++)
		p[i] = (uint8_t)(first + i);
}

static void epb(uint32_t iface, uint64_t ts, uint32_t caplen, uint32_t wirelen, struct want w)
{
	uint8_t data[256];
	size_t at = block_start(6);
	put32(iface);
	put32((uint32_t)(ts >> 32));
	put32((uint32_t)ts);
	put32(caplen);
	put32(wirelen);
	payload(data, caplen, w.first);
	put_bytes(data, caplen);
	put16(0); /* no options, but an end marker */
	put16(0);
	block_end(at);
	wants[n_wants++] = w;
}

static void build(void)
{
	uint8_t data[256];
	file_len = n_wants = 0;
	section(0);
	interface(1, 0, 9, 10);     /* Ethernet, nanoseconds, 10 s later */
	interface(113, 64, -1, 0);  /* Linux cooked, microseconds, snaplen 64 */
	epb(0, UINT64_C(1700000000123456789), 60, 60,
	    (struct want){ 1, 60, 60, UINT64_C(1700000010123456789), 0x10 });
	epb(1, UINT64_C(1700000000654321), 44, 100,
	    (struct want){ 113, 44, 100, UINT64_C(1700000000654321000), 0x20 });
	size_t at = block_start(0x00000bad); /* a custom block: skipped */
	put32(32473);
	put_bytes("not a packet", 12);
	block_end(at);
	at = block_start(3);                /* a simple packet of interface 0 */
	put32(100);
	payload(data, 40, 0x30);
	put_bytes(data, 40);
	block_end(at);
	wants[n_wants++] = (struct want){ 1, 40, 100, 0, 0x30 };
	at = block_start(2);                /* the obsolete packet block, interface 1 */
	put16(1);
	put16(0);
	put32(0);
	put32(1000000);
	put32(8);
	put32(8);
	payload(data, 8, 0x40);
	put_bytes(data, 8);
	block_end(at);
	wants[n_wants++] = (struct want){ 113, 8, 8, NS, 0x40 };
	section(1);                         /* a big-endian section: interfaces anew */
	interface(101, 0, 0x80 | 20, 0);    /* raw IP, 2^-20 s */
	epb(0, (UINT64_C(1700000001) << 20) | (1u << 19), 20, 20,
	    (struct want){ 101, 20, 20, UINT64_C(1700000001500000000), 0x50 });
}

/* ------------------------------------------------------------ reading */

static const char *path;

static void write_file(size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(file, 1, len, f) != len || fclose(f) != 0) {
		printf("Bail out! writing %s\n", path);
		exit(1);
	}
}

/* Reads the file: the packets (checked against wants unless damaged), and
 * whether the reader kept inside its block. Returns the last capture_next
 * code, or the open's status (negative). */
static int read_all(size_t *n, int *outside, int check, int *wrong)
{
	struct capture c;
	*n = 0;
	*outside = *wrong = 0;
	int status = capture_open(&c, path, path);
	if (status)
		return -status;
	struct raw raw;
	int rc;
	while ((rc = capture_next(&c, &raw)) == CAP_PACKET) {
		if (c.ng) {
			const uint8_t *b = c.ng_in.block, *end = b + c.ng_in.block_len;
			*outside |= raw.data < b || raw.caplen > (size_t)(end - raw.data);
		}
		if (check) {
			const struct want *w = *n < n_wants ? &wants[*n] : NULL;
			uint8_t data[256];
			if (w)
				payload(data, w->caplen, w->first);
			*wrong |= !w || raw.linktype != w->linktype || raw.caplen != w->caplen ||
				  raw.wirelen != w->wirelen || raw.ts_ns != w->ts_ns ||
				  memcmp(raw.data, data, w->caplen) != 0;
		}
		++*n;
	}
	capture_close(&c);
	return rc;
}

static void whole_file(void)
{
	write_file(file_len);
	struct capture c;
	ok(capture_open(&c, path, path) == 0, "the file opens");
	ok(c.ng, "interfaces of two link types: read by the pcapng reader, not libpcap");
	struct raw raw;
	size_t i = 0;
	int rc;
	while ((rc = capture_next(&c, &raw)) == CAP_PACKET && i < n_wants) {
		const struct want *w = &wants[i++];
		uint8_t data[256];
		payload(data, w->caplen, w->first);
		char what[80];
		snprintf(what, sizeof what, "packet %zu: link type", i);
		is_int(raw.linktype, w->linktype, what);
		snprintf(what, sizeof what, "packet %zu: time stamp", i);
		is_u64(raw.ts_ns, w->ts_ns, what);
		snprintf(what, sizeof what, "packet %zu: captured and wire lengths", i);
		ok(raw.caplen == w->caplen && raw.wirelen == w->wirelen, what);
		snprintf(what, sizeof what, "packet %zu: bytes", i);
		is_mem(raw.data, data, w->caplen, what);
	}
	is_int(i, n_wants, "every packet, the custom block skipped");
	is_int(rc, CAP_END, "then the end");
	struct capture_lt eth = capture_lt_of(&c, 1), sll = capture_lt_of(&c, 113),
			  raw_ip = capture_lt_of(&c, 101);
	ok(eth.tsprec == 9 && sll.tsprec == 6 && raw_ip.tsprec == 9,
	   "precision per link type: ns (10^-9, 2^-20), us (the default)");
	ok(sll.snaplen == 64 && eth.snaplen == 0, "snapshot length per link type");
	capture_close(&c);
}

/* Cut at every length: a clean end only at a block boundary, and every
 * packet before the cut is the file's own. */
static void cut_everywhere(void)
{
	size_t bad = 0, outside = 0, wrong = 0, ends = 0, errors = 0;
	for (size_t len = 0; len < file_len; len++) {
		write_file(len);
		size_t n;
		int out, wr;
		int rc = read_all(&n, &out, 1, &wr);
		bad += rc != CAP_END && rc != CAP_ERROR && rc >= 0;
		outside += out;
		wrong += wr;
		ends += rc == CAP_END;
		errors += rc == CAP_ERROR || rc < 0;
	}
	is_int(bad, 0, "cut anywhere: packets, then the end or an error");
	is_int(outside, 0, "cut anywhere: no packet outside its block");
	is_int(wrong, 0, "cut anywhere: the packets read are the file's");
	ok(errors > file_len / 2, "cut anywhere: mostly an error (a cut inside a block)");
	printf("# %zu cuts: %zu clean ends, %zu errors\n", file_len, ends, errors);
}

/* Each byte set to values that break lengths, types and magic numbers. */
static void corrupt_everywhere(void)
{
	size_t bad = 0, outside = 0, runs = 0;
	for (size_t at = 0; at < file_len; at++) {
		uint8_t keep = file[at];
		uint8_t values[] = { 0x00, 0xff, 0x7f, (uint8_t)(keep ^ 0x01) };
		for (size_t v = 0; v < sizeof values; v++) {
			file[at] = values[v];
			write_file(file_len);
			size_t n;
			int out, wr;
			int rc = read_all(&n, &out, 0, &wr);
			bad += (rc != CAP_END && rc != CAP_ERROR && rc >= 0) || n > 2 * n_wants;
			outside += out;
			runs++;
		}
		file[at] = keep;
	}
	is_int(bad, 0, "a byte damaged anywhere: packets, then the end or an error");
	is_int(outside, 0, "a byte damaged anywhere: no packet outside its block");
	printf("# %zu damaged files read\n", runs);
}

/* The reader's messages on damaged files go to /dev/null, not the report. */
static int quiet_stderr(void)
{
	fflush(stderr);
	int saved = dup(2), null = open("/dev/null", O_WRONLY);
	if (null >= 0) {
		dup2(null, 2);
		close(null);
	}
	return saved;
}

static void restore_stderr(int saved)
{
	fflush(stderr);
	if (saved >= 0) {
		dup2(saved, 2);
		close(saved);
	}
}

int main(void)
{
	if (tap_tmpdir("t-p2f-pcapng") < 0)
		return 1;
	path = tap_path("multi.pcapng");
	build();
	whole_file();
	int saved = quiet_stderr();
	cut_everywhere();
	corrupt_everywhere();
	restore_stderr(saved);
	unlink(path);
	tap_rmdir();
	return tap_done();
}
