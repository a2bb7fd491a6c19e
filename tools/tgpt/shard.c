/* shard.c: the header codec and the reader of tgpt-shard(5) files. The reader
 * maps the file and checks its structure once, so the trainer can then index
 * it without further checks. */
#include "shard.h"

#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "cli.h"
#include "mapfile.h"

const char *const shard_split_names[SHARD_SPLITS] = { "train", "val", "test" };
const char *const shard_long_names[3] = { "cut", "window", "drop" };
const char *const shard_group_names[2] = { "source", "flow" };

/* ------------------------------------------------------------ header codec */

/* Byte offsets of the header fields (tgpt-shard(5), HEADER). */
enum {
	H_MAGIC = 0, H_VERSION = 8, H_HEADER_SIZE = 12, H_TOKENIZER = 16, H_TOKENIZER_V = 32,
	H_VOCAB = 36, H_CONTEXT = 40, H_LONG = 44, H_SPLIT = 48, H_N_LABELS = 56, H_GROUP = 60,
	H_SEED = 64, H_N_FLOWS = 72, H_N_TOKENS = 80, H_LABELS_OFF = 88, H_OFFSETS_OFF = 96,
	H_LABEL_IDS_OFF = 104, H_TOKENS_OFF = 112, H_FILE_SIZE = 120
};

void shard_header_encode(const struct shard_header *h, uint8_t out[SHARD_HEADER_SIZE])
{
	memset(out, 0, SHARD_HEADER_SIZE);
	memcpy(out + H_MAGIC, SHARD_MAGIC, SHARD_MAGIC_LEN);
	put_le32(out + H_VERSION, h->version);
	put_le32(out + H_HEADER_SIZE, h->header_size);
	memcpy(out + H_TOKENIZER, h->tokenizer, strnlen(h->tokenizer, SHARD_TOKENIZER_LEN));
	put_le32(out + H_TOKENIZER_V, h->tokenizer_version);
	put_le32(out + H_VOCAB, h->vocab);
	put_le32(out + H_CONTEXT, h->context);
	put_le32(out + H_LONG, h->long_mode);
	memcpy(out + H_SPLIT, h->split, strnlen(h->split, SHARD_SPLIT_LEN));
	put_le32(out + H_N_LABELS, h->n_labels);
	put_le32(out + H_GROUP, h->group);
	put_le64(out + H_SEED, h->seed);
	put_le64(out + H_N_FLOWS, h->n_flows);
	put_le64(out + H_N_TOKENS, h->n_tokens);
	put_le64(out + H_LABELS_OFF, h->labels_off);
	put_le64(out + H_OFFSETS_OFF, h->offsets_off);
	put_le64(out + H_LABEL_IDS_OFF, h->label_ids_off);
	put_le64(out + H_TOKENS_OFF, h->tokens_off);
	put_le64(out + H_FILE_SIZE, h->file_size);
}

static void header_decode(const uint8_t *in, struct shard_header *h)
{
	memset(h, 0, sizeof *h);
	h->version = get_le32(in + H_VERSION);
	h->header_size = get_le32(in + H_HEADER_SIZE);
	memcpy(h->tokenizer, in + H_TOKENIZER, SHARD_TOKENIZER_LEN);
	h->tokenizer_version = get_le32(in + H_TOKENIZER_V);
	h->vocab = get_le32(in + H_VOCAB);
	h->context = get_le32(in + H_CONTEXT);
	h->long_mode = get_le32(in + H_LONG);
	memcpy(h->split, in + H_SPLIT, SHARD_SPLIT_LEN);
	h->n_labels = get_le32(in + H_N_LABELS);
	h->group = get_le32(in + H_GROUP);
	h->seed = get_le64(in + H_SEED);
	h->n_flows = get_le64(in + H_N_FLOWS);
	h->n_tokens = get_le64(in + H_N_TOKENS);
	h->labels_off = get_le64(in + H_LABELS_OFF);
	h->offsets_off = get_le64(in + H_OFFSETS_OFF);
	h->label_ids_off = get_le64(in + H_LABEL_IDS_OFF);
	h->tokens_off = get_le64(in + H_TOKENS_OFF);
	h->file_size = get_le64(in + H_FILE_SIZE);
}

/* ------------------------------------------------------------ reader */

/* Does an array of count elements of size bytes at off end by limit? */
static int fits(uint64_t off, uint64_t count, uint64_t size, uint64_t limit)
{
	return off <= limit && count <= (limit - off) / size;
}

/* The sections in order, aligned, each inside the space before the next. */
static int check_layout(const struct shard_header *h, const char *path, char *err, size_t errlen)
{
	const uint64_t offs[] = { h->labels_off, h->offsets_off, h->label_ids_off, h->tokens_off };
	for (size_t i = 0; i < sizeof offs / sizeof *offs; i++)
		if (offs[i] % SHARD_ALIGN)
			return data_error(err, errlen, path, "damaged header: section at byte %llu is not "
				    "aligned to %d bytes", (unsigned long long)offs[i], SHARD_ALIGN);
	if (h->labels_off < h->header_size ||
	    !fits(h->labels_off, (uint64_t)h->n_labels + 1, 4, h->offsets_off))
		return data_error(err, errlen, path, "damaged header: label table of %u labels does not "
			    "fit between bytes %llu and %llu", h->n_labels,
			    (unsigned long long)h->labels_off, (unsigned long long)h->offsets_off);
	if (h->n_flows == UINT64_MAX || !fits(h->offsets_off, h->n_flows + 1, 8, h->label_ids_off))
		return data_error(err, errlen, path, "damaged header: %llu flow offsets do not fit "
			    "between bytes %llu and %llu", (unsigned long long)h->n_flows,
			    (unsigned long long)h->offsets_off, (unsigned long long)h->label_ids_off);
	if (!fits(h->label_ids_off, h->n_flows, 2, h->tokens_off))
		return data_error(err, errlen, path, "damaged header: %llu label ids do not fit between "
			    "bytes %llu and %llu", (unsigned long long)h->n_flows,
			    (unsigned long long)h->label_ids_off, (unsigned long long)h->tokens_off);
	if (!fits(h->tokens_off, h->n_tokens, 2, h->file_size))
		return data_error(err, errlen, path, "damaged header: %llu tokens at byte %llu go past "
			    "the end of the file (%llu bytes)", (unsigned long long)h->n_tokens,
			    (unsigned long long)h->tokens_off, (unsigned long long)h->file_size);
	return 0;
}

/* Every label a NUL-terminated string without an inner NUL. */
static int check_labels(struct shard *s, const char *path, char *err, size_t errlen)
{
	const struct shard_header *h = &s->h;
	s->label_off = (const uint32_t *)(s->map + h->labels_off);
	s->label_text = (const char *)(s->label_off + h->n_labels + 1);
	uint64_t text_room = h->offsets_off - h->labels_off - 4 * ((uint64_t)h->n_labels + 1);
	if (s->label_off[0] != 0 || s->label_off[h->n_labels] > text_room)
		return data_error(err, errlen, path, "damaged label table: its strings do not fit");
	for (uint32_t i = 0; i < h->n_labels; i++) {
		uint32_t a = s->label_off[i], b = s->label_off[i + 1];
		if (b <= a || s->label_text[b - 1] != '\0' || memchr(s->label_text + a, 0, b - a - 1))
			return data_error(err, errlen, path, "damaged label table: label %u is not one "
				    "NUL-terminated string", i);
	}
	return 0;
}

/* Offsets rising from 0 to n_tokens, each flow 1 .. context tokens; label
 * ids in the table. */
static int check_flows(const struct shard *s, const char *path, char *err, size_t errlen)
{
	const struct shard_header *h = &s->h;
	if (s->offsets[0] != 0 || s->offsets[h->n_flows] != h->n_tokens)
		return data_error(err, errlen, path, "damaged flow offsets: they run from %llu to %llu, "
			    "not from 0 to %llu tokens", (unsigned long long)s->offsets[0],
			    (unsigned long long)s->offsets[h->n_flows], (unsigned long long)h->n_tokens);
	for (uint64_t i = 0; i < h->n_flows; i++) {
		uint64_t a = s->offsets[i], b = s->offsets[i + 1];
		if (b < a)
			return data_error(err, errlen, path, "damaged flow offsets: they go backwards at "
				    "flow %llu", (unsigned long long)i);
		if (b == a || b - a > h->context)
			return data_error(err, errlen, path, "damaged flow offsets: flow %llu is %llu tokens "
				    "long, not 1 to %u", (unsigned long long)i, (unsigned long long)(b - a),
				    h->context);
		uint16_t id = s->label_ids[i];
		if (id != SHARD_NO_LABEL && id >= h->n_labels)
			return data_error(err, errlen, path, "damaged label ids: flow %llu has label id %u, "
				    "the table has %u labels", (unsigned long long)i, id, h->n_labels);
	}
	return 0;
}

/* The checks that need only the header and the file's size. */
static int check_header(struct shard *s, uint64_t size, const char *path, char *err, size_t errlen)
{
	struct shard_header *h = &s->h;
	header_decode(s->map, h);
	if (h->version != SHARD_VERSION)
		return data_error(err, errlen, path, "shard format version %u; this reader reads version %d "
			    "(make the shards again with this tokshard)", h->version, SHARD_VERSION);
	if (h->header_size < SHARD_HEADER_SIZE || h->header_size > size)
		return data_error(err, errlen, path, "damaged header: header size %u", h->header_size);
	if (h->file_size != size)
		return data_error(err, errlen, path, "%s: %llu bytes, the header says %llu",
			    size < h->file_size ? "cut short" : "longer than written",
			    (unsigned long long)size, (unsigned long long)h->file_size);
	if (h->vocab == 0 || h->vocab > 65536 || h->context == 0)
		return data_error(err, errlen, path, "damaged header: vocabulary %u, context %u", h->vocab,
			    h->context);
	if (h->n_labels > SHARD_MAX_LABELS)
		return data_error(err, errlen, path, "damaged header: %u labels", h->n_labels);
	return check_layout(h, path, err, errlen);
}

int shard_open(const char *path, struct shard *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	int rc = map_file(path, "shard", SHARD_MAGIC, SHARD_MAGIC_LEN, SHARD_HEADER_SIZE, &s->map,
		&s->map_len, err, errlen);
	if (rc)
		return rc;
	if ((rc = check_header(s, s->map_len, path, err, errlen)) ||
		(rc = check_labels(s, path, err, errlen)))
		goto bad;
	s->offsets = (const uint64_t *)(s->map + s->h.offsets_off);
	s->label_ids = (const uint16_t *)(s->map + s->h.label_ids_off);
	s->tokens = (const uint16_t *)(s->map + s->h.tokens_off);
	if ((rc = check_flows(s, path, err, errlen)))
		goto bad;
	return 0;
bad:
	shard_close(s);
	return rc;
}

int shard_flow(const struct shard *s, uint64_t i, const uint16_t **tokens, size_t *len,
	       uint16_t *label_id)
{
	if (i >= s->h.n_flows)
		return -1;
	if (tokens)
		*tokens = s->tokens + s->offsets[i];
	if (len)
		*len = (size_t)(s->offsets[i + 1] - s->offsets[i]);
	if (label_id)
		*label_id = s->label_ids[i];
	return 0;
}

const char *shard_label(const struct shard *s, uint16_t id)
{
	if (id >= s->h.n_labels)
		return NULL;
	return s->label_text + s->label_off[id];
}

int shard_label_id(const struct shard *s, const char *label)
{
	for (uint32_t i = 0; i < s->h.n_labels; i++)
		if (strcmp(s->label_text + s->label_off[i], label) == 0)
			return (int)i;
	return -1;
}

void shard_close(struct shard *s)
{
	unmap_file(s->map, s->map_len);
	memset(s, 0, sizeof *s);
}
