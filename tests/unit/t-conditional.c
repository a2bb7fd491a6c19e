/* t-conditional.c: unit tests of class-conditional generation's label map
 * and sequences (tools/tgpt/conditional.h) and of its checkpoint flag
 * (ckpt.h): label tokens from 260 (one, or two past 256 labels) and the
 * vocabulary they need, the "" entry of unlabelled flows, the training
 * sequence (label token, then START ... END, packed and cut) and its
 * targets, label lookups and draws by frequency; the map and "conditional 1"
 * written and read back, checkpoints without the key (every one written
 * before it) reading as not conditional, and damaged flags refused. */
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "../../tools/tgpt/ckpt.h"
#include "../../tools/tgpt/conditional.h"
#include "../../tools/tgpt/model.h"
#include "../../tools/tgpt/shard.h"
#include "../tap.h"

#define START 256
#define END 257
#define PAD 259

/* Labels "dns" (3 flows) and "tcp" (1), 2 flows without a label. */
static void two_labels(struct ckpt_labels *map)
{
	static const char *const names[] = { "dns", "tcp" };
	static const uint64_t counts[] = { 3, 1 };
	cond_map_init(map, 2, names, counts, 2, 1);
}

static void test_map(void)
{
	struct ckpt_labels map;
	char err[256];
	two_labels(&map);
	is_int(map.n, 3, "two labels and the entry of flows without one");
	ok(map.conditional == 1 && map.window == 0 && map.k == 1, "conditional, window 0, k 1");
	is_str(map.name[2], "", "the last entry is named \"\"");
	is_int(map.count[2], 2, "and counts the unlabelled flows");
	ok(map.token[0] == 260 && map.token[1] == 261 && map.token[2] == 262,
		"label i is the token 260 + i, past the tokenizer's ids");
	is_int(cond_vocab(&map), 263, "a vocabulary of 263 holds them");
	ok(cond_check(&map, 263, err, sizeof err) == 0, "a model of vocab 263 takes the map");
	ok(cond_check(&map, 262, err, sizeof err) < 0 && strstr(err, "label token 262"),
		"one of 262 does not");
	is_int(cond_entry(&map, 1), 1, "shard label id 1 is entry 1");
	is_int(cond_entry(&map, SHARD_NO_LABEL), 2, "no label is the last entry");
	is_int(cond_find(&map, "tcp"), 1, "lookup by name");
	is_int(cond_find(&map, "udp"), -1, "an unknown label is not found");
	is_int(cond_find(&map, ""), -1, "nor is \"\", which is no label");
	char known[64];
	cond_known(&map, known, sizeof known);
	is_str(known, "dns, tcp", "the known labels, without the \"\" entry");
	/* draws by frequency: 3 dns, 1 tcp, 2 unlabelled in 6 */
	int seen[3] = { 0 };
	for (uint64_t r = 0; r < 6; r++)
		seen[cond_draw(&map, r)]++;
	ok(seen[0] == 3 && seen[1] == 1 && seen[2] == 2, "draws follow the training counts");
	uint64_t saved = map.count[2];
	map.count[0] = map.count[1] = map.count[2] = 0;
	int labelled = 1;
	for (uint64_t r = 0; r < 10; r++)
		labelled &= cond_draw(&map, r) < 2;
	ok(labelled, "no counts: the labels alike, never the \"\" entry");
	map.count[2] = saved;
	map.conditional = 0;
	ok(cond_check(&map, 263, err, sizeof err) < 0, "a map that is not conditional is refused");
	ckpt_labels_free(&map);

	/* 300 labels take two tokens each: 260 + i / 256, 260 + i % 256 */
	const char **names = calloc(300, sizeof *names);
	uint64_t *counts = calloc(300, sizeof *counts);
	char (*buf)[8] = calloc(300, sizeof *buf);
	for (int i = 0; i < 300; i++) {
		snprintf(buf[i], sizeof buf[i], "c%d", i);
		names[i] = buf[i];
	}
	cond_map_init(&map, 300, names, counts, 0, 2);
	ok(map.n == 301 && map.token[2 * 299] == 261 && map.token[2 * 299 + 1] == 260 + 43,
		"two-token labels: label 299 is 261, 303");
	is_int(cond_vocab(&map), 260 + 256, "they need a vocabulary of 516");
	ok(cond_check(&map, 516, err, sizeof err) == 0, "and fit it");
	ckpt_labels_free(&map);
	free(names);
	free(counts);
	free(buf);
}

/* The training sequence: each flow led by its label token, packed as
 * without labels, and the targets of the positions before a label PAD. */
static void test_sequence(void)
{
	struct ckpt_labels map;
	two_labels(&map);
	const uint16_t a[] = { START, 1, 9, 0, 0, 0, 0, 0, 0, 0, 7, 8, END };	/* 13 */
	const uint16_t b[] = { START, 1, 9, 0, 0, 0, 0, 0, 0, 0, 5, END };	/* 12 */
	int seq[32], tgt[32], T = 32;
	int pos = cond_put_flow(&map, 1, a, 13, seq, 0, T);
	is_int(pos, 14, "a flow of 13 tokens takes 14 with its label");
	ok(seq[0] == 261 && seq[1] == START && seq[13] == END, "label token, then START ... END");
	pos = cond_put_flow(&map, cond_entry(&map, SHARD_NO_LABEL), b, 12, seq, pos, T);
	is_int(pos, 27, "the next flow follows");
	ok(seq[14] == 262 && seq[15] == START, "led by the token of flows without a label");
	is_int(cond_put_flow(&map, 0, a, 13, seq, pos, T), -1,
		"a flow that does not fit after others starts the next sequence");
	for (int t = pos; t < T; t++)
		seq[t] = PAD;
	memcpy(tgt, seq + 1, (size_t)(T - 1) * sizeof *tgt);
	tgt[T - 1] = PAD;
	cond_mask_targets(tgt, (size_t)T, PAD);
	ok(tgt[0] == START && tgt[12] == END, "the label predicts START; END is a target");
	is_int(tgt[13], PAD, "the position before a label token has no target");
	int none_left = 1;
	for (int t = 0; t < T; t++)
		none_left &= tgt[t] < 260;
	ok(none_left, "no label token is a target");
	int cut[8];
	is_int(cond_put_flow(&map, 0, a, 13, cut, 0, 8), 8, "a flow alone longer than T is cut");
	ok(cut[0] == 260 && cut[1] == START && cut[7] == 0, "after its label token");
	int plain[16];
	ok(cond_put_flow(NULL, 0, a, 13, plain, 0, 16) == 13 && plain[0] == START,
		"without a map: the flow alone, as before");
	ckpt_labels_free(&map);
}

/* A LABELS section of map and a MODEL section of text, written to NAME. */
static void write_raw(const char *name, const char *model_text, const struct ckpt_labels *map)
{
	struct ckpt_out o = { 0 };
	uint64_t size;
	void *labels = ckpt_labels_encode(map, &size);
	ckpt_out_add(&o, CKPT_MODEL, model_text, strlen(model_text));
	ckpt_out_add(&o, CKPT_LABELS, labels, size);
	ckpt_write(&o, tap_path(name));
	free(labels);
}

/* The read of NAME's label table: its status, the map in *l. */
static int read_labels(const char *name, struct ckpt_labels *l, char *err, size_t errlen)
{
	struct ckpt ck;
	int rc = ckpt_open(tap_path(name), &ck, 1, err, errlen);
	if (rc)
		return rc;
	rc = ckpt_read_labels(&ck, l, err, errlen);
	ckpt_close(&ck);
	return rc;
}

static void test_checkpoint(void)
{
	struct model m, back;
	struct model_config c = model_config_tiny();
	struct ckpt_labels map, got;
	struct ckpt_out o = { 0 };
	struct ckpt_text mt = { 0 };
	struct ckpt ck;
	char err[1024];
	two_labels(&map);
	c.vocab = cond_vocab(&map);
	model_init(&m, &c, 5);
	ckpt_out_add_model_with(&o, &m, &mt, &map, NULL);
	ckpt_write(&o, tap_path("cond.ckpt"));
	ckpt_out_free(&o);
	ckpt_text_free(&mt);
	ok(ckpt_open(tap_path("cond.ckpt"), &ck, 1, err, sizeof err) == 0,
		"a conditional checkpoint opens");
	size_t len;
	const char *v = ckpt_text_get(ckpt_find(&ck, CKPT_MODEL), "conditional", &len);
	ok(v && len == 1 && *v == '1', "its MODEL section says conditional 1");
	ok(ckpt_read_labels(&ck, &got, err, sizeof err) == 0, "its label table reads back");
	int same = got.n == 3 && got.k == 1 && got.window == 0 && got.conditional == 1;
	for (uint32_t i = 0; same && i < 3; i++)
		same = !strcmp(got.name[i], map.name[i]) && got.token[i] == map.token[i] &&
			got.count[i] == map.count[i];
	ok(same, "the flag, names, tokens and counts the same");
	ckpt_labels_free(&got);
	ok(ckpt_load_model(&ck, &back, 0, err, sizeof err) == 0 && back.c.vocab == 263 &&
		!memcmp(back.params_mem, m.params_mem, m.n_params * sizeof *m.params_mem),
		"the model of vocab 263 and its parameters load");
	model_free(&back);
	ckpt_close(&ck);

	/* without labels: the MODEL section as before the key (no key at all) */
	struct ckpt_out p = { 0 };
	ckpt_out_add_model(&p, &m, &mt);
	ckpt_write(&p, tap_path("plain.ckpt"));
	ok(ckpt_open(tap_path("plain.ckpt"), &ck, 1, err, sizeof err) == 0 &&
		!ckpt_text_get(ckpt_find(&ck, CKPT_MODEL), "conditional", &len),
		"a model without labels writes no conditional key");
	ok(ckpt_read_labels(&ck, &got, err, sizeof err) == 0 && got.n == 0 && !got.conditional,
		"and reads as not conditional");
	ckpt_close(&ck);
	ckpt_text_free(&mt);

	/* an older checkpoint: MODEL without the key, a classifier's table */
	struct ckpt_labels clf = { 0 };
	clf.n = 2, clf.k = 1, clf.window = 4;
	char *names[] = { "a", "b" };
	uint16_t tokens[] = { 0, 1 };
	uint64_t counts[] = { 1, 1 };
	clf.name = names, clf.token = tokens, clf.count = counts;
	write_raw("old.ckpt", "tokenizer tgpt-bytes\nvocab 260\n", &clf);
	ok(read_labels("old.ckpt", &got, err, sizeof err) == 0 && got.n == 2 &&
		got.window == 4 && !got.conditional, "a classifier without the key: not conditional");
	ckpt_labels_free(&got);

	/* damage */
	write_raw("two.ckpt", "vocab 263\nconditional 2\n", &map);
	ok(read_labels("two.ckpt", &got, err, sizeof err) == EX_DATAERR &&
		strstr(err, "conditional"), "conditional 2 is refused");
	write_raw("window.ckpt", "conditional 1\n", &clf);
	ok(read_labels("window.ckpt", &got, err, sizeof err) == EX_DATAERR &&
		strstr(err, "window"), "conditional 1 with a classifier's window is refused");
	struct ckpt_labels none = { 0 };
	write_raw("empty.ckpt", "conditional 1\n", &none);
	ok(read_labels("empty.ckpt", &got, err, sizeof err) == EX_DATAERR &&
		strstr(err, "empty label table"), "conditional 1 without labels is refused");
	map.conditional = 0;
	write_raw("nokey.ckpt", "vocab 263\n", &map);
	ok(read_labels("nokey.ckpt", &got, err, sizeof err) == EX_DATAERR &&
		strstr(err, "window of 0"), "a window of 0 without the key is refused, as before");
	ckpt_labels_free(&map);
	model_free(&m);
}

int main(void)
{
	if (tap_tmpdir("t-conditional") < 0)
		return 1;
	model_set_threads(1);
	test_map();
	test_sequence();
	test_checkpoint();
	const char *names[] = { "cond.ckpt", "plain.ckpt", "old.ckpt", "two.ckpt", "window.ckpt",
		"empty.ckpt", "nokey.ckpt" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(tap_path(names[i]));
	tap_rmdir();
	return tap_done();
}
