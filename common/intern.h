/* intern.h: strings kept once each and numbered densely in the order they
 * were first seen (open addressing on FNV-1a): labels, sources and capture
 * names, addresses. A string is any run of bytes; each keeps a NUL-
 * terminated copy. */
#ifndef TGPT_INTERN_H
#define TGPT_INTERN_H

#include <stddef.h>
#include <stdint.h>

#define INTERN_NONE UINT32_MAX   /* no string (intern_find of one never added) */

struct interned {
	char *s;        /* the bytes, then a NUL */
	size_t len;
	uint64_t hash;
};

struct intern {
	struct interned *e;   /* (n) by id */
	size_t n, cap;
	uint32_t *slot;       /* (nslot) id + 1, 0 when empty */
	size_t nslot;
};

/* The id of the len bytes at s, added (as id n) when new. Exits EX_SOFTWARE
 * beyond INTERN_NONE - 1 strings. */
uint32_t intern_add(struct intern *t, const void *s, size_t len);
/* Their id, or INTERN_NONE when they were never added. */
uint32_t intern_find(const struct intern *t, const void *s, size_t len);
void intern_free(struct intern *t);

#endif
