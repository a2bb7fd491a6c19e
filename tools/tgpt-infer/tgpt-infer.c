/* tgpt-infer.c: tgpt-infer: a trained tgpt model at work. `classify` predicts the
 * label of every flow of token records or a shard with a fine-tuned
 * classifier (classify.h) and scores the predictions against the labels the
 * flows carry; `generate` samples new flows with the recurrent model
 * (recurrent.h, generate.h) under the decoding grammar (grammar.h; --raw:
 * free sampling, every packet checked as it completes), and writes them as token records for tok2pcap(1); a class-conditional model
 * (conditional.h) generates flows of the label it is given. The commands
 * live in cmd-classify.c and cmd-generate.c; this file dispatches to them. */
#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer.h"

/* Each command's synopsis: its usage errors show its own. */
#define CLASSIFY_SYNOPSIS \
	"tgpt-infer classify [-q] [-j N] [-b B] [-o FILE] [--report FILE] [--json]\n" \
	"                           [--force] CKPT [FILE ...]\n"
#define GENERATE_SYNOPSIS \
	"tgpt-infer generate [-q] [-j N] [-n N] [--seed N] [-k K] [-T TEMP] [--label X]\n" \
	"                           [--prompt FILE] [--prompt-packets K] [--max-tokens N]\n" \
	"                           [--retries N] [--streams S] [--linktype N]\n" \
	"                           [--link-token N] [--precision P] [--raw]\n" \
	"                           [--idle-timeout SECS] [-o FILE] [--force] CKPT\n"
const char classify_usage[] = "usage: " CLASSIFY_SYNOPSIS;
const char generate_usage[] = "usage: " GENERATE_SYNOPSIS;
const char usage[] =
	"usage: " CLASSIFY_SYNOPSIS
	"       " GENERATE_SYNOPSIS
	"classify: predicts the label of every flow of token records (flow2tok) or of a\n"
	"shard (tokshard, e.g. DIR/test.shard) in FILEs or stdin ('-') with the\n"
	"classifier CKPT (tgpt-train --labels), writes one prediction record per flow\n"
	"(schema tgpt.pred) and, for flows with labels, accuracy, macro-F1 and the\n"
	"confusion matrix on stderr. The last line on stderr is \"flows/s: X\".\n"
	"  -b, --batch B          flows per forward pass (default 16)\n"
	"  -o, --output FILE      the predictions (default stdout)\n"
	"      --report FILE      the report to FILE instead of stderr ('-': stdout)\n"
	"      --json             the report as one JSON document\n"
	"generate: samples N flows with the model CKPT under the decoding grammar (each\n"
	"flow one flow of valid packets, coherent TCP) and writes them as token records\n"
	"(tgpt.tok) for tok2pcap; a summary on stderr, last line \"tokens/s: X\"; exit 65\n"
	"when no flow holds a packet.\n"
	"      --raw              sample freely, checking each packet and sampling a\n"
	"                         failing one again (--retries), as the paper does\n"
	"      --idle-timeout S   longest interval between a flow's packets, the idle\n"
	"                         timeout pcap2flow -t will regroup with (default 120)\n"
	"  -n, --flows N          flows to generate (default 1; with --prompt: one per\n"
	"                         prompt record)\n"
	"      --seed N           seed of the sampling (default 1)\n"
	"  -k, --top-k K          sample among the K likeliest tokens (default 26, 0: all)\n"
	"  -T, --temperature X    temperature (default 1, 0: always the likeliest)\n"
	"  -l, --label X          flows of label X (a model of tgpt-train --conditional,\n"
	"                         which otherwise takes a prompt record's label or draws\n"
	"                         one by the training frequencies)\n"
	"  -p, --prompt FILE      token records whose first packets start the flows\n"
	"                         ('-': stdin), taken in turn\n"
	"      --prompt-packets K packets of each prompt record (default 1)\n"
	"      --max-tokens N     tokens per flow, prompt and END included (default 4\n"
	"                         times the model's context)\n"
	"      --retries N        with --raw, samplings of a failing packet before the\n"
	"                         flow ends (default 8)\n"
	"      --streams S        flows generated side by side (default 16)\n"
	"      --linktype N       the link type of escape tokens (255), for the checks\n"
	"      --link-token N     every packet's link-type token is N (e.g. 1,\n"
	"                         Ethernet), so all flows fit one pcap\n"
	"      --precision P      the weights' precision in the products: int8\n"
	"                         (default, the fastest), f16 or f32 (exact)\n"
	"  -o, --output FILE      the flows (default stdout)\n"
	"Both:\n"
	"  -j, --threads N        threads (default: the number of CPUs)\n"
	"      --force            write binary output even to a terminal\n"
	"  -q, --quiet            no progress, no summary (still the last line)\n"
	"  -h, --help             this help\n"
	"  -V, --version          version and libraries\n";

int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

_Noreturn void version(void)
{
	static char blis[64];
	snprintf(blis, sizeof blis, "BLIS %s", bli_info_get_version_str());
	const char *libs[] = { blis, NULL };
	cli_version(libs);
}

/* Output FILE ("-": stdout, refused on a terminal without --force). */
void open_output(struct atomic_file *out, const char *path, int force)
{
	if (strcmp(path, "-") == 0)
		cli_refuse_tty(force);
	atomic_open(out, path);
	static char obuf[1 << 20];
	setvbuf(out->f, obuf, _IOFBF, sizeof obuf);
}

/* Flushes the msgpack output and commits it, or after a failed run
 * (status) keeps the n records written apart (atomic_fail: an old file
 * stays); exits EX_IOERR when writing failed. */
void close_output(struct atomic_file *out, struct mp_writer *w, const char *path, int status,
	uint64_t n, const char *what)
{
	if (mp_writer_flush(w) < 0) {
		warn("%s", strcmp(path, "-") ? path : "stdout");
		atomic_abort(out);
		exit(EX_IOERR);
	}
	if (status)
		atomic_fail(out, n, what);
	else
		atomic_commit(out);
}

int main(int argc, char **argv)
{
	cli_init(argc, argv);
	if (argc < 2)
		cli_usage_error(usage, "which command? classify or generate");
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
		cli_help(usage);
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0)
		version();
	if (strcmp(cmd, "classify") == 0)
		return cmd_classify(argc, argv);
	if (strcmp(cmd, "generate") == 0)
		return cmd_generate(argc, argv);
	if (cmd[0] == '-')
		cli_usage_error(usage, "%s: unknown option (the command comes first: classify or "
			"generate)", cmd);
	cli_usage_error(usage, "%s: unknown command (classify or generate)", cmd);
}
