/* stream.h: msgpack stream I/O. A stream is a concatenation of msgpack maps
 * (tgpt-stream(5)); the reader yields one object at a time and tells a clean
 * end (EOF between objects) from a damaged one (EOF inside an object, or bytes
 * that are not msgpack), naming the byte offset. The writer packs to a FILE
 * and remembers the first write error. */
#ifndef TGPT_STREAM_H
#define TGPT_STREAM_H

#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>

struct mp_reader {
	int fd;
	const char *name;      /* for messages: the path, or "<stdin>" */
	msgpack_unpacker unpacker;
	msgpack_unpacked result;
	uint64_t record_offset; /* byte offset of the object last returned */
	uint64_t consumed;      /* bytes of the objects returned so far */
	char error[256];        /* why mp_next returned -1 */
	const uint8_t *mem;     /* in-memory input (mp_open_mem), else NULL */
	size_t mem_len, mem_pos;
};

/* Opens PATH ("-" or NULL: stdin). Returns 0, or -1 with errno set. */
int mp_open(struct mp_reader *r, const char *path);
/* Reads from an already open descriptor. */
void mp_open_fd(struct mp_reader *r, int fd, const char *name);
/* Reads from a buffer that outlives the reader (tests, fuzzing). */
void mp_open_mem(struct mp_reader *r, const void *buf, size_t len, const char *name);
/* Next object: 1 and *obj (valid until the next call), 0 at a clean end, -1
 * on damage with r->error holding "NAME: ... at byte offset N". */
int mp_next(struct mp_reader *r, msgpack_object *obj);
void mp_close(struct mp_reader *r);

struct mp_writer {
	FILE *f;
	const char *name;
	msgpack_packer pk;
	int failed; /* errno of the first failed write, or 0 */
};
void mp_writer_init(struct mp_writer *w, FILE *f, const char *name);
/* Flushes; returns 0, or -1 when any write failed (errno set). */
int mp_writer_flush(struct mp_writer *w);

/* Packing shorthands: a string key, a string value, a bin value. */
void mp_key(msgpack_packer *pk, const char *key);
void mp_str(msgpack_packer *pk, const char *s, size_t len);
void mp_cstr(msgpack_packer *pk, const char *s);
void mp_bin(msgpack_packer *pk, const void *p, size_t len);

/* Reading maps: the value of KEY in a map object, or NULL. */
const msgpack_object *mp_get(const msgpack_object *map, const char *key);
/* Typed getters: 0 when present and of the right type and range, 1 when
 * absent (out untouched), -1 when present but wrong. */
int mp_get_u64(const msgpack_object *map, const char *key, uint64_t max, uint64_t *out);
int mp_get_f64(const msgpack_object *map, const char *key, double *out);
int mp_get_str(const msgpack_object *map, const char *key, const char **s, size_t *len);
int mp_get_bin(const msgpack_object *map, const char *key, const uint8_t **p, size_t *len);
int mp_str_eq(const msgpack_object *o, const char *s);

#endif
