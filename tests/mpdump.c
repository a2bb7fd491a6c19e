/* mpdump.c: prints a msgpack stream as one JSON value per line, for golden
 * tests and debugging (msgpack2json is not in Debian). bin is a hex string
 * "0x...", a non-string map key is rendered and quoted, ext is
 * {"ext":TYPE,"data":"0x..."}. A damaged or cut stream ends with a message
 * naming the byte offset and exit 65, after everything before it is printed. */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h" /* TGPT_VERSION only: the helper links nothing from common/ */

#define READ_CHUNK 65536

/* ---------------------------------------------------------------- JSON */

static void print_object(FILE *out, const msgpack_object *o);

/* Length of the valid UTF-8 sequence at P (at most N bytes), or 0. */
static size_t utf8_sequence(const uint8_t *p, size_t n)
{
	size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;

	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((len == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (len == 3 && p[0] == 0xed && p[1] >= 0xa0) ||
	    (len == 4 && p[0] == 0xf0 && p[1] < 0x90) || (len == 4 && p[0] == 0xf4 && p[1] >= 0x90))
		return 0; /* overlong, surrogate, or beyond U+10FFFF */
	return len;
}

/* A JSON string; bytes that are not UTF-8 are shown as \u00XX (Latin-1). */
static void print_string(FILE *out, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;

	putc('"', out);
	for (size_t i = 0; i < n; i++) {
		size_t seq;

		if (p[i] == '"' || p[i] == '\\')
			fprintf(out, "\\%c", p[i]);
		else if (p[i] == '\n')
			fputs("\\n", out);
		else if (p[i] == '\t')
			fputs("\\t", out);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(out, "\\u%04x", p[i]);
		else if (p[i] < 0x80)
			putc(p[i], out);
		else if ((seq = utf8_sequence(p + i, n - i)) > 0) {
			fwrite(p + i, 1, seq, out);
			i += seq - 1;
		} else
			fprintf(out, "\\u%04x", p[i]);
	}
	putc('"', out);
}

static void print_hex(FILE *out, const char *p, size_t n)
{
	fputs("\"0x", out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%02x", (uint8_t)p[i]);
	putc('"', out);
}

/* The shortest decimal that reads back as the same value; floats always show
 * a point or an exponent so they never look like integers. */
static void print_float(FILE *out, double d, int is32)
{
	char buf[40];

	if (isnan(d) || isinf(d)) {
		fputs(isnan(d) ? "\"NaN\"" : d > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
		return;
	}
	for (int prec = is32 ? 6 : 15; prec <= 17; prec++) {
		double back;

		snprintf(buf, sizeof buf, "%.*g", prec, d);
		back = strtod(buf, NULL);
		if (is32 ? (float)back == (float)d : back == d)
			break;
	}
	fputs(buf, out);
	if (!strpbrk(buf, ".e"))
		fputs(".0", out);
}

/* JSON keys are strings: a non-string key is rendered, then quoted. */
static void print_key(FILE *out, const msgpack_object *k)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;

	if (k->type == MSGPACK_OBJECT_STR) {
		print_string(out, k->via.str.ptr, k->via.str.size);
		return;
	}
	mem = open_memstream(&buf, &len);
	if (!mem)
		err(EX_OSERR, "open_memstream");
	print_object(mem, k);
	if (fclose(mem) != 0)
		err(EX_OSERR, "open_memstream");
	print_string(out, buf, len);
	free(buf);
}

static void print_map(FILE *out, const msgpack_object_map *m)
{
	putc('{', out);
	for (uint32_t i = 0; i < m->size; i++) {
		if (i)
			putc(',', out);
		print_key(out, &m->ptr[i].key);
		putc(':', out);
		print_object(out, &m->ptr[i].val);
	}
	putc('}', out);
}

static void print_array(FILE *out, const msgpack_object_array *a)
{
	putc('[', out);
	for (uint32_t i = 0; i < a->size; i++) {
		if (i)
			putc(',', out);
		print_object(out, &a->ptr[i]);
	}
	putc(']', out);
}

/* msgpack-c limits nesting (MSGPACK_EMBED_STACK_SIZE), so recursion is bounded. */
static void print_object(FILE *out, const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: fputs("null", out); break;
	case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", out); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(out, "%" PRIu64, o->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(out, "%" PRId64, o->via.i64); break;
	case MSGPACK_OBJECT_FLOAT32: print_float(out, o->via.f64, 1); break;
	case MSGPACK_OBJECT_FLOAT64: print_float(out, o->via.f64, 0); break;
	case MSGPACK_OBJECT_STR: print_string(out, o->via.str.ptr, o->via.str.size); break;
	case MSGPACK_OBJECT_BIN: print_hex(out, o->via.bin.ptr, o->via.bin.size); break;
	case MSGPACK_OBJECT_ARRAY: print_array(out, &o->via.array); break;
	case MSGPACK_OBJECT_MAP: print_map(out, &o->via.map); break;
	case MSGPACK_OBJECT_EXT:
		fprintf(out, "{\"ext\":%d,\"data\":", o->via.ext.type);
		print_hex(out, o->via.ext.ptr, o->via.ext.size);
		putc('}', out);
		break;
	default: fputs("\"?\"", out); break;
	}
}

/* ---------------------------------------------------------------- the stream */

/* msgpack-c allocates what a container header declares before the elements
 * arrive, so a damaged "array of 4 billion" would ask for 128 GB. We first
 * walk each object's headers over the bytes actually read and only hand
 * complete objects to msgpack_unpack_next. */

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* The header of the msgpack item starting with byte B: its size HDR, the
 * length field (LEN_BYTES at offset LEN_AT) and whether that length counts
 * payload bytes or child items (twice for maps). Returns -1 for 0xc1. */
struct item {
	uint8_t hdr, len_at, len_bytes, children; /* children: 0 bytes, 1 array, 2 map */
	uint64_t len;                             /* when len_bytes is 0 */
};

static int classify(uint8_t b, struct item *it)
{
	static const uint8_t fixed[0x20] = { /* 0xc0..0xdf: total sizes of scalars */
		1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 5, 9, 2, 3, 5, 9,
		2, 3, 5, 9, 3, 4, 6, 10, 18, 0, 0, 0, 0, 0, 0, 0 };

	memset(it, 0, sizeof *it);
	it->hdr = 1;
	if (b <= 0x7f || b >= 0xe0)
		return 0;
	if (b <= 0x9f) { /* fixmap, fixarray */
		it->children = b <= 0x8f ? 2 : 1;
		it->len = b & 0x0f;
		return 0;
	}
	if (b <= 0xbf) { /* fixstr */
		it->len = b & 0x1f;
		return 0;
	}
	if (b == 0xc1)
		return -1;
	if (fixed[b - 0xc0]) {
		it->hdr = fixed[b - 0xc0];
		return 0;
	}
	switch (b) {
	case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
		it->len_bytes = (uint8_t)(1 << (b - 0xc4));
		break;
	case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, then a type byte */
		it->len_bytes = (uint8_t)(1 << (b - 0xc7));
		break;
	case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
		it->len_bytes = (uint8_t)(1 << (b - 0xd9));
		break;
	default: /* 0xdc..0xdf: array 16/32, map 16/32 */
		it->len_bytes = b & 1 ? 4 : 2;
		it->children = b >= 0xde ? 2 : 1;
		break;
	}
	it->len_at = 1;
	it->hdr = (uint8_t)(1 + it->len_bytes + (b >= 0xc7 && b <= 0xc9));
	return 0;
}

/* Size of the complete object at P (N bytes buffered); 0 when more bytes
 * are needed; -1 with *BAD the offset of a byte that is not msgpack. */
static int64_t object_size(const uint8_t *p, size_t n, size_t *bad)
{
	uint64_t pending = 1; /* items still to walk */
	size_t off = 0;
	struct item it;

	while (pending > 0) {
		if (off >= n || pending > n - off)
			return 0; /* every item takes a byte at least */
		if (classify(p[off], &it) < 0) {
			*bad = off;
			return -1;
		}
		if (off + it.hdr > n)
			return 0;
		if (it.len_bytes)
			it.len = be(p + off + it.len_at, it.len_bytes);
		pending--;
		off += it.hdr;
		if (it.children)
			pending += it.len * it.children;
		else if (it.len > n - off)
			return 0;
		else
			off += (size_t)it.len;
	}
	return (int64_t)off;
}

struct dump {
	const char *name;   /* for messages */
	const char *key;    /* -k: print only this key's value */
	uint64_t objects;   /* top-level objects read */
	uint64_t offset;    /* byte offset in the stream of buf[0] */
	uint8_t *buf;
	size_t len, cap;
};

/* With -k, the value of the key in a top-level map, or NULL to skip it. */
static const msgpack_object *selected(const struct dump *d, const msgpack_object *o)
{
	if (!d->key)
		return o;
	if (o->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(d->key) &&
		    memcmp(k->via.str.ptr, d->key, k->via.str.size) == 0)
			return &o->via.map.ptr[i].val;
	}
	return NULL;
}

/* Decodes and prints one complete object of SIZE bytes at buf[at]. */
static int print_one(struct dump *d, size_t at, size_t size)
{
	msgpack_unpacked res;
	size_t used = 0;
	int r;

	msgpack_unpacked_init(&res);
	r = msgpack_unpack_next(&res, (const char *)d->buf + at, size, &used);
	if (r == MSGPACK_UNPACK_SUCCESS && used == size) {
		const msgpack_object *o = selected(d, &res.data);

		if (o) {
			print_object(stdout, o);
			putchar('\n');
		}
	}
	msgpack_unpacked_destroy(&res);
	if (r != MSGPACK_UNPACK_SUCCESS || used != size) {
		/* The walk bounded every allocation by the bytes read, so msgpack-c's
		 * NOMEM here is its nesting limit (MSGPACK_EMBED_STACK_SIZE). */
		warnx("%s: object %" PRIu64 " at byte offset %" PRIu64 " nests deeper than msgpack-c allows",
			d->name, d->objects + 1, d->offset + at);
		return EX_DATAERR;
	}
	d->objects++;
	return 0;
}

/* Prints the complete objects in the buffer and keeps the rest for later.
 * Returns 0, or EX_DATAERR after reporting a byte that is not msgpack. */
static int drain(struct dump *d)
{
	size_t at = 0, bad = 0;
	int64_t size;
	int status = 0;

	while (status == 0 && at < d->len && (size = object_size(d->buf + at, d->len - at, &bad)) != 0) {
		if (size < 0) {
			warnx("%s: not msgpack at byte offset %" PRIu64 " (object %" PRIu64
				" starts at %" PRIu64 ")", d->name, d->offset + at + bad,
				d->objects + 1, d->offset + at);
			return EX_DATAERR;
		}
		status = print_one(d, at, (size_t)size);
		at += (size_t)size;
	}
	memmove(d->buf, d->buf + at, d->len - at);
	d->len -= at;
	d->offset += at;
	return status;
}

/* Reads more: at least as much as is buffered, so an object that arrives
 * in many reads is walked O(log size) times, not once per read. */
static ssize_t fill(struct dump *d, int fd)
{
	size_t want = d->len > READ_CHUNK ? d->len : READ_CHUNK;
	ssize_t n;

	if (d->cap - d->len < want) {
		d->cap = d->len + want;
		if (!(d->buf = realloc(d->buf, d->cap)))
			err(EX_OSERR, "%s: %zu bytes", d->name, d->cap);
	}
	do
		n = read(fd, d->buf + d->len, want);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		err(EX_IOERR, "%s", d->name);
	d->len += (size_t)n;
	return n;
}

static int dump_fd(struct dump *d, int fd)
{
	int status = 0;

	while (status == 0 && fill(d, fd) > 0)
		status = drain(d);
	if (status == 0 && d->len > 0) {
		warnx("%s: cut short: object %" PRIu64 " starts at byte offset %" PRIu64
			" and the stream ends at %" PRIu64, d->name, d->objects + 1, d->offset,
			d->offset + d->len);
		status = EX_DATAERR;
	}
	free(d->buf);
	return status;
}

/* ---------------------------------------------------------------- CLI */

static const char usage_text[] =
	"usage: mpdump [-k KEY] [FILE]\n"
	"Prints a msgpack stream (FILE or stdin) as one JSON value per line:\n"
	"bin as a hex string \"0x...\", ext as {\"ext\":TYPE,\"data\":\"0x...\"}.\n"
	"  -k, --key KEY   print only the value of KEY of each top-level map\n"
	"                  (objects without it are skipped)\n"
	"  -h, --help      this help;  -V, --version  the version\n"
	"Exit 0, or 65 when the stream is damaged or cut (the message names the\n"
	"byte offset; everything before it is printed).\n";

static const struct option longopts[] = {
	{ "key", required_argument, NULL, 'k' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct dump d = { .name = "<stdin>" };
	int ch, fd = STDIN_FILENO, status;

	while ((ch = getopt_long(argc, argv, "k:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k': d.key = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'V': printf("mpdump (tgpt) %s\nmsgpack-c %s\n", TGPT_VERSION, msgpack_version()); return 0;
		default: fputs(usage_text, stderr); return EX_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "mpdump: one FILE at most\n%s", usage_text);
		return EX_USAGE;
	}
	if (argc - optind == 1 && strcmp(argv[optind], "-") != 0) {
		d.name = argv[optind];
		if ((fd = open(d.name, O_RDONLY)) < 0)
			err(EX_NOINPUT, "%s", d.name);
	}
	status = dump_fd(&d, fd);
	if (fflush(stdout) != 0 || ferror(stdout))
		err(EX_IOERR, "<stdout>");
	return status;
}
