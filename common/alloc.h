/* alloc.h: allocation that exits with EX_OSERR instead of returning NULL,
 * and arrays that grow by doubling. Header-only, so the model core needs no
 * library for it; cli.h includes it for everyone else. */
#ifndef TGPT_ALLOC_H
#define TGPT_ALLOC_H

#include <err.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		err(EX_OSERR, "out of memory (%zu bytes)", n);
	return p;
}

static inline void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		err(EX_OSERR, "out of memory (%zu x %zu bytes)", n, size);
	return p;
}

static inline void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		err(EX_OSERR, "out of memory (%zu bytes)", n);
	return p;
}

static inline char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

/* Ensures *buf holds at least need elements of size each; grows by doubling. */
static inline void grow(void **buf, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return;
	size_t n = *cap ? *cap : 16;
	while (n < need) {
		if (n > SIZE_MAX / 2 / size)
			errx(EX_OSERR, "out of memory (%zu elements of %zu bytes)", need, size);
		n *= 2;
	}
	*buf = xrealloc(*buf, n * size);
	*cap = n;
}

#endif
