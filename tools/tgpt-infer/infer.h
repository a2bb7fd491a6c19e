/* infer.h: what tgpt-infer's two commands share (private to
 * tools/tgpt-infer): the usage text, the defaults and the output files;
 * cmd-classify.c and cmd-generate.c each hold one command. */
#ifndef TGPT_INFER_H
#define TGPT_INFER_H

#include "cli.h"
#include "stream.h"

#define MAX_THREADS 1024

/* The whole usage text (--help), and each command's own synopsis (its
 * usage errors). */
extern const char usage[], classify_usage[], generate_usage[];

/* The number of CPUs (within 1 .. MAX_THREADS): the default of -j. */
int default_threads(void);
_Noreturn void version(void);

/* Output FILE ("-": stdout, refused on a terminal without --force). */
void open_output(struct atomic_file *out, const char *path, int force);
/* Flushes the msgpack output and commits it, or after a failed run
 * (status) keeps the n records written apart (atomic_fail: an old file
 * stays, what names the records); exits EX_IOERR when writing failed. */
void close_output(struct atomic_file *out, struct mp_writer *w, const char *path, int status,
	uint64_t n, const char *what);

/* The commands: argv[1] is the command's name; they return the exit status. */
int cmd_classify(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif
