/* pcapng.c: pcap2flow's own pcapng reader (see reader-private.h), for the
 * files whose interfaces have several link types, which libpcap refuses:
 * a block at a time, each packet with its interface's link type. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "cli.h"
#include "reader-private.h"

/* if_tsresol: time stamp units per second, 10^k or 2^k; 0 when no uint64
 * holds it (the interface is refused). */
static uint64_t tsresol_units(uint8_t v)
{
	unsigned k = v & 0x7f;
	if (v & 0x80)
		return k < 64 ? (uint64_t)1 << k : 0;
	if (k > 19)
		return 0;
	uint64_t u = 1;
	while (k--)
		u *= 10;
	return u;
}

/* An interface description block's body (link type, reserved, snap length,
 * options), bounds-checked: the options end at their end marker, or where
 * the next one would not fit. */
void pcapng_parse_idb(const uint8_t *body, size_t len, int big, struct ng_iface *ifc)
{
	ifc->linktype = rd16(body, big);
	ifc->snaplen = rd32(body + 4, big);
	ifc->units = 1000000;
	ifc->offset_s = 0;
	for (size_t at = 8; at + 4 <= len;) {
		uint16_t code = rd16(body + at, big), olen = rd16(body + at + 2, big);
		if (code == 0 || olen > len - at - 4)
			break;
		const uint8_t *v = body + at + 4;
		if (code == NG_OPT_TSRESOL && olen >= 1)
			ifc->units = tsresol_units(v[0]);
		if (code == NG_OPT_TSOFFSET && olen >= 8)
			ifc->offset_s = (int64_t)((uint64_t)rd32(v + (big ? 0 : 4), big) << 32 |
						  rd32(v + (big ? 4 : 0), big));
		at += 4 + (((size_t)olen + 3) & ~(size_t)3);
	}
	/* finer than a microsecond: nanoseconds in the flow records */
	ifc->tsprec = ifc->units > 1000000 ? 9 : 6;
}

/* libpcap reads a pcapng file only when all its interfaces share one link
 * type; captures on several interfaces, or on "any" beside one NIC, have
 * several. Such files are read here, a block at a time: each packet keeps
 * the link type of its interface. Every length is checked against the
 * block that holds it before it is used (pcapng's draft, section 3): a
 * damaged block is an error naming its file offset, never a read past it.
 * Sections (each with its byte order and interfaces), enhanced, simple and
 * obsolete packet blocks are read; other blocks are skipped. The bytes of
 * packets are given as the file has them (libpcap would rewrite a few
 * pseudo-headers of byte-swapped sections). */
#define NG_MAX_BLOCK (16u << 20)   /* libpcap's largest block */
#define NG_MAX_IFACES 65536u       /* per section: packet blocks name at most 2^32 */

static int ng_error(struct ng_in *in, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int ng_error(struct ng_in *in, uint64_t off, const char *fmt, ...)
{
	int n = snprintf(in->why, sizeof in->why, "pcapng block at byte offset %" PRIu64 ": ", off);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof in->why)
		vsnprintf(in->why + n, sizeof in->why - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Reads n bytes; returns how many came (fewer only at the end), or -1 on a
 * read error. */
static ssize_t ng_read(struct ng_in *in, uint8_t *to, size_t n)
{
	size_t got = fread(to, 1, n, in->f);
	if (got < n && ferror(in->f))
		return -1;
	return (ssize_t)got;
}

/* The next block into in->block: 1 with its type and body (between the
 * length fields), 0 at a clean end, -1 on damage or a read error. */
static int ng_block(struct ng_in *in, uint32_t *type, const uint8_t **body, size_t *len)
{
	uint8_t head[12];
	uint64_t off = in->off;
	ssize_t got = ng_read(in, head, 8);
	if (got < 0)
		return ng_error(in, off, "%s", strerror(errno));
	if (got == 0)
		return 0;
	if (got < 8)
		return ng_error(in, off, "file ends inside a block header");
	size_t have = 8;
	if (rd32(head, 0) == NG_SHB) { /* its byte-order magic says how to read it */
		if (ng_read(in, head + 8, 4) != 4)
			return ng_error(in, off, "file ends inside a section header");
		have = 12;
		if (rd32(head + 8, 1) == NG_BOM)
			in->big = 1;
		else if (rd32(head + 8, 0) == NG_BOM)
			in->big = 0;
		else
			return ng_error(in, off, "section header without a byte-order magic");
	}
	*type = rd32(head, in->big);
	uint32_t total = rd32(head + 4, in->big);
	if (total < 12 || total % 4 || total > NG_MAX_BLOCK || (*type == NG_SHB && total < 28))
		return ng_error(in, off, "block length %" PRIu32 " is not a multiple of 4 from %u to %u",
				total, *type == NG_SHB ? 28u : 12u, NG_MAX_BLOCK);
	grow((void **)&in->block, &in->block_cap, total, 1);
	memcpy(in->block, head, have);
	got = ng_read(in, in->block + have, total - have);
	if (got < 0)
		return ng_error(in, off, "%s", strerror(errno));
	if ((size_t)got < total - have)
		return ng_error(in, off, "file ends inside a block of %" PRIu32 " bytes", total);
	if (rd32(in->block + total - 4, in->big) != total)
		return ng_error(in, off, "trailing block length differs from the leading one");
	in->off += total;
	in->block_len = total;
	*body = in->block + 8;
	*len = total - 12;
	return 1;
}

/* A new section: its interfaces start again. */
static int ng_section(struct ng_in *in, const uint8_t *body, size_t len, uint64_t off)
{
	if (len < 16 || rd16(body + 4, in->big) != 1)
		return ng_error(in, off, "section header of a version other than 1.x");
	in->n_ifaces = 0;
	return 0;
}

static int ng_interface(struct ng_in *in, struct capture *c, const uint8_t *body, size_t len,
			uint64_t off)
{
	if (len < 8)
		return ng_error(in, off, "interface description of %zu bytes", len);
	if (in->n_ifaces == NG_MAX_IFACES)
		return ng_error(in, off, "more than %u interfaces in a section", NG_MAX_IFACES);
	grow((void **)&in->ifaces, &in->ifaces_cap, in->n_ifaces + 1, sizeof *in->ifaces);
	struct ng_iface *ifc = &in->ifaces[in->n_ifaces++];
	pcapng_parse_idb(body, len, in->big, ifc);
	if (ifc->units == 0)
		return ng_error(in, off, "interface time stamp resolution beyond nanoseconds of 64 bits");
	/* what the flow records of its link type say */
	struct capture_lt *lt = NULL;
	for (size_t i = 0; i < c->n_lts && !lt; i++)
		if (c->lts[i].linktype == ifc->linktype)
			lt = &c->lts[i];
	if (!lt) {
		grow((void **)&c->lts, &c->lts_cap, c->n_lts + 1, sizeof *c->lts);
		lt = &c->lts[c->n_lts++];
		*lt = (struct capture_lt){ ifc->linktype, 0, 6 };
	}
	if (ifc->snaplen > lt->snaplen)
		lt->snaplen = ifc->snaplen;
	if (ifc->tsprec > lt->tsprec)
		lt->tsprec = ifc->tsprec;
	return 0;
}

/* A time stamp in an interface's units to nanoseconds since the epoch
 * (saturating: a pcapng time stamp can lie past 2554). */
static uint64_t ng_ts_ns(const struct ng_iface *ifc, uint64_t ts)
{
	uint64_t sec = ts / ifc->units, frac = ts % ifc->units;
	__extension__ unsigned __int128 ns = (unsigned __int128)frac * NS_PER_S / ifc->units;
	int64_t s = (int64_t)(sec > INT64_MAX ? INT64_MAX : sec);
	if (ifc->offset_s > 0 && s > INT64_MAX - ifc->offset_s)
		s = INT64_MAX;
	else
		s += ifc->offset_s;
	if (s < 0)
		return 0;
	if ((uint64_t)s > (UINT64_MAX - (uint64_t)ns) / NS_PER_S)
		return UINT64_MAX;
	return (uint64_t)s * NS_PER_S + (uint64_t)ns;
}

/* A packet block's interface, or NULL after an error. */
static const struct ng_iface *ng_iface_of(struct ng_in *in, uint32_t id, uint64_t off)
{
	if (id >= in->n_ifaces) {
		ng_error(in, off, "packet of interface %" PRIu32 ", but the section describes %zu",
			 id, in->n_ifaces);
		return NULL;
	}
	return &in->ifaces[id];
}

/* The next packet: 1 with *raw (valid until the next call), 0 at the end,
 * -1 on damage (in->why). */
int pcapng_next(struct ng_in *in, struct capture *c, struct raw *raw)
{
	for (;;) {
		uint64_t off = in->off;
		uint32_t type = 0;
		const uint8_t *b = NULL;
		size_t len = 0;
		int rc = ng_block(in, &type, &b, &len);
		if (rc <= 0)
			return rc;
		const struct ng_iface *ifc;
		uint32_t caplen, wirelen;
		uint64_t ts;
		size_t data_off;
		switch (type) {
		case NG_SHB:
			if (ng_section(in, b, len, off) < 0)
				return -1;
			continue;
		case NG_IDB:
			if (ng_interface(in, c, b, len, off) < 0)
				return -1;
			continue;
		case NG_EPB:
		case NG_PB:
			if (len < 20)
				return ng_error(in, off, "packet block of %zu bytes", len);
			ifc = ng_iface_of(in, type == NG_EPB ? rd32(b, in->big) : rd16(b, in->big), off);
			if (!ifc)
				return -1;
			ts = (uint64_t)rd32(b + 4, in->big) << 32 | rd32(b + 8, in->big);
			caplen = rd32(b + 12, in->big);
			wirelen = rd32(b + 16, in->big);
			data_off = 20;
			if (caplen > len - data_off)
				return ng_error(in, off, "%" PRIu32 " captured bytes in a block of %zu",
						caplen, len);
			break;
		case NG_SPB:
			/* no time stamp, no captured length: interface 0's packet,
			 * as much of it as the block and the snapshot length hold */
			if (len < 4)
				return ng_error(in, off, "simple packet block of %zu bytes", len);
			if (!(ifc = ng_iface_of(in, 0, off)))
				return -1;
			ts = 0;
			wirelen = rd32(b, in->big);
			data_off = 4;
			caplen = wirelen < len - data_off ? wirelen : (uint32_t)(len - data_off);
			if (ifc->snaplen && caplen > ifc->snaplen)
				caplen = ifc->snaplen;
			break;
		default:
			continue; /* statistics, name resolution, custom, ... */
		}
		raw->ts_ns = type == NG_SPB ? 0 : ng_ts_ns(ifc, ts);
		c->ts_clamped += raw->ts_ns == UINT64_MAX;
		raw->caplen = caplen;
		raw->wirelen = wirelen;
		raw->linktype = ifc->linktype;
		raw->data = b + data_off;
		return 1;
	}
}

/* Whether the pcapng file on fd, from offset start, describes interfaces of
 * more than one link type, in any section: its blocks are walked, mapped,
 * without looking into the packets. A damaged block ends the walk (the
 * reader says what is wrong with it). */
int pcapng_scan_mixed(int fd, uint64_t start)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size <= start)
		return 0;
	size_t size = (size_t)st.st_size;
	uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return 0;
	madvise(map, size, MADV_SEQUENTIAL);
	int big = 0, mixed = 0, have_lt = 0;
	uint32_t first = 0;
	for (size_t at = (size_t)start; !mixed && size - at >= 12;) {
		if (rd32(map + at, 0) == NG_SHB) {
			if (rd32(map + at + 8, 1) == NG_BOM)
				big = 1;
			else if (rd32(map + at + 8, 0) == NG_BOM)
				big = 0;
			else
				break;
		}
		uint32_t type = rd32(map + at, big), total = rd32(map + at + 4, big);
		if (total < 12 || total % 4 || total > size - at)
			break;
		if (type == NG_IDB && total >= 20) {
			uint32_t lt = rd16(map + at + 8, big);
			mixed = have_lt && lt != first;
			first = have_lt ? first : lt;
			have_lt = 1;
		}
		at += total;
	}
	munmap(map, size);
	return mixed;
}

/* Sets up the pcapng reader on f, from its first byte. */
void pcapng_open(struct capture *c, FILE *f, const struct sniff *sn)
{
	memset(&c->ng_in, 0, sizeof c->ng_in);
	c->ng = 1;
	c->ng_in.f = f;
	c->linktype = sn->linktype; /* the first interface's, for messages */
}

void pcapng_close(struct capture *c)
{
	free(c->ng_in.ifaces);
	free(c->ng_in.block);
	if (c->ng_in.f && c->ng_in.f != stdin)
		fclose(c->ng_in.f);
	free(c->lts);
	memset(&c->ng_in, 0, sizeof c->ng_in);
}
