/* labels.h: pcap2flow --labels: flow labels from a table of flows another
 * tool made (nDPI's flow table, Zeek's conn.log), read once at the start and
 * looked up by bidirectional 5-tuple (and VLAN) when a flow opens. */
#ifndef PCAP2FLOW_LABELS_H
#define PCAP2FLOW_LABELS_H

#include <stddef.h>
#include <stdint.h>

enum label_format { LABELS_AUTO, LABELS_TSV, LABELS_ZEEK };

/* --label-filter COLUMN=PREFIX: only rows whose COLUMN starts with PREFIX
 * give labels. */
struct label_filter {
	const char *column, *prefix;
};

struct label_options {
	const char *path;               /* the table; "-" is stdin */
	enum label_format format;
	const char *column;             /* the label column; NULL: the format's */
	const char *key;                /* the capture-file column; NULL: the format's */
	const struct label_filter *filters; /* all must hold */
	size_t n_filters;
	int quiet;                      /* no summaries or warnings */
};

/* A flow as pcap2flow keys it: addresses 16 bytes each (IPv4 in the first
 * four, the rest zero), ports 0 for protocols other than TCP and UDP, VLAN
 * ids outer first. Either endpoint may come first. */
struct label_query {
	const uint8_t *addr[2];
	uint16_t port[2];
	uint8_t proto, ip_version, n_vlan;
	const uint16_t *vlan;
};

struct label_table;

/* Reads the whole table. A missing table exits EX_NOINPUT; a bad one
 * (columns missing, an unparsable endpoint, transport or VLAN) exits
 * EX_DATAERR naming the table and the line. */
struct label_table *labels_load(const struct label_options *o);
/* Before the flows of a capture: selects the table's rows for it (those
 * naming its base name, or all when the table names no captures). */
void labels_begin(struct label_table *t, const char *capture);
/* The label of a flow that opens (NUL-terminated, valid until labels_free),
 * or NULL when no row names it. */
const char *labels_find(struct label_table *t, const struct label_query *q, size_t *len);
/* After a capture: its summary on stderr, given how many flows it had. */
void labels_end(struct label_table *t, const char *msgname, uint64_t flows);
/* The summary over all captures, when there were several (else nothing). */
void labels_total(const struct label_table *t);
void labels_free(struct label_table *t);

#endif
