/* t-stream.c: unit tests of the msgpack stream reader and writer: round
 * trips, concatenated streams, byte offsets of damage, zero-length values and
 * write errors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream.h"
#include "../tap.h"

/* Writes N small maps {"i": k, "s": "", "b": bin(k bytes)} to a temp file. */
static FILE *write_maps(int n, size_t *sizes)
{
	FILE *f = tmpfile();
	struct mp_writer w;
	mp_writer_init(&w, f, "tmp");
	for (int k = 0; k < n; k++) {
		fflush(f);
		long before = ftell(f);
		msgpack_pack_map(&w.pk, 3);
		mp_key(&w.pk, "i"), msgpack_pack_int(&w.pk, k);
		mp_key(&w.pk, "s"), mp_str(&w.pk, "", 0);
		uint8_t b[300];
		memset(b, k, sizeof b);
		mp_key(&w.pk, "b"), mp_bin(&w.pk, b, (size_t)k * 50);
		fflush(f);
		if (sizes)
			sizes[k] = (size_t)(ftell(f) - before);
	}
	ok(mp_writer_flush(&w) == 0, "writer flushes without error (zero-length str included)");
	rewind(f);
	return f;
}

static void test_round_trip(void)
{
	size_t sizes[6];
	FILE *f = write_maps(6, sizes);
	struct mp_reader r;
	mp_open_fd(&r, fileno(f), "tmp");
	msgpack_object o;
	int k = 0, offsets_right = 1;
	uint64_t off = 0;
	while (mp_next(&r, &o) == 1) {
		const msgpack_object *i = mp_get(&o, "i");
		if (!i || i->via.u64 != (uint64_t)k)
			break;
		if (r.record_offset != off)
			offsets_right = 0;
		off += sizes[k];
		k++;
	}
	is_int(k, 6, "all six objects read back in order");
	ok(offsets_right, "record_offset is the byte offset of each object");
	is_int(mp_next(&r, &o), 0, "clean end of stream after the last object");
	mp_close(&r);
	fclose(f);
}

static void test_concatenation(void)
{
	FILE *a = write_maps(3, NULL), *b = write_maps(2, NULL);
	FILE *c = tmpfile();
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, c);
	while ((n = fread(buf, 1, sizeof buf, b)) > 0) fwrite(buf, 1, n, c);
	fflush(c);
	rewind(c);
	struct mp_reader r;
	mp_open_fd(&r, fileno(c), "cat");
	msgpack_object o;
	int count = 0;
	while (mp_next(&r, &o) == 1)
		count++;
	is_int(count, 5, "two streams concatenated read as one stream of 5 objects");
	mp_close(&r);
	fclose(a), fclose(b), fclose(c);
}

/* Cuts the stream of 4 objects inside the third and expects an error naming
 * the third object's offset, after two good objects. */
static void test_truncation(void)
{
	size_t sizes[4];
	FILE *f = write_maps(4, sizes);
	size_t cut = sizes[0] + sizes[1] + sizes[2] / 2;
	char *buf = malloc(cut);
	ok(fread(buf, 1, cut, f) == cut, "read the prefix");
	int fd[2];
	ok(pipe(fd) == 0, "pipe");
	ok(write(fd[1], buf, cut) == (ssize_t)cut, "write prefix into the pipe");
	close(fd[1]);
	struct mp_reader r;
	mp_open_fd(&r, fd[0], "cut.mp");
	msgpack_object o;
	int good = 0, ret;
	while ((ret = mp_next(&r, &o)) == 1)
		good++;
	is_int(good, 2, "the two objects before the damage are read");
	is_int(ret, -1, "EOF inside the third object is an error");
	char want[64];
	snprintf(want, sizeof want, "at byte offset %zu", sizes[0] + sizes[1]);
	ok(strstr(r.error, want) && strstr(r.error, "cut.mp"), "the error names the file and the record's byte offset");
	printf("# %s\n", r.error);
	mp_close(&r);
	free(buf);
	fclose(f);
}

static void test_garbage(void)
{
	FILE *f = write_maps(1, NULL);
	fseek(f, 0, SEEK_END);
	long end = ftell(f);
	fputc(0xc1, f); /* never used in msgpack */
	fflush(f);
	rewind(f);
	struct mp_reader r;
	mp_open_fd(&r, fileno(f), "junk");
	msgpack_object o;
	is_int(mp_next(&r, &o), 1, "the good object first");
	is_int(mp_next(&r, &o), -1, "byte 0xc1 is a parse error");
	char want[64];
	snprintf(want, sizeof want, "not msgpack at byte offset %ld", end);
	ok(strstr(r.error, want) != NULL, "parse error names the offset");
	mp_close(&r);
	fclose(f);
}

static void test_write_error(void)
{
	FILE *f = fopen("/dev/full", "w");
	if (!f) {
		ok(1, "# skip /dev/full absent");
		return;
	}
	struct mp_writer w;
	mp_writer_init(&w, f, "/dev/full");
	uint8_t big[1 << 16] = { 0 };
	for (int i = 0; i < 4; i++)
		mp_bin(&w.pk, big, sizeof big);
	is_int(mp_writer_flush(&w), -1, "a full disk is reported by flush");
	is_int(errno, ENOSPC, "with ENOSPC");
	fclose(f);
}

static void test_getters(void)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	mp_key(&pk, "n"), msgpack_pack_uint64(&pk, 300);
	mp_key(&pk, "s"), mp_cstr(&pk, "abc");
	mp_key(&pk, "neg"), msgpack_pack_int(&pk, -1);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	msgpack_unpack_next(&u, sb.data, sb.size, NULL);
	uint64_t v = 0;
	is_int(mp_get_u64(&u.data, "n", 1000, &v), 0, "u64 present");
	is_u64(v, 300, "u64 value");
	is_int(mp_get_u64(&u.data, "n", 255, &v), -1, "u64 above its maximum is wrong");
	is_int(mp_get_u64(&u.data, "neg", 1000, &v), -1, "a negative number is not a u64");
	is_int(mp_get_u64(&u.data, "absent", 1000, &v), 1, "absent key");
	const char *s;
	size_t len;
	is_int(mp_get_str(&u.data, "s", &s, &len), 0, "string present");
	ok(len == 3 && memcmp(s, "abc", 3) == 0, "string value");
	is_int(mp_get_str(&u.data, "n", &s, &len), -1, "a number is not a string");
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
}

/* A map header that claims 2^32 - 1 entries, then nothing: an error, not a
 * crash or a hang. */
static void test_absurd_header(void)
{
	static const uint8_t bytes[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 't' };
	struct mp_reader r;
	mp_open_mem(&r, bytes, sizeof bytes, "absurd");
	msgpack_object o;
	is_int(mp_next(&r, &o), -1, "a map of 2^32 - 1 entries with no data is an error");
	ok(strstr(r.error, "absurd") && strstr(r.error, "byte offset 0"), "naming the offset of the map");
	printf("# %s\n", r.error);
	mp_close(&r);
}

int main(void)
{
	test_absurd_header();
	test_round_trip();
	test_concatenation();
	test_truncation();
	test_garbage();
	test_write_error();
	test_getters();
	return tap_done();
}
