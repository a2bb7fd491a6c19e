/* splitfile.c: tokshard's split.tsv as a sorted table of flows, looked up by
 * source and id, and the line reader of realism-eval's tables (splitfile.h). */
#include "splitfile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *const split_side_names[SIDE_N] = { "train", "val", "test" };

static int cmp_key(const char *s, size_t len, uint64_t id, const struct split_entry *e)
{
	size_t n = len < e->source_len ? len : e->source_len;
	int c = memcmp(s, e->source, n);
	if (c)
		return c;
	if (len != e->source_len)
		return len < e->source_len ? -1 : 1;
	return id < e->id ? -1 : id > e->id;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct split_entry *x = a;
	return cmp_key(x->source, x->source_len, x->id, b);
}

static char *copy(const char *s, size_t len)
{
	char *c = xmalloc(len + 1);
	memcpy(c, s, len);
	c[len] = 0;
	return c;
}

/* One line, cut at its tabs into four fields; 0, or -1 when it has not four. */
static int fields(char *line, char *f[4])
{
	for (int i = 0; i < 4; i++) {
		f[i] = line;
		char *tab = strchr(line, '\t');
		if ((tab == NULL) != (i == 3))
			return -1;
		if (tab) {
			*tab = 0;
			line = tab + 1;
		}
	}
	return 0;
}

static void add_line(void *ctx, char *line, unsigned lineno)
{
	struct split_file *sf = ctx;
	char *f[4];
	if (fields(line, f) < 0)
		errx(EX_DATAERR, "%s: line %u: not SPLIT<TAB>SOURCE<TAB>ID<TAB>LABEL", sf->path, lineno);
	int side = -1;
	for (int s = 0; s < SIDE_N; s++)
		if (strcmp(f[0], split_side_names[s]) == 0)
			side = s;
	if (side < 0)
		errx(EX_DATAERR, "%s: line %u: split '%s' is not train, val or test", sf->path, lineno,
		     f[0]);
	uint64_t id;
	if (parse_u64(f[2], 0, UINT64_MAX, &id) < 0)
		errx(EX_DATAERR, "%s: line %u: flow id '%s' is not a whole number", sf->path, lineno,
		     f[2]);
	grow((void **)&sf->e, &sf->cap, sf->n + 1, sizeof *sf->e);
	struct split_entry *e = &sf->e[sf->n++];
	e->source_len = strlen(f[1]);
	e->source = copy(f[1], e->source_len);
	e->id = id;
	e->label = copy(f[3], strlen(f[3]));
	e->side = (enum split_side)side;
	e->matched = 0;
	sf->per_side[side]++;
}

void table_lines(const char *path, void (*line_fn)(void *ctx, char *line, unsigned lineno),
		 void *ctx)
{
	FILE *in = cli_open_in(path);
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	while (getline(&line, &cap, in) > 0) {
		lineno++;
		line[strcspn(line, "\r\n")] = 0;
		if (line[0] != 0 && line[0] != '#')
			line_fn(ctx, line, lineno);
	}
	if (ferror(in))
		err(EX_IOERR, "%s", path);
	free(line);
	if (in != stdin)
		fclose(in);
}

void split_file_read(struct split_file *sf, const char *path)
{
	memset(sf, 0, sizeof *sf);
	sf->path = path;
	table_lines(path, add_line, sf);
	qsort(sf->e, sf->n, sizeof *sf->e, cmp_entry);
	for (size_t i = 1; i < sf->n; i++)
		if (cmp_entry(&sf->e[i - 1], &sf->e[i]) == 0)
			errx(EX_DATAERR, "%s: flow %s #%" PRIu64 " is listed twice", path, sf->e[i].source,
			     sf->e[i].id);
}

struct split_entry *split_file_find(const struct split_file *sf, const char *source,
				    size_t source_len, uint64_t id)
{
	size_t lo = 0, hi = sf->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_key(source, source_len, id, &sf->e[mid]);
		if (c == 0)
			return &sf->e[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void split_file_free(struct split_file *sf)
{
	for (size_t i = 0; i < sf->n; i++) {
		free(sf->e[i].source);
		free(sf->e[i].label);
	}
	free(sf->e);
	memset(sf, 0, sizeof *sf);
}
