/* infer.h: what tgpt-infer's two commands share (private to
 * tools/tgpt-infer): the usage text, the defaults and the output files;
 * cmd-classify.c and cmd-generate.c each hold one command. */
#ifndef TGPT_INFER_H
#define TGPT_INFER_H

#include "cli.h"
#include "stream.h"

#define MAX_THREADS 1024

extern const char usage[];

/* The number of CPUs (within 1 .. MAX_THREADS): the default of -j. */
int default_threads(void);
_Noreturn void version(void);

/* Output FILE ("-": stdout, refused on a terminal without --force). */
void open_output(struct atomic_file *out, const char *path, int force);
/* Flushes the msgpack output and commits it; exits EX_IOERR on failure. */
void close_output(struct atomic_file *out, struct mp_writer *w, const char *path);

/* The commands: argv[1] is the command's name; they return the exit status. */
int cmd_classify(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif
