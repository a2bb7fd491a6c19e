/* mapfile.c: binary files mapped after the first checks (mapfile.h). */
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int data_error(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	format_error(err, errlen, path, fmt, ap);
	va_end(ap);
	return EX_DATAERR;
}

/* "PATH: why" and the code. */
static int failed(int code, char *err, size_t errlen, const char *path, const char *why)
{
	data_error(err, errlen, path, "%s", why);
	return code;
}

static int host_is_little_endian(void)
{
	const uint16_t one = 1;
	return *(const uint8_t *)&one == 1;
}

int map_file(const char *path, const char *kind, const char *magic, size_t magic_len,
	size_t header_size, const uint8_t **map, size_t *len, char *err, size_t errlen)
{
	char why[128];
	*map = NULL;
	*len = 0;
	if (!host_is_little_endian()) {
		snprintf(why, sizeof why, "%ss hold little-endian numbers; this build reads them "
			"only on little-endian hosts", kind);
		return failed(EX_SOFTWARE, err, errlen, path, why);
	}
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return failed(EX_NOINPUT, err, errlen, path, strerror(e));
	}
	uint64_t size = (uint64_t)st.st_size;
	uint8_t head[64];
	if (magic_len > sizeof head || size < magic_len ||
		pread(fd, head, magic_len, 0) != (ssize_t)magic_len || memcmp(head, magic, magic_len)) {
		close(fd);
		return data_error(err, errlen, path, "not a tgpt %s (no \"%.*s\" magic at its start)",
			kind, (int)magic_len, magic);
	}
	if (size < header_size || (uint64_t)(size_t)size != size) {
		close(fd);
		return data_error(err, errlen, path, "cut short: %" PRIu64 " bytes, less than a "
			"%zu-byte header", size, header_size);
	}
	void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(why, sizeof why, "mmap: %s", strerror(e));
		return failed(EX_NOINPUT, err, errlen, path, why);
	}
	*map = m;
	*len = (size_t)size;
	return 0;
}

void unmap_file(const uint8_t *map, size_t len)
{
	if (map)
		munmap((void *)map, len);
}
