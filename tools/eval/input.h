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

/* The link types of the flows an input gave (the first few), so that two
 * sides of different ones can be told apart: the same traffic over
 * Ethernet and over raw IP differs in every length and byte offset. */
#define INPUT_LINKTYPES 8
struct linktype_set {
	uint32_t lt[INPUT_LINKTYPES];
	size_t n;
};

struct input {
	const char *path;         /* as given; "-" is stdin */
	const char *name;         /* for messages: the path, or "<stdin>" */
	enum input_format format;
	struct rec_reader r;
	pid_t child;              /* pcap2flow, or 0 */
	pid_t feeder;             /* copies a piped stdin to pcap2flow, or 0 */
	int open;
	/* set after input_open: every packet from its IP header on, as raw
	 * IP (link type 101); packets without one are left out */
	int ip_layer;
	struct linktype_set linktypes; /* of the flows read, before ip_layer */
	uint64_t not_ip;          /* ip_layer: packets left out */
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

/* Warns when the flows of two inputs (names na, nb) came over different
 * link types: their lengths and bytes then differ by the link headers
 * alone. With ip_layer (both read from the IP header on) it says nothing. */
void linktypes_warn(const struct linktype_set *a, const char *na, const struct linktype_set *b,
		    const char *nb, int ip_layer);

#endif
