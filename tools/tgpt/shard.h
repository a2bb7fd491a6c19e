/* shard.h: shard files (tgpt-shard(5), version 1), the training data that
 * tokshard(1) writes and tgpt-train maps without parsing: the header layout
 * shared by the writer and the reader, and the reader (open and check a
 * shard, fetch flow i as a span of uint16 tokens with its label id). */
#ifndef TGPT_SHARD_H
#define TGPT_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC "TGPTSHRD"
#define SHARD_MAGIC_LEN 8
#define SHARD_VERSION 1
#define SHARD_HEADER_SIZE 128
#define SHARD_ALIGN 64           /* every section starts at a multiple of this */
#define SHARD_NO_LABEL 0xFFFFu   /* label id of an unlabelled flow */
#define SHARD_MAX_LABELS 0xFFFFu /* ids 0 .. 65534 */
#define SHARD_TOKENIZER_LEN 16
#define SHARD_SPLIT_LEN 8

enum shard_split { SHARD_TRAIN, SHARD_VAL, SHARD_TEST, SHARD_SPLITS };
extern const char *const shard_split_names[SHARD_SPLITS]; /* "train", "val", "test" */

/* What tokshard --long did with flows longer than the context. */
enum shard_long { SHARD_LONG_CUT, SHARD_LONG_WINDOW, SHARD_LONG_DROP };
extern const char *const shard_long_names[3];
/* What tokshard --group kept together in one split. */
enum shard_group { SHARD_GROUP_SOURCE, SHARD_GROUP_FLOW };
extern const char *const shard_group_names[2];

/* The 128-byte header, in host order (little-endian in the file). */
struct shard_header {
	uint32_t version, header_size;
	char tokenizer[SHARD_TOKENIZER_LEN + 1];
	uint32_t tokenizer_version, vocab;
	uint32_t context;      /* no flow holds more tokens than this */
	uint32_t long_mode;    /* enum shard_long */
	char split[SHARD_SPLIT_LEN + 1];
	uint32_t n_labels;
	uint32_t group;        /* enum shard_group */
	uint64_t seed;
	uint64_t n_flows, n_tokens;
	uint64_t labels_off, offsets_off, label_ids_off, tokens_off, file_size;
};

/* Writer side: the header's bytes (the file's first SHARD_HEADER_SIZE). */
void shard_header_encode(const struct shard_header *h, uint8_t out[SHARD_HEADER_SIZE]);
/* Offset of the next section after one ending at end. */
static inline uint64_t shard_align(uint64_t end)
{
	return (end + SHARD_ALIGN - 1) / SHARD_ALIGN * SHARD_ALIGN;
}

/* A mapped shard. The arrays point into the mapping: offsets has n_flows + 1
 * entries (flow i is tokens[offsets[i] .. offsets[i+1])), label_ids n_flows.
 * Tokens are little-endian in the file; shard_open refuses big-endian hosts,
 * so they are host uint16 here. */
struct shard {
	struct shard_header h;
	const uint8_t *map;
	size_t map_len;
	const uint64_t *offsets;
	const uint16_t *label_ids;
	const uint16_t *tokens;
	const uint32_t *label_off; /* n_labels + 1 offsets into label_text */
	const char *label_text;    /* NUL-terminated label strings */
};

/* Maps PATH and checks it: magic, version, that every section lies inside the
 * file and the file is as long as the header says, the label table, that the
 * offsets rise from 0 to n_tokens with every flow 1 .. context tokens long,
 * and that every label id names a label (or is SHARD_NO_LABEL). Token values
 * are not scanned. Returns 0, or a sysexits code with a message naming PATH
 * in err (mapfile.h): EX_NOINPUT unreadable, EX_DATAERR damaged. */
int shard_open(const char *path, struct shard *s, char *err, size_t errlen);

static inline uint64_t shard_count(const struct shard *s)
{
	return s->h.n_flows;
}

/* Flow i: its tokens, their number and its label id (SHARD_NO_LABEL when it
 * has none); any of the out pointers may be NULL. Returns 0, or -1 when i is
 * out of range. */
int shard_flow(const struct shard *s, uint64_t i, const uint16_t **tokens, size_t *len,
	       uint16_t *label_id);

/* The label of an id, or NULL for SHARD_NO_LABEL and ids out of range. */
const char *shard_label(const struct shard *s, uint16_t id);
/* The id of a label, or -1 when the shard has no such label. */
int shard_label_id(const struct shard *s, const char *label);

void shard_close(struct shard *s);

#endif
