/* fields.h: the packet and flow fields jsdiv(1) compares (realism-eval(1)
 * reports their mean), their fixed binnings (jsdiv(1), BINNING), and the
 * pair of histograms per field that two sets of traffic fill, one flow
 * record at a time. */
#ifndef TGPT_FIELDS_H
#define TGPT_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "divergence.h"
#include "intern.h"
#include "features.h"
#include "record.h"

enum binning {
	BIN_ADDR,   /* addresses: exact, interned */
	BIN_EXACT,  /* small integers: exact */
	BIN_LINEAR, /* bins of .width from 0, .nbins of them */
	BIN_LOG,    /* bin_log from .lo, .per_decade, .decades */
	BIN_COUNT,  /* bin_count: exact below .exact, then logarithmic */
};

enum field_id {
	F_SRC_IP, F_DST_IP, F_SRC_PORT, F_DST_PORT, F_PKT_LEN, F_TTL, F_IP_PROTO,
	F_TCP_FLAGS, F_TCP_WINDOW, F_IAT,
	F_IN_PKTS, F_OUT_FRAC, F_IN_FRAC, F_OUT_ORDER_STD, F_OUT_PKTS, F_ALT_CONC_SUM,
	F_FLOW_PKTS, F_FLOW_BYTES, F_DURATION,
	N_FIELDS
};
#define FIRST_FLOW_FIELD F_IN_PKTS

struct field_def {
	const char *name, *alias, *unit;
	enum binning bin;
	double width, lo;  /* BIN_LINEAR width; BIN_LOG first edge */
	unsigned nbins, per_decade, decades, exact;
};
extern const struct field_def field_defs[N_FIELDS];

static inline int field_is_flow(int id)
{
	return id >= FIRST_FLOW_FIELD;
}

/* Addresses are categories: each distinct one gets a small id, the bin key,
 * shared by both sides so equal addresses meet in one bin: its struct addr
 * (17 bytes) interned in field_set.addrs. */
struct addr {
	uint8_t version, bytes[16];
};

/* Both sides' histograms of the selected fields. */
struct field_set {
	int selected[N_FIELDS];  /* all of them after field_set_init */
	struct hist2 hist[N_FIELDS];
	struct intern addrs;     /* the addresses seen, struct addr each */
	uint64_t packets[2];     /* IP packets counted, per side */
	uint64_t flows[2];       /* flows with IP packets */
	uint64_t skipped[2];     /* packets that are not IP */
	struct flow_acc acc;     /* scratch */
};

void field_set_init(struct field_set *s);
/* Counts the IP packets of one flow record on SIDE (0 or 1), then, when it
 * had any, the flow. A packet whose bytes end before the IP header takes the
 * record's addresses and ports in its direction and adds no TTL. */
void field_set_add_flow(struct field_set *s, int side, const struct flow_rec *f);
void field_set_free(struct field_set *s);
/* Says on stderr how many packets of side (read from name) the fields left
 * out, when any: frames without an IP header have none of them. */
void field_set_warn_skipped(const struct field_set *s, int side, const char *name);

struct field_result {
	int defined;          /* some value on either side */
	struct divergence d;
	size_t bins;          /* bins either side filled */
};
/* Divergences of the selected fields (others: undefined). */
void field_set_compare(const struct field_set *s, struct field_result res[N_FIELDS]);
/* The mean divergence of the defined fields of one level (flow_level 0:
 * packet fields, 1: flow fields); NAN when none. */
double field_mean_jsd(const struct field_result res[N_FIELDS], int flow_level);

#endif
