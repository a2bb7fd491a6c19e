/* input.h: the traffic an evaluator reads, as flow records. A tgpt flow
 * stream is read as it is; a capture (pcap or pcapng) goes through
 * pcap2flow(1) --all, run as a child process, so that the evaluators see
 * exactly the flows pcap2flow makes: the grouping of packets into flows is
 * its alone. The two kinds are told apart by their first bytes. */
#ifndef TGPT_INPUT_H
#define TGPT_INPUT_H

#include <sys/types.h>

#include "record.h"

enum input_format { INPUT_PCAP, INPUT_PCAPNG, INPUT_STREAM };
extern const char *const input_format_names[]; /* "pcap", "pcapng", "stream" */

struct input {
	const char *path;         /* as given; "-" is stdin */
	const char *name;         /* for messages: the path, or "<stdin>" */
	enum input_format format;
	struct rec_reader r;
	pid_t child;              /* pcap2flow, or 0 */
	pid_t feeder;             /* copies a piped stdin to pcap2flow, or 0 */
	int open;
};

/* Opens PATH. A capture starts pcap2flow with IDLE_S seconds as its idle
 * timeout: the pcap2flow next to the running program, else the one on PATH.
 * Exits 66 when PATH cannot be opened, 65 when it is neither a capture nor
 * a stream, 69 when pcap2flow is nowhere to be found. */
void input_open(struct input *in, const char *path, double idle_s);

/* The next flow record (valid until the next call), or NULL at the end. A
 * damaged stream exits 65 naming the input and byte offset; a pcap2flow that
 * fails (it names the capture and packet itself) makes us exit as it did,
 * 65 for a damaged capture. */
const struct flow_rec *input_next(struct input *in);

/* Closes the input (stopping pcap2flow if it still runs). */
void input_close(struct input *in);

#endif
