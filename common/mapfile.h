/* mapfile.h: the start every reader of our binary files makes (shards,
 * checkpoints): the file mapped read-only after checking the host's byte
 * order, the file's magic and that it holds a header, and the one failure
 * convention those readers share: 0, or a sysexits code with "PATH: why"
 * in err (EX_NOINPUT the file cannot be read, EX_DATAERR it is not what it
 * should be, EX_SOFTWARE a big-endian host). */
#ifndef TGPT_MAPFILE_H
#define TGPT_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

/* Maps PATH, a tgpt KIND ("shard", "checkpoint") that starts with the
 * magic_len bytes of magic and holds header_size bytes at least, into
 * *map and *len. */
int map_file(const char *path, const char *kind, const char *magic, size_t magic_len,
	size_t header_size, const uint8_t **map, size_t *len, char *err, size_t errlen);
void unmap_file(const uint8_t *map, size_t len);

/* Formats "PATH: message" into err and returns EX_DATAERR. */
int data_error(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
