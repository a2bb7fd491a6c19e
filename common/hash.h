/* hash.h: the two small hashes every part of tgpt writes the same way:
 * splitmix64, a seeded generator that gives the same numbers on every
 * machine (model initialisation, data order, sampling, shuffles), its
 * finaliser as a counter-based hash (dropout's masks), and FNV-1a over bytes (string tables, seeds from names). Header-only, so the
 * model core needs no library for them. (The mix of hash_words, for keys of
 * whole words, is bytes.h's.) */
#ifndef TGPT_HASH_H
#define TGPT_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SPLITMIX64_GAMMA 0x9e3779b97f4a7c15ull

/* splitmix64's finaliser: every input bit reaches every output bit, so
 * z = key + SPLITMIX64_GAMMA * i hashes counter i of a key. */
static inline uint64_t splitmix64_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The next number of the sequence seeded by *state. */
static inline uint64_t splitmix64(uint64_t *state)
{
	return splitmix64_mix(*state += SPLITMIX64_GAMMA);
}

/* Uniform in [0, n), n > 0: rejection keeps it free of modulo bias. */
static inline uint64_t splitmix64_below(uint64_t *state, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
	do
		x = splitmix64(state);
	while (x >= limit);
	return x % n;
}

#define FNV1A_BASIS 0xcbf29ce484222325ull

/* FNV-1a of n bytes, continuing from h (FNV1A_BASIS to start). */
static inline uint64_t fnv1a_update(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static inline uint64_t fnv1a(const void *p, size_t n)
{
	return fnv1a_update(FNV1A_BASIS, p, n);
}

#endif
