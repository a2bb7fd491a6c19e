/* intern.c: the string table of intern.h. */
#include "intern.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hash.h"

static void rehash(struct intern *t, size_t nslot)
{
	free(t->slot);
	t->slot = xcalloc(nslot, sizeof *t->slot);
	t->nslot = nslot;
	for (size_t id = 0; id < t->n; id++) {
		size_t i = t->e[id].hash & (nslot - 1);
		while (t->slot[i])
			i = (i + 1) & (nslot - 1);
		t->slot[i] = (uint32_t)id + 1;
	}
}

/* The slot of the string, or the empty one where it would go. */
static uint32_t *find_slot(const struct intern *t, const void *s, size_t len, uint64_t h)
{
	size_t i = h & (t->nslot - 1);
	for (; t->slot[i]; i = (i + 1) & (t->nslot - 1)) {
		const struct interned *e = &t->e[t->slot[i] - 1];
		if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
			break;
	}
	return &t->slot[i];
}

uint32_t intern_find(const struct intern *t, const void *s, size_t len)
{
	if (!t->nslot)
		return INTERN_NONE;
	uint32_t *slot = find_slot(t, s, len, fnv1a(s, len));
	return *slot ? *slot - 1 : INTERN_NONE;
}

uint32_t intern_add(struct intern *t, const void *s, size_t len)
{
	if ((t->n + 1) * 2 > t->nslot)
		rehash(t, t->nslot ? t->nslot * 2 : 64);
	uint64_t h = fnv1a(s, len);
	uint32_t *slot = find_slot(t, s, len, h);
	if (*slot)
		return *slot - 1;
	if (t->n >= INTERN_NONE - 1)
		errx(EX_SOFTWARE, "more than %u distinct strings", INTERN_NONE - 1);
	grow((void **)&t->e, &t->cap, t->n + 1, sizeof *t->e);
	struct interned *e = &t->e[t->n];
	e->s = xmalloc(len + 1);
	if (len)
		memcpy(e->s, s, len);
	e->s[len] = 0;
	e->len = len;
	e->hash = h;
	*slot = (uint32_t)++t->n;
	return (uint32_t)t->n - 1;
}

void intern_free(struct intern *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->e[i].s);
	free(t->e);
	free(t->slot);
	memset(t, 0, sizeof *t);
}
