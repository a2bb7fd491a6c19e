/* write.c: what tokshard writes: the train, val and test shards
 * (tgpt-shard(5)), each read back with the trainer's reader before it
 * replaces an old one, and labels.tsv, split.tsv and groups.tsv beside
 * them. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "record.h"
#include "tokshard.h"

struct out_shard {
	struct atomic_file a;
	char *path;
	struct shard_header h;
	uint64_t pos; /* bytes written */
};

/* Write errors stay in the stream's error flag until check_written. */
static void put_bytes(struct out_shard *s, const void *p, size_t n)
{
	if (n)
		fwrite(p, 1, n, s->a.f);
	s->pos += n;
}

static void put_zeros(struct out_shard *s, uint64_t to)
{
	static const uint8_t zeros[SHARD_ALIGN];
	while (s->pos < to)
		put_bytes(s, zeros, to - s->pos < sizeof zeros ? (size_t)(to - s->pos) : sizeof zeros);
}

static void put_u64(struct out_shard *s, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(s, b, 8);
}

static void put_u32(struct out_shard *s, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(s, b, 4);
}

static void put_u16(struct out_shard *s, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put_bytes(s, b, 2);
}

char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* The header of one split's shard, with the section offsets. */
static void plan_shard(struct out_shard *s, const struct dataset *d, const struct options *o,
		       enum shard_split split, uint64_t label_bytes)
{
	struct shard_header *h = &s->h;
	memset(h, 0, sizeof *h);
	h->version = SHARD_VERSION;
	h->header_size = SHARD_HEADER_SIZE;
	snprintf(h->tokenizer, sizeof h->tokenizer, "%s", TOKENIZER_NAME);
	h->tokenizer_version = TOKENIZER_VERSION;
	h->vocab = TOK_VOCAB;
	h->context = o->context;
	h->long_mode = o->long_mode;
	snprintf(h->split, sizeof h->split, "%s", shard_split_names[split]);
	h->n_labels = (uint32_t)d->n_labels;
	h->group = o->group;
	h->seed = o->seed;
	for (size_t i = 0; i < d->n_items; i++)
		if (d->groups[d->items[i].group].split == split) {
			h->n_flows++;
			h->n_tokens += d->items[i].len;
		}
	h->labels_off = shard_align(SHARD_HEADER_SIZE);
	h->offsets_off = shard_align(h->labels_off + label_bytes);
	h->label_ids_off = shard_align(h->offsets_off + 8 * (h->n_flows + 1));
	h->tokens_off = shard_align(h->label_ids_off + 2 * h->n_flows);
	h->file_size = shard_align(h->tokens_off + 2 * h->n_tokens);
}

/* Header, label table, offsets and label ids: all but the tokens. */
static void write_index(struct out_shard *s, const struct dataset *d, enum shard_split split)
{
	uint8_t head[SHARD_HEADER_SIZE];
	shard_header_encode(&s->h, head);
	put_bytes(s, head, sizeof head);
	put_zeros(s, s->h.labels_off);
	uint32_t off = 0;
	put_u32(s, off);
	for (uint32_t i = 0; i < s->h.n_labels; i++) {
		off += (uint32_t)label_at(d, i)->len + 1;
		put_u32(s, off);
	}
	for (uint32_t i = 0; i < s->h.n_labels; i++) {
		const struct interned *l = label_at(d, i);
		put_bytes(s, l->s, l->len + 1);
	}
	put_zeros(s, s->h.offsets_off);
	uint64_t at = 0;
	put_u64(s, at);
	for (size_t i = 0; i < d->n_items; i++)
		if (d->groups[d->items[i].group].split == split)
			put_u64(s, at += d->items[i].len);
	put_zeros(s, s->h.label_ids_off);
	for (size_t i = 0; i < d->n_items; i++)
		if (d->groups[d->items[i].group].split == split)
			put_u16(s, d->items[i].label == NONE ? SHARD_NO_LABEL : (uint16_t)d->items[i].label);
	put_zeros(s, s->h.tokens_off);
}

/* Copies every item's tokens from the spill file to its split's shard,
 * skipping those of the flows the selection left out. */
static void copy_tokens(struct out_shard out[], const struct dataset *d, uint32_t context)
{
	if (fflush(d->spill) != 0 || ferror(d->spill) || fseek(d->spill, 0, SEEK_SET) != 0)
		err(EX_IOERR, "%s: temporary file", d->dir);
	uint8_t *buf = xmalloc(2 * (size_t)context);
	uint64_t at = 0;
	for (size_t i = 0; i < d->n_items; i++) {
		const struct item *it = &d->items[i];
		if (it->at != at && fseeko(d->spill, (off_t)(2 * it->at), SEEK_SET) != 0)
			err(EX_IOERR, "%s: temporary file: seeking", d->dir);
		at = it->at + it->len;
		if (fread(buf, 2, it->len, d->spill) != it->len)
			err(EX_IOERR, "%s: temporary file: reading back", d->dir);
		put_bytes(&out[d->groups[it->group].split], buf, 2 * (size_t)it->len);
	}
	free(buf);
}

/* Shards not yet renamed into place, removed if we exit before. */
static struct out_shard *pending;

static void remove_pending(void)
{
	for (int s = 0; pending && s < SHARD_SPLITS; s++)
		atomic_fail_quietly(&pending[s].a, 0);
}

/* An output written: renamed into place, or after a failed run (status)
 * kept apart as FILE.partial (atomic_fail), the old one left as it was:
 * main says so once for the directory. */
static void finish_output(struct atomic_file *a, int status, uint64_t flows)
{
	if (status)
		atomic_fail_quietly(a, flows);
	else
		atomic_commit(a);
}

/* Reads the written shard back with the trainer's reader before it replaces
 * the old one, so a shard that the reader would refuse is never installed. */
static void check_written(struct out_shard *s)
{
	if (fflush(s->a.f) != 0 || ferror(s->a.f))
		err(EX_IOERR, "%s", s->path);
	struct shard back;
	char why[512];
	if (shard_open(s->a.tmp, &back, why, sizeof why))
		errx(EX_SOFTWARE, "%s: the shard just written does not read back: %s", s->path, why);
	shard_close(&back);
}

void write_shards(const struct dataset *d, const struct options *o, int status)
{
	uint64_t label_bytes = 4 * ((uint64_t)d->n_labels + 1);
	for (uint32_t i = 0; i < d->n_labels; i++)
		label_bytes += label_at(d, i)->len + 1;
	static struct out_shard out[SHARD_SPLITS];
	pending = out;
	atexit(remove_pending);
	for (int s = 0; s < SHARD_SPLITS; s++) {
		char name[32];
		snprintf(name, sizeof name, "%s.shard", shard_split_names[s]);
		memset(&out[s], 0, sizeof out[s]);
		out[s].path = join_path(o->outdir, name);
		atomic_open(&out[s].a, out[s].path);
		plan_shard(&out[s], d, o, (enum shard_split)s, label_bytes);
		write_index(&out[s], d, (enum shard_split)s);
	}
	copy_tokens(out, d, o->context);
	for (int s = 0; s < SHARD_SPLITS; s++) {
		put_zeros(&out[s], out[s].h.file_size);
		check_written(&out[s]);
	}
	for (int s = 0; s < SHARD_SPLITS; s++) {
		finish_output(&out[s].a, status, d->n_flows);
		free(out[s].path);
	}
	pending = NULL;
}

/* A TSV field: the string with tabs, newlines and other controls as '?'. */
static void put_field(FILE *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], f);
}

/* labels.tsv: every label's id and flows per split, for humans. */
void write_labels_tsv(const struct dataset *d, const struct options *o, int status)
{
	size_t n = d->n_labels;
	uint64_t *flows = xcalloc(n * SHARD_SPLITS + 1, sizeof *flows);
	for (size_t i = 0; i < d->n_flows; i++)
		if (d->flows[i].label != NONE)
			flows[d->flows[i].label * SHARD_SPLITS + d->groups[d->flows[i].group].split]++;
	char *path = join_path(o->outdir, "labels.tsv");
	struct atomic_file a;
	atomic_open(&a, path);
	fprintf(a.f, "# id\tlabel\ttrain_flows\tval_flows\ttest_flows\n");
	for (uint32_t i = 0; i < n; i++) {
		const struct interned *l = label_at(d, i);
		fprintf(a.f, "%u\t", i);
		put_field(a.f, l->s, l->len);
		for (int s = 0; s < SHARD_SPLITS; s++)
			fprintf(a.f, "\t%" PRIu64, flows[i * SHARD_SPLITS + s]);
		fputc('\n', a.f);
	}
	for (size_t i = 0; i < d->labels.n; i++)
		if (d->label_dropped[i]) {
			fputs("# left out (--min-label-flows)\t", a.f);
			put_field(a.f, d->labels.e[i].s, d->labels.e[i].len);
			fprintf(a.f, "\t%" PRIu64 "\n", d->label_flows[i]);
		}
	finish_output(&a, status, d->n_flows);
	free(path);
	free(flows);
}

/* split.tsv: each stored flow's split, source, id and label ('-' for none),
 * in input order: what realism-eval --split-file needs to classify the same
 * flows on the same sides. */
void write_split_tsv(const struct dataset *d, const struct options *o, int status)
{
	char *path = join_path(o->outdir, "split.tsv");
	struct atomic_file a;
	atomic_open(&a, path);
	fprintf(a.f, "# split\tsource\tid\tlabel\n");
	for (size_t i = 0; i < d->n_flows; i++) {
		const struct flow_ref *f = &d->flows[i];
		fprintf(a.f, "%s\t", shard_split_names[d->groups[f->group].split]);
		if (f->source != NONE)
			put_field(a.f, d->sources.e[f->source].s, d->sources.e[f->source].len);
		fprintf(a.f, "\t%" PRIu64 "\t", f->id);
		if (f->label == NONE) {
			fputc('-', a.f);
		} else {
			const struct interned *l = label_at(d, f->label);
			put_field(a.f, l->s, l->len);
		}
		fputc('\n', a.f);
	}
	finish_output(&a, status, d->n_flows);
	free(path);
}

/* groups.tsv: where each source (or flow) went, to audit the split. */
void write_groups_tsv(const struct dataset *d, const struct options *o, const uint32_t *order,
		      int status)
{
	char *path = join_path(o->outdir, "groups.tsv");
	struct atomic_file a;
	atomic_open(&a, path);
	fprintf(a.f, "# split\tlabel\tflows\ttokens\t%s\n", shard_group_names[o->group]);
	for (size_t i = 0; i < d->n_groups; i++) {
		const struct group *g = &d->groups[order[i]];
		if (!g->flows)
			continue;
		fprintf(a.f, "%s\t", shard_split_names[g->split]);
		if (g->label == NONE) {
			fputc('-', a.f);
		} else {
			const struct interned *l = label_at(d, g->label);
			put_field(a.f, l->s, l->len);
		}
		fprintf(a.f, "\t%" PRIu64 "\t%" PRIu64 "\t", g->flows, g->tokens);
		if (g->key == NONE)
			fprintf(a.f, "#%" PRIu64, g->ordinal);
		else
			put_field(a.f, d->keys.e[g->key].s, d->keys.e[g->key].len);
		fputc('\n', a.f);
	}
	finish_output(&a, status, d->n_flows);
	free(path);
}
