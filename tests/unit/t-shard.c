/* t-shard: the shard reader (tools/tgpt/shard.c) against shards built here
 * byte by byte from the layout tgpt-shard(5) documents: a good shard reads
 * back, and a wrong magic, another version, a cut or damaged file are refused
 * with a message that says so. */
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#include "../tap.h"
#include "../../tools/tgpt/shard.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* A shard of 3 flows (5, 3 and 4 tokens; labels "chat", none, "web") and the
 * labels "chat", "web", laid out as the manual says: header at 0, labels at
 * 128, offsets at 192, label ids at 256, tokens at 320, size 384. */
#define GOOD_SIZE 384
static const uint16_t good_tokens[12] = { 256, 1, 2, 3, 257, 256, 9, 9, 256, 7, 7, 257 };

static void build_good(uint8_t *b)
{
	memset(b, 0, GOOD_SIZE);
	memcpy(b, "TGPTSHRD", 8);
	put32(b + 8, 1);              /* version */
	put32(b + 12, 128);           /* header size */
	memcpy(b + 16, "tgpt-bytes", 10);
	put32(b + 32, 1);             /* tokenizer version */
	put32(b + 36, 260);           /* vocab */
	put32(b + 40, 6);             /* context */
	put32(b + 44, 1);             /* long: window */
	memcpy(b + 48, "train", 5);
	put32(b + 56, 2);             /* labels */
	put32(b + 60, 0);             /* group: source */
	put64(b + 64, 42);            /* seed */
	put64(b + 72, 3);             /* flows */
	put64(b + 80, 12);            /* tokens */
	put64(b + 88, 128);
	put64(b + 96, 192);
	put64(b + 104, 256);
	put64(b + 112, 320);
	put64(b + 120, GOOD_SIZE);
	/* label table: offsets 0, 5, 9, then "chat\0web\0" */
	put32(b + 128, 0);
	put32(b + 132, 5);
	put32(b + 136, 9);
	memcpy(b + 140, "chat\0web\0", 9);
	const uint64_t off[4] = { 0, 5, 8, 12 };
	for (int i = 0; i < 4; i++)
		put64(b + 192 + 8 * i, off[i]);
	put16(b + 256, 0);
	put16(b + 258, 0xFFFF);
	put16(b + 260, 1);
	for (int i = 0; i < 12; i++)
		put16(b + 320 + 2 * i, good_tokens[i]);
}

static char path[512];

static void write_file(const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(99);
	}
}

/* Opens b[0..n) as a file; returns shard_open's result, the message in why. */
static int try_open(const uint8_t *b, size_t n, char *why, size_t whylen)
{
	struct shard s;
	write_file(b, n);
	why[0] = 0;
	int r = shard_open(path, &s, why, whylen);
	if (r == 0)
		shard_close(&s);
	return r;
}

/* The good shard with one change must be refused with a message holding
 * want. */
static void refused(uint8_t *b, size_t n, const char *want, const char *what)
{
	char why[512];
	int r = try_open(b, n, why, sizeof why);
	ok(r == EX_DATAERR && strstr(why, want) && strstr(why, path), what);
	if (r == 0 || !strstr(why, want))
		printf("#   message \"%s\", want one with \"%s\"\n", why, want);
	build_good(b);
}

static void test_good(uint8_t *b)
{
	struct shard s;
	char why[512] = "";
	build_good(b);
	write_file(b, GOOD_SIZE);
	int r = shard_open(path, &s, why, sizeof why);
	is_int(r, 0, "a shard built from the manual opens");
	if (r != 0) {
		printf("#   %s\n", why);
		return;
	}
	is_int(s.h.version, 1, "version");
	is_str(s.h.tokenizer, "tgpt-bytes", "tokenizer name");
	is_int(s.h.vocab, 260, "vocab");
	is_int(s.h.context, 6, "context");
	is_int(s.h.long_mode, SHARD_LONG_WINDOW, "long mode");
	is_str(s.h.split, "train", "split name");
	is_u64(s.h.seed, 42, "seed");
	is_u64(shard_count(&s), 3, "three flows");
	is_u64(s.h.n_tokens, 12, "twelve tokens");

	const uint16_t *tok;
	size_t len;
	uint16_t label;
	is_int(shard_flow(&s, 0, &tok, &len, &label), 0, "flow 0");
	is_int(len, 5, "flow 0 has 5 tokens");
	is_mem(tok, good_tokens, 5 * sizeof *tok, "flow 0 tokens");
	is_int(label, 0, "flow 0 label id");
	shard_flow(&s, 1, &tok, &len, &label);
	is_int(len, 3, "flow 1 has 3 tokens");
	is_int(tok[0], 256, "flow 1 starts with START");
	is_int(label, SHARD_NO_LABEL, "flow 1 is unlabelled");
	shard_flow(&s, 2, &tok, &len, &label);
	is_mem(tok, good_tokens + 8, 4 * sizeof *tok, "flow 2 tokens");
	is_str(shard_label(&s, label), "web", "flow 2 label");
	is_int(shard_flow(&s, 3, &tok, &len, &label), -1, "flow 3 is out of range");
	is_int(shard_flow(&s, 2, NULL, NULL, NULL), 0, "out pointers may be NULL");
	is_str(shard_label(&s, 0), "chat", "label 0");
	ok(shard_label(&s, 2) == NULL, "label 2 does not exist");
	ok(shard_label(&s, SHARD_NO_LABEL) == NULL, "no label for SHARD_NO_LABEL");
	is_int(shard_label_id(&s, "web"), 1, "id of web");
	is_int(shard_label_id(&s, "mail"), -1, "no id for mail");
	ok(((uintptr_t)s.offsets % 8) == 0 && ((uintptr_t)s.tokens % 64) == 0, "arrays aligned");
	shard_close(&s);
}

/* The writer's header codec gives the bytes the manual lays out. */
static void test_encode(uint8_t *b)
{
	struct shard_header h = {
		.version = 1, .header_size = 128, .tokenizer = "tgpt-bytes", .tokenizer_version = 1,
		.vocab = 260, .context = 6, .long_mode = SHARD_LONG_WINDOW, .split = "train",
		.n_labels = 2, .group = SHARD_GROUP_SOURCE, .seed = 42, .n_flows = 3, .n_tokens = 12,
		.labels_off = 128, .offsets_off = 192, .label_ids_off = 256, .tokens_off = 320,
		.file_size = GOOD_SIZE,
	};
	uint8_t head[SHARD_HEADER_SIZE];
	build_good(b);
	shard_header_encode(&h, head);
	is_mem(head, b, SHARD_HEADER_SIZE, "shard_header_encode matches the documented layout");
	is_int(shard_align(129), 192, "shard_align rounds up to 64");
	is_int(shard_align(192), 192, "shard_align keeps a multiple of 64");
}

static void test_refusals(uint8_t *b)
{
	char why[512];
	build_good(b);
	memcpy(b, "TGPTSHRX", 8);
	refused(b, GOOD_SIZE, "not a tgpt shard", "wrong magic");
	refused(b, 4, "not a tgpt shard", "a file shorter than the magic");
	refused(b, 0, "not a tgpt shard", "an empty file");
	put32(b + 8, 2);
	refused(b, GOOD_SIZE, "version 2", "another format version");
	refused(b, 100, "cut short", "a file cut inside the header");
	refused(b, GOOD_SIZE - 64, "cut short", "a file cut inside the tokens");
	refused(b, GOOD_SIZE - 1, "cut short", "a file one byte short");
	refused(b, GOOD_SIZE + 1, "longer", "a file longer than the header says");
	put64(b + 72, UINT64_MAX / 4);
	put64(b + 120, GOOD_SIZE);
	refused(b, GOOD_SIZE, "flow offsets do not fit", "an absurd flow count");
	put64(b + 80, UINT64_MAX / 2);
	refused(b, GOOD_SIZE, "past the end", "an absurd token count");
	put64(b + 104, 250);
	refused(b, GOOD_SIZE, "not aligned", "an unaligned section");
	put32(b + 56, 70000);
	refused(b, GOOD_SIZE, "labels", "too many labels");
	put32(b + 136, 60);
	refused(b, GOOD_SIZE, "label table", "a label table whose strings run past it");
	b[148] = 'x';
	refused(b, GOOD_SIZE, "label 1", "a label without its NUL");
	put64(b + 208, 4);
	refused(b, GOOD_SIZE, "backwards at flow 1", "offsets that go backwards");
	put64(b + 208, 5);
	refused(b, GOOD_SIZE, "flow 1", "an empty flow");
	put64(b + 216, 11);
	refused(b, GOOD_SIZE, "from 0 to 12", "offsets that stop short of n_tokens");
	put32(b + 40, 4);
	refused(b, GOOD_SIZE, "flow 0 is 5 tokens", "a flow longer than the context");
	put16(b + 260, 2);
	refused(b, GOOD_SIZE, "label id 2", "a label id outside the table");
	put32(b + 36, 0);
	refused(b, GOOD_SIZE, "vocabulary", "a zero vocabulary");
	unlink(path);
	struct shard s;
	ok(shard_open(path, &s, why, sizeof why) == EX_NOINPUT && strstr(why, "No such file"),
	   "a missing file is EX_NOINPUT, naming the cause");
	char tiny[8];
	ok(shard_open(path, &s, tiny, sizeof tiny) != 0 && strlen(tiny) == 7,
	   "a short error buffer is filled, not overrun");
}

/* An empty shard (a split that got no flows) is valid. */
static void test_empty(uint8_t *b)
{
	char why[512];
	memset(b, 0, GOOD_SIZE);
	memcpy(b, "TGPTSHRD", 8);
	put32(b + 8, 1), put32(b + 12, 128), put32(b + 36, 260), put32(b + 40, 6);
	put64(b + 88, 128), put64(b + 96, 192), put64(b + 104, 256), put64(b + 112, 256);
	put64(b + 120, 256);
	put32(b + 128, 0);
	int r = try_open(b, 256, why, sizeof why);
	is_int(r, 0, "an empty shard opens");
	if (r != 0)
		printf("#   %s\n", why);
}

int main(void)
{
	static uint8_t b[1024];
	snprintf(path, sizeof path, "%s/t-shard.%ld", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		 (long)getpid());
	test_good(b);
	test_encode(b);
	test_refusals(b);
	test_empty(b);
	unlink(path);
	return tap_done();
}
