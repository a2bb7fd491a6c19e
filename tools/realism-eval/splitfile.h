/* splitfile.h: the flows tokshard(1) put in each split (its split.tsv), read
 * for realism-eval --baseline --split-file, so that the baseline classifies
 * the very flows of the shards, on the same sides. A flow is named by its
 * source and id, as in the flow and token records. */
#ifndef TGPT_SPLITFILE_H
#define TGPT_SPLITFILE_H

#include <stddef.h>
#include <stdint.h>

enum split_side { SIDE_TRAIN, SIDE_VAL, SIDE_TEST, SIDE_N };
extern const char *const split_side_names[SIDE_N]; /* "train", "val", "test" */

struct split_entry {
	char *source;    /* empty: a flow without one */
	size_t source_len;
	uint64_t id;
	char *label;     /* "-": none */
	enum split_side side;
	int matched;     /* a flow of the inputs is this one */
};

struct split_file {
	const char *path;
	struct split_entry *e; /* sorted by source and id */
	size_t n, cap;
	size_t per_side[SIDE_N];
};

/* Reads lines SPLIT<TAB>SOURCE<TAB>ID<TAB>LABEL ('#' lines are comments).
 * Exits 66 when PATH cannot be opened, 65 naming the line when one is not
 * of that form or names a flow twice. */
void split_file_read(struct split_file *sf, const char *path);

/* The entry of the flow (source, id), or NULL when it is not listed. */
struct split_entry *split_file_find(const struct split_file *sf, const char *source,
				    size_t source_len, uint64_t id);

void split_file_free(struct split_file *sf);

/* Calls line_fn for each line of the text table PATH ("-": stdin) but empty
 * and '#' ones, its line ending cut off, with its 1-based number. Exits 66
 * when PATH cannot be opened, 74 on a read error. */
void table_lines(const char *path, void (*line_fn)(void *ctx, char *line, unsigned lineno),
		 void *ctx);

#endif
