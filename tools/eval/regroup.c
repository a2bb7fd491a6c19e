/* regroup.c: generated flows against the flows of their capture (see
 * regroup.h): the records' packets sorted by their bytes, each captured
 * packet taking the first equal one not yet taken. */
#include "regroup.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct regroup_pkt {
	size_t off, len;	/* its bytes in r->bytes */
	uint64_t record;
	int taken;
};

static const uint8_t *sort_bytes;	/* qsort has no user argument */

static int cmp_content(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

static int by_content(const void *x, const void *y)
{
	const struct regroup_pkt *a = x, *b = y;
	int c = cmp_content(sort_bytes + a->off, a->len, sort_bytes + b->off, b->len);
	return c ? c : (a->record > b->record) - (a->record < b->record);
}

/* The packets of one record: each run from START to the next special
 * token with its link-type and 8 time tokens and at least one byte. */
static void take_record(struct regroup *r, const struct tok_rec *t, size_t *cap, size_t *bcap,
	size_t *blen)
{
	for (size_t i = 0; i < t->n_tokens; i++) {
		if (tok_at(t, i) != TOK_START)
			continue;
		size_t j = i + 1;
		while (j < t->n_tokens && tok_at(t, j) < 256)
			j++;
		if (j - i - 1 <= 9)
			continue;	/* no bytes: tok2pcap writes no packet */
		size_t len = j - i - 10;
		grow((void **)&r->pkt, cap, r->n_pkt + 1, sizeof *r->pkt);
		grow((void **)&r->bytes, bcap, *blen + len, 1);
		for (size_t k = 0; k < len; k++)
			r->bytes[*blen + k] = (uint8_t)tok_at(t, i + 10 + k);
		r->pkt[r->n_pkt++] = (struct regroup_pkt){ *blen, len, r->records, 0 };
		*blen += len;
		i = j - 1;
	}
}

void regroup_open(struct regroup *r, const char *path)
{
	struct rec_reader rd;
	size_t cap = 0, bcap = 0, blen = 0;
	memset(r, 0, sizeof *r);
	if (rec_open(&rd, path) < 0)
		err(EX_NOINPUT, "%s", path);
	int got;
	while ((got = rec_next(&rd, REC_TOK)) == REC_TOK) {
		take_record(r, &rd.tok, &cap, &bcap, &blen);
		r->records++;
	}
	if (got < 0)
		errx(EX_DATAERR, "%s", rd.error);
	rec_close(&rd);
	sort_bytes = r->bytes;
	if (r->n_pkt)
		qsort(r->pkt, r->n_pkt, sizeof *r->pkt, by_content);
	r->flow_of = xmalloc((r->records ? r->records : 1) * sizeof *r->flow_of);
	r->broken = xcalloc(r->records ? r->records : 1, 1);
	for (uint64_t i = 0; i < r->records; i++)
		r->flow_of[i] = UINT64_MAX;
}

/* The first packet not yet taken with these bytes, or NULL. */
static struct regroup_pkt *find(struct regroup *r, const uint8_t *p, size_t len)
{
	size_t lo = 0, hi = r->n_pkt;
	while (lo < hi) {	/* the first one not below */
		size_t mid = (lo + hi) / 2;
		const struct regroup_pkt *m = &r->pkt[mid];
		if (cmp_content(r->bytes + m->off, m->len, p, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < r->n_pkt && !cmp_content(r->bytes + r->pkt[lo].off, r->pkt[lo].len, p, len);
	     lo++)
		if (!r->pkt[lo].taken)
			return &r->pkt[lo];
	return NULL;
}

void regroup_flow(struct regroup *r, const struct flow_rec *f)
{
	uint64_t id = r->flows++;
	size_t cap = r->flows_cap;
	grow((void **)&r->owners, &r->flows_cap, r->flows, sizeof *r->owners);
	grow((void **)&r->foreign, &cap, r->flows, 1);
	r->owners[id] = 0;
	r->foreign[id] = 0;
	uint64_t last = UINT64_MAX;
	for (size_t i = 0; i < f->n_packets; i++) {
		const struct packet *pk = &f->pkt[i];
		struct regroup_pkt *m = find(r, pk->data, pk->caplen);
		if (!m || pk->caplen != pk->wirelen) {
			r->foreign[id] = 1;
			continue;
		}
		m->taken = 1;
		uint64_t rec = m->record;
		if (r->flow_of[rec] != UINT64_MAX && r->flow_of[rec] != id)
			r->broken[rec] = 1;	/* its packets in two flows */
		r->flow_of[rec] = id;
		if (rec != last && r->owners[id] < 2)
			r->owners[id]++;
		last = rec;
	}
}

uint64_t regroup_alone(const struct regroup *r)
{
	uint8_t *lost = xcalloc(r->records ? r->records : 1, 1);
	for (size_t i = 0; i < r->n_pkt; i++)
		if (!r->pkt[i].taken)
			lost[r->pkt[i].record] = 1;
	uint64_t alone = 0;
	for (uint64_t k = 0; k < r->records; k++) {
		uint64_t fl = r->flow_of[k];
		alone += !lost[k] && !r->broken[k] && fl != UINT64_MAX && r->owners[fl] == 1 &&
			!r->foreign[fl];
	}
	free(lost);
	return alone;
}

void regroup_free(struct regroup *r)
{
	free(r->pkt);
	free(r->bytes);
	free(r->flow_of);
	free(r->broken);
	free(r->owners);
	free(r->foreign);
	memset(r, 0, sizeof *r);
}
