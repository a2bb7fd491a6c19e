/* conditional.c: the label map, training sequences and label lookups of a
 * class-conditional model (conditional.h). */
#include "conditional.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "cli.h"
#include "shard.h"

void cond_map_init(struct ckpt_labels *map, uint32_t n_labels, const char *const *name,
	const uint64_t *count, uint64_t unlabelled, uint32_t k)
{
	memset(map, 0, sizeof *map);
	map->n = n_labels + 1;
	map->k = k;
	map->conditional = 1;
	map->name = xcalloc(map->n, sizeof *map->name);
	map->count = xcalloc(map->n, sizeof *map->count);
	for (uint32_t i = 0; i < n_labels; i++) {
		map->name[i] = xstrdup(name[i]);
		map->count[i] = count[i];
	}
	map->name[n_labels] = xstrdup("");
	map->count[n_labels] = unlabelled;
	clf_assign_tokens(map, COND_TOKEN_BASE);
}

int cond_vocab(const struct ckpt_labels *map)
{
	int top = 0;
	for (size_t i = 0; i < (size_t)map->n * map->k; i++)
		top = map->token[i] > top ? map->token[i] : top;
	return top + 1;
}

int cond_check(const struct ckpt_labels *map, int vocab, char *err, size_t errlen)
{
	if (!map->conditional || map->n < 2 || map->name[map->n - 1][0] != '\0') {
		snprintf(err, errlen, "not the label table of a class-conditional model");
		return -1;
	}
	for (size_t i = 0; i < (size_t)map->n * map->k; i++)
		if (map->token[i] < COND_TOKEN_BASE || map->token[i] >= vocab) {
			snprintf(err, errlen, "label token %u is outside %d .. %d, the label ids of a "
				"vocabulary of %d", map->token[i], COND_TOKEN_BASE, vocab - 1, vocab);
			return -1;
		}
	return 0;
}

uint32_t cond_entry(const struct ckpt_labels *map, uint16_t shard_label_id)
{
	return shard_label_id == SHARD_NO_LABEL ? map->n - 1 : shard_label_id;
}

int cond_put_flow(const struct ckpt_labels *map, uint32_t entry, const uint16_t *tok, size_t len,
	int *seq, int pos, int T)
{
	int k = map ? (int)map->k : 0;
	if ((size_t)k + len > (size_t)(T - pos)) {
		if (pos > 0)
			return -1;
		len = T > k ? (size_t)(T - k) : 0;
	}
	for (int j = 0; j < k && pos < T; j++)
		seq[pos++] = map->token[(size_t)entry * map->k + (size_t)j];
	for (size_t i = 0; i < len; i++)
		seq[pos++] = tok[i];
	return pos;
}

void cond_mask_targets(int *tgt, size_t n, int pad)
{
	for (size_t i = 0; i < n; i++)
		if (tgt[i] >= COND_TOKEN_BASE && tgt[i] != pad)
			tgt[i] = pad;
}

long cond_find(const struct ckpt_labels *map, const char *name)
{
	if (!*name)
		return -1;
	for (uint32_t i = 0; i < map->n; i++)
		if (strcmp(map->name[i], name) == 0)
			return i;
	return -1;
}

void cond_known(const struct ckpt_labels *map, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for (uint32_t i = 0; i < map->n && at < len; i++) {
		if (!map->name[i][0])
			continue;
		int w = snprintf(buf + at, len - at, "%s%s", at ? ", " : "", map->name[i]);
		at += w > 0 ? (size_t)w : 0;
	}
	if (at >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

uint32_t cond_draw(const struct ckpt_labels *map, uint64_t r)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < map->n; i++)
		total += map->count[i];
	if (total == 0)	/* the labels alike; not the "" entry */
		return map->n > 1 ? (uint32_t)(r % (map->n - 1)) : 0;
	uint64_t x = r % total;
	for (uint32_t i = 0; i < map->n; i++) {
		if (x < map->count[i])
			return i;
		x -= map->count[i];
	}
	return map->n - 1;
}
