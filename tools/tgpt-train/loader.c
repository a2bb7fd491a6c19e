/* loader.c: tgpt-train's data: the flows of a shard in the order of each
 * epoch (a seeded permutation, or file order for validation), packed whole
 * into sequences of the context's length with their next-token targets; or
 * random tokens for benchmarks. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "record.h"
#include "train.h"
#include "../tgpt/conditional.h"

/* A seed for one purpose, from the run's seed. */
uint64_t derive_seed(uint64_t seed, uint64_t purpose)
{
	uint64_t s = seed ^ (purpose * 0xd1b54a32d192ed03ull);
	return splitmix64(&s);
}

void loader_permute(struct loader *l)
{
	uint64_t n = shard_count(&l->sh), s = derive_seed(l->seed, l->epoch + 1);
	for (uint64_t i = 0; i < n; i++)
		l->perm[i] = i;
	for (uint64_t i = n; i > 1; i--) {	/* Fisher-Yates */
		uint64_t j = splitmix64(&s) % i, tmp = l->perm[i - 1];
		l->perm[i - 1] = l->perm[j];
		l->perm[j] = tmp;
	}
}

/* Opens DIR/NAME. Missing: 1 (or exit 66 when required); damaged, of
 * another tokenizer or too large a vocabulary: exit 65. */
int loader_open(struct loader *l, const char *dir, const char *name, int required,
	int vocab)
{
	char msg[1024];
	memset(l, 0, sizeof *l);
	size_t n = strlen(dir) + strlen(name) + 2, dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	l->path = xmalloc(n);
	snprintf(l->path, n, "%.*s/%s", (int)dlen, dir, name);
	if (access(l->path, R_OK) < 0) {
		if (required || errno != ENOENT)
			err(EX_NOINPUT, "%s", l->path);
		return 1;
	}
	int rc = shard_open(l->path, &l->sh, msg, sizeof msg);
	if (rc)
		errx(rc, "%s", msg);
	const struct shard_header *h = &l->sh.h;
	if (strcmp(h->tokenizer, TOKENIZER_NAME) != 0 || h->tokenizer_version != TOKENIZER_VERSION)
		errx(EX_DATAERR, "%s: tokens of tokenizer %s %u; the model reads %s %d", l->path,
			h->tokenizer, h->tokenizer_version, TOKENIZER_NAME, TOKENIZER_VERSION);
	if (h->vocab > (uint32_t)vocab)
		errx(EX_DATAERR, "%s: %u token ids, more than the model's vocabulary of %d", l->path,
			h->vocab, vocab);
	l->vocab = vocab;
	return 0;
}

void loader_start(struct loader *l, int shuffle, uint64_t seed, uint64_t epoch,
	uint64_t cursor)
{
	l->shuffle = shuffle;
	l->seed = seed;
	l->epoch = epoch;
	l->cursor = cursor;
	if (shuffle) {
		l->perm = xcalloc(shard_count(&l->sh), sizeof *l->perm);
		loader_permute(l);
	}
}

/* Flows of a class-conditional model: each led by its label's tokens. The
 * flows themselves hold tokenizer ids only; the ids past them are labels. */
void loader_condition(struct loader *l, const struct ckpt_labels *map)
{
	l->cond = map;
	l->vocab = COND_TOKEN_BASE;
}

void loader_close(struct loader *l)
{
	if (l->path)
		shard_close(&l->sh);
	free(l->perm);
	free(l->path);
	memset(l, 0, sizeof *l);
}

/* Flows longer than T (less their label tokens), which are cut to fit. */
uint64_t count_long(const struct loader *l, uint64_t T)
{
	uint64_t n = 0, room = T - (l->cond ? l->cond->k : 0);
	for (uint64_t i = 0; i < shard_count(&l->sh); i++)
		n += l->sh.offsets[i + 1] - l->sh.offsets[i] > room;
	return n;
}

/* One sequence seq (T): whole flows one after the other from the cursor
 * while they fit (each led by its label's tokens for a conditional model),
 * then PAD. A flow that does not fit in what is left starts the next
 * sequence; one longer than T fills a sequence alone, cut. At the end of
 * the flows a shuffling loader starts the next epoch, the other pads. */
static void pack_sequence(struct loader *l, int *seq, int T, int pad)
{
	uint64_t n = shard_count(&l->sh);
	int pos = 0;
	while (pos < T) {
		if (l->cursor == n) {
			if (!l->shuffle)
				break;
			l->epoch++;
			l->cursor = 0;
			loader_permute(l);
		}
		uint64_t flow = l->perm ? l->perm[l->cursor] : l->cursor;
		const uint16_t *tok;
		size_t len;
		uint16_t id;
		shard_flow(&l->sh, flow, &tok, &len, &id);
		for (size_t i = 0; i < len && i < (size_t)T; i++)
			if (tok[i] >= l->vocab)
				errx(EX_DATAERR, "%s: flow %" PRIu64 ": token %u at %zu is outside the "
					"vocabulary of %d", l->path, flow, tok[i], i, l->vocab);
		int next = cond_put_flow(l->cond, l->cond ? cond_entry(l->cond, id) : 0, tok, len,
			seq, pos, T);
		if (next < 0)
			break;
		pos = next;
		l->cursor++;
	}
	for (; pos < T; pos++)
		seq[pos] = pad;
}

/* B sequences of T tokens and their targets, the next token of each (the
 * last position has none: PAD, which the loss leaves out; nor have the
 * positions before a label token). */
void shard_batch(struct loader *l, int *tok, int *tgt, int B, int T, int pad)
{
	for (int b = 0; b < B; b++) {
		int *s = tok + (size_t)b * T, *y = tgt + (size_t)b * T;
		pack_sequence(l, s, T, pad);
		memcpy(y, s + 1, (size_t)(T - 1) * sizeof *y);
		y[T - 1] = pad;
		if (l->cond)
			cond_mask_targets(y, (size_t)T, pad);
	}
}

/* Random tokens: each sequence T + 1 uniform ids, inputs and targets
 * shifted by one. */
void random_batch(uint64_t *rng, int *tok, int *tgt, int B, int T, int vocab)
{
	for (int b = 0; b < B; b++) {
		int prev = (int)(splitmix64(rng) % (uint64_t)vocab);
		for (int t = 0; t < T; t++) {
			int next = (int)(splitmix64(rng) % (uint64_t)vocab);
			tok[(size_t)b * T + t] = prev;
			tgt[(size_t)b * T + t] = next;
			prev = next;
		}
	}
}
