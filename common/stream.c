/* stream.c: msgpack stream reader and writer (see stream.h). EOF between
 * objects ends a stream cleanly; EOF inside one, or bytes msgpack cannot
 * parse, is damage reported with the byte offset of the object. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)

void mp_open_fd(struct mp_reader *r, int fd, const char *name)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	r->name = name;
	msgpack_unpacker_init(&r->unpacker, READ_CHUNK);
	msgpack_unpacked_init(&r->result);
}

void mp_open_mem(struct mp_reader *r, const void *buf, size_t len, const char *name)
{
	mp_open_fd(r, -1, name);
	r->mem = buf;
	r->mem_len = len;
}

int mp_open(struct mp_reader *r, const char *path)
{
	if (!path || strcmp(path, "-") == 0) {
		mp_open_fd(r, STDIN_FILENO, "<stdin>");
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	mp_open_fd(r, fd, path);
	return 0;
}

static int fill(struct mp_reader *r)
{
	if (!msgpack_unpacker_reserve_buffer(&r->unpacker, READ_CHUNK)) {
		snprintf(r->error, sizeof r->error, "%s: out of memory at byte offset %llu",
			 r->name, (unsigned long long)r->consumed);
		return -1;
	}
	if (r->mem) {
		size_t n = r->mem_len - r->mem_pos;
		size_t cap = msgpack_unpacker_buffer_capacity(&r->unpacker);
		n = n < cap ? n : cap;
		memcpy(msgpack_unpacker_buffer(&r->unpacker), r->mem + r->mem_pos, n);
		r->mem_pos += n;
		msgpack_unpacker_buffer_consumed(&r->unpacker, n);
		return n > 0;
	}
	for (;;) {
		ssize_t n = read(r->fd, msgpack_unpacker_buffer(&r->unpacker),
				 msgpack_unpacker_buffer_capacity(&r->unpacker));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(r->error, sizeof r->error, "%s: %s", r->name, strerror(errno));
			return -1;
		}
		msgpack_unpacker_buffer_consumed(&r->unpacker, (size_t)n);
		return n > 0;
	}
}

int mp_next(struct mp_reader *r, msgpack_object *obj)
{
	for (;;) {
		/* The unpacker counts bytes per object only: we keep the total. */
		size_t used = 0;
		r->record_offset = r->consumed;
		msgpack_unpack_return ret = msgpack_unpacker_next_with_size(&r->unpacker, &r->result, &used);
		if (ret == MSGPACK_UNPACK_SUCCESS) {
			r->consumed += used;
			*obj = r->result.data;
			return 1;
		}
		if (ret == MSGPACK_UNPACK_PARSE_ERROR) {
			snprintf(r->error, sizeof r->error, "%s: not msgpack at byte offset %llu",
				 r->name, (unsigned long long)r->record_offset);
			return -1;
		}
		if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
			snprintf(r->error, sizeof r->error, "%s: out of memory decoding the object at byte offset %llu",
				 r->name, (unsigned long long)r->record_offset);
			return -1;
		}
		int got = fill(r);
		if (got < 0)
			return -1;
		if (got == 0) {
			size_t pending = msgpack_unpacker_message_size(&r->unpacker);
			if (pending == 0)
				return 0;
			snprintf(r->error, sizeof r->error,
				 "%s: stream ends inside a record at byte offset %llu (%zu bytes of it read)",
				 r->name, (unsigned long long)r->record_offset, pending);
			return -1;
		}
	}
}

void mp_close(struct mp_reader *r)
{
	msgpack_unpacked_destroy(&r->result);
	msgpack_unpacker_destroy(&r->unpacker);
	if (r->fd > STDERR_FILENO)
		close(r->fd);
	r->fd = -1;
}

/* msgpack_fbuffer_write fails on zero-length writes (fwrite returns 0):
 * ours succeeds on those and remembers the first real error. */
static int writer_cb(void *data, const char *buf, size_t len)
{
	struct mp_writer *w = data;
	if (len == 0 || w->failed)
		return w->failed ? -1 : 0;
	if (fwrite(buf, 1, len, w->f) != len) {
		w->failed = errno ? errno : EIO;
		return -1;
	}
	return 0;
}

void mp_writer_init(struct mp_writer *w, FILE *f, const char *name)
{
	w->f = f;
	w->name = name;
	w->failed = 0;
	msgpack_packer_init(&w->pk, w, writer_cb);
}

int mp_writer_flush(struct mp_writer *w)
{
	if (!w->failed && (fflush(w->f) != 0 || ferror(w->f)))
		w->failed = errno ? errno : EIO;
	if (w->failed) {
		errno = w->failed;
		return -1;
	}
	return 0;
}

void mp_key(msgpack_packer *pk, const char *key) { mp_cstr(pk, key); }

void mp_str(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

void mp_cstr(msgpack_packer *pk, const char *s) { mp_str(pk, s, strlen(s)); }

void mp_bin(msgpack_packer *pk, const void *p, size_t len)
{
	msgpack_pack_bin(pk, len);
	msgpack_pack_bin_body(pk, p, len);
}

int mp_str_eq(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *mp_get(const msgpack_object *map, const char *key)
{
	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	const msgpack_object_kv *kv = map->via.map.ptr;
	for (uint32_t i = 0; i < map->via.map.size; i++)
		if (mp_str_eq(&kv[i].key, key))
			return &kv[i].val;
	return NULL;
}

int mp_get_u64(const msgpack_object *map, const char *key, uint64_t max, uint64_t *out)
{
	const msgpack_object *v = mp_get(map, key);
	if (!v)
		return 1;
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > max)
		return -1;
	*out = v->via.u64;
	return 0;
}

int mp_get_f64(const msgpack_object *map, const char *key, double *out)
{
	const msgpack_object *v = mp_get(map, key);
	if (!v)
		return 1;
	switch (v->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *out = v->via.f64; return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)v->via.u64; return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)v->via.i64; return 0;
	default: return -1;
	}
}

int mp_get_str(const msgpack_object *map, const char *key, const char **s, size_t *len)
{
	const msgpack_object *v = mp_get(map, key);
	if (!v)
		return 1;
	if (v->type != MSGPACK_OBJECT_STR)
		return -1;
	*s = v->via.str.ptr;
	*len = v->via.str.size;
	return 0;
}

int mp_get_bin(const msgpack_object *map, const char *key, const uint8_t **p, size_t *len)
{
	const msgpack_object *v = mp_get(map, key);
	if (!v)
		return 1;
	if (v->type != MSGPACK_OBJECT_BIN)
		return -1;
	*p = (const uint8_t *)v->via.bin.ptr;
	*len = v->via.bin.size;
	return 0;
}
