/* realism.h: the parts of realism-eval (private to tools/realism-eval):
 * its options (options.c), the flow vectors and classifier both modes use
 * (flowset.c), and the two modes: realism (realism-eval.c) and --baseline
 * (baseline.c). */
#ifndef TGPT_REALISM_H
#define TGPT_REALISM_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"

#define PROGRESS_EVERY 4096

extern const char usage[];

/* Options without a letter (a short letter means one thing in every tool). */
enum { OPT_SPLIT = 256, OPT_TEST_SHARE, OPT_SPLIT_FILE, OPT_BASELINE, OPT_FOLDS, OPT_JSON,
	OPT_PACKETS, OPT_PORTS, OPT_SEED, OPT_IP_LAYER, OPT_FEATURES, OPT_FIRST_PACKETS,
	OPT_FIRST_BYTES, OPT_TOKENS };
enum split_mode { SPLIT_CAPTURE, SPLIT_TIME, SPLIT_FILE };

struct options {
	int baseline, json, quiet, ports, ip_layer;
	int folds, rounds, depth, threads;
	unsigned packets;
	int byte_features;             /* --features bytes */
	unsigned first_packets, first_bytes;
	uint64_t seed;
	double idle, test_share, eta;
	enum split_mode split;
	const char *labels, *split_file, *tokens;
};

/* Parses the options into o (exits 64 on a bad or conflicting one, 0 after
 * --help or --version); returns the index of the first operand. */
int parse_options(int argc, char **argv, struct options *o);

/* Flow vectors of one or more inputs, with what the baseline needs. */
struct flowset {
	size_t ncol, n, cap;
	float *x;            /* n rows of ncol */
	int *label;          /* baseline: class id */
	int *source;         /* baseline: source id */
	uint64_t *first_ns;  /* baseline: time of the first packet */
};

/* A new row at the end of the set (ncol floats to fill). */
float *flowset_row(struct flowset *s);
void flowset_free(struct flowset *s);
/* Trains on the rows train[] and predicts the rows test[] (classes y). */
void fit_predict(const struct options *o, int n_classes, const struct flowset *s, const int *y,
	const size_t *train, size_t n_train, const size_t *test, size_t n_test, int *pred);

/* --baseline on the operands (argc of them): prints the report, returns
 * the exit status. */
int baseline(int argc, char **argv, const struct options *o);

#endif
