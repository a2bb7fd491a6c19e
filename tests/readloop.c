/* readloop.c: the floor for the benchmarks: reads a capture with libpcap and
 * does nothing else, so bench/run.sh can say how much of pcap2flow's time is
 * libpcap's (which reads every byte into its buffer). Prints "packets N,
 * bytes B" (captured bytes). */
#include <err.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h" /* TGPT_VERSION only: the helper links nothing from common/ */

static const char usage_text[] = "usage: readloop FILE\n"
	"Reads FILE (pcap or pcapng, '-': stdin) with libpcap and prints\n"
	"\"packets N, bytes B\"; exit 65 when libpcap stops at damage.\n";

int main(int argc, char **argv)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	uint64_t packets = 0, bytes = 0;
	pcap_t *p;
	int r;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("readloop (tgpt) %s\n%s\n", TGPT_VERSION, pcap_lib_version());
		return 0;
	}
	if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != '\0')) {
		fputs(usage_text, stderr);
		return EX_USAGE;
	}
	if (!(p = pcap_open_offline(argv[1], errbuf)))
		errx(EX_NOINPUT, "%s", errbuf);
	while ((r = pcap_next_ex(p, &h, &data)) == 1) {
		packets++;
		bytes += h->caplen;
	}
	if (r != PCAP_ERROR_BREAK)
		warnx("%s: packet %" PRIu64 ": %s", argv[1], packets + 1, pcap_geterr(p));
	printf("packets %" PRIu64 ", bytes %" PRIu64 "\n", packets, bytes);
	pcap_close(p);
	return r == PCAP_ERROR_BREAK ? 0 : EX_DATAERR;
}
