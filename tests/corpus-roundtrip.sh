#!/usr/bin/env bash
# corpus-roundtrip.sh: sends every capture of $CORPUS through
# `pcap2flow --all | flow2tok | tok2pcap` and compares the result with the
# original packet by packet (pcapcmp). Run by `make check-corpus`, which puts
# bin/ and build/tests/ first on PATH. A damaged capture must give exit 65 from
# pcap2flow and round-trip the packets before the damage. A pcapng file whose
# interfaces have several link types comes back as a pcapng (tok2pcap
# --pcapng), each packet with its link type. Ends with one summary line;
# exits 1 when any packet differs or a tool failed.
#   CORPUS=DIR  the captures (required)   JOBS=N  files at a time (2)
#   TIMEOUT=S   limit per tool run (300)  VERBOSE=1  one line per file
set -u -o pipefail

: "${CORPUS:?set CORPUS to the directory of captures}"
[ -d "$CORPUS" ] || { echo "corpus-roundtrip: $CORPUS: no such directory" >&2; exit 66; }
for tool in pcap2flow flow2tok tok2pcap pcapcmp; do
	command -v "$tool" >/dev/null || { echo "corpus-roundtrip: $tool not on PATH" >&2; exit 69; }
done
export TIMEOUT=${TIMEOUT:-300} VERBOSE=${VERBOSE:-0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tgpt-corpus.XXXXXX") || exit 73
export WORK
trap 'rm -rf "$WORK"' EXIT

# Each job prints one result line: STATUS PACKETS MISMATCHES FILE, where
# STATUS is ok, ok-pcapng (several link types, or times from 2106 on,
# compared as a pcapng), empty
# (no packets: tok2pcap has none to write), damaged (prefix compared),
# differ, failed, or skip-REASON.
result() { printf '%s %s %s %s\n' "$1" "$2" "$3" "$4"; }

# Explains a failure on stderr with the first lines of the evidence, in one
# write so that the messages of parallel jobs do not interleave (bash's own
# printf writes line by line; env's runs printf(1), which buffers).
complain() { # FILE WHAT [EVIDENCE-FILE]
	local msg="corpus-roundtrip: $1: $2"
	[ $# -lt 3 ] || msg+=$'\n'$(sed 's/^/    /' "$3" | head -4)
	env printf '%s\n' "$msg" >&2
}

# Runs the pipeline on $1 into $2 (more tok2pcap options after it); sets
# PIPE (the three exit codes) and leaves the tools' messages in $3.
pipeline() {
	local in=$1 out=$2 err=$3
	shift 3
	timeout "$TIMEOUT" pcap2flow --all -q "$in" 2>"$err.1" |
		timeout "$TIMEOUT" flow2tok -q 2>"$err.2" |
		timeout "$TIMEOUT" tok2pcap -q "$@" -w "$out" 2>"$err.3"
	PIPE="${PIPESTATUS[*]}"
	cat "$err".[123] >"$err"
}

# Records of several link types cannot share a pcap, nor can times from
# 2106 on: tok2pcap says so, and the pipeline runs again into a pcapng.
# Sets OUT to the capture written.
pipeline_any() { # IN DIR
	OUT=$2/out.pcap MIXED=0
	pipeline "$1" "$OUT" "$2/tools.err"
	if [ "${PIPE% *}" = "${PIPE%% *} 0" ] &&
	   grep -qE 'cannot share one pcap|outside what pcap can hold' "$2/tools.err.3"; then
		OUT=$2/out.pcapng MIXED=1
		pipeline "$1" "$OUT" "$2/tools.err" --pcapng
	fi
}

# Compares ORIGINAL and OUT (all of OUT against the head of ORIGINAL when
# PREFIX is -p) and prints the result line.
compare() { # STATUS ORIGINAL OUT PREFIX NAME DIR
	local summary mismatches packets
	summary=$(pcapcmp ${4:+"$4"} "$2" "$3" 2>"$6/cmp.err")
	case $? in
	0|1) ;;
	*) complain "$5" "pcapcmp failed" "$6/cmp.err"; result failed 0 0 "$5"; return ;;
	esac
	packets=$(sed -n 's/^packets \([0-9]*\), .*/\1/p' <<<"$summary")
	mismatches=$(sed -n 's/.*mismatches \([0-9]*\)$/\1/p' <<<"$summary")
	if [ "${mismatches:-1}" != 0 ]; then
		complain "$5" "$summary" "$6/cmp.err"
		result differ "${packets:-0}" "${mismatches:-1}" "$5"
	else
		result "$1" "$packets" 0 "$5"
	fi
}

# A capture pcapcmp reads to the end: every tool exits 0, the output equals
# the input (a capture of no packets gives none to write: tok2pcap says so).
check_clean() { # IN NAME DIR COUNT
	pipeline_any "$1" "$3"
	if [ "$PIPE" = "0 0 65" ] && [ "$4" = 0 ] && grep -q 'no packets to write' "$3/tools.err.3"; then
		result empty 0 0 "$2"; return
	fi
	# pcapng can date packets past 2262, beyond a flow record's 64-bit
	# nanoseconds; tok2pcap drops them with this reason (exit 65 when
	# nothing is left to write): a skip, not a mismatch.
	if [ "${PIPE% *}" = "0 0" ] && grep -q 'outside what pcap can hold' "$3/tools.err.3"; then
		result skip-time 0 0 "$2"; return
	fi
	if [ "$PIPE" != "0 0 0" ]; then
		complain "$2" "exit codes $PIPE" "$3/tools.err"; result failed 0 0 "$2"
		return
	fi
	compare "$([ "$MIXED" = 1 ] && echo ok-pcapng || echo ok)" "$1" "$OUT" "" "$2" "$3"
}

# A capture libpcap stops reading after COUNT packets: pcap2flow says so
# (65) and what it wrote is exactly those packets.
check_damaged() { # IN NAME DIR COUNT
	local out_count
	pipeline_any "$1" "$3"
	if [ "$4" = 0 ] && [ "$PIPE" = "65 0 65" ] && grep -q 'no packets to write' "$3/tools.err.3"; then
		result damaged 0 0 "$2"; return
	fi
	if [ "$PIPE" != "65 0 0" ]; then
		complain "$2" "damaged after $4 packets, but exit codes $PIPE (want 65 0 0)" "$3/tools.err"
		result failed 0 0 "$2"; return
	fi
	out_count=$(pcapcmp -c "$OUT" 2>/dev/null)
	if [ "$out_count" != "$4" ]; then
		complain "$2" "damaged after $4 packets, round trip has ${out_count:-none}"
		result differ "$4" 1 "$2"; return
	fi
	compare damaged "$1" "$OUT" -p "$2" "$3"
}

# One file of the corpus: decompress, probe with libpcap, round-trip.
roundtrip_one() { # FILE
	local name=${1#"$CORPUS"/} dir in count probe
	dir=$(mktemp -d "$WORK/f.XXXXXX") || { result failed 0 0 "$name"; return; }
	in=$1
	if [[ $1 == *.gz ]]; then
		in=$dir/in
		gzip -dc "$1" >"$in" 2>/dev/null || { result skip-gzip 0 0 "$name"; rm -rf "$dir"; return; }
	fi
	count=$(pcapcmp -c "$in" 2>"$dir/probe.err")
	probe=$?
	case $probe in
	0) check_clean "$in" "$name" "$dir" "$count" ;;
	1) check_damaged "$in" "$name" "$dir" "$count" ;;
	*) result skip-notcapture 0 0 "$name" ;;
	esac
	rm -rf "$dir"
}
export CORPUS
export -f result complain pipeline pipeline_any compare check_clean check_damaged roundtrip_one

# The capture files: everything but the corpus's notes and nDPI's results.
list_files() {
	find "$CORPUS" -type f ! -name SOURCES.md ! -name '*.md' ! -name '*.out' ! -name '*.tsv' -print0 | sort -z
}

summarize() {
	awk -v verbose="$VERBOSE" '
	verbose == 1 { print "  " $0 }
	{ n[$1]++; packets += $2; mismatches += $3 }
	END {
		files = n["ok"] + n["ok-pcapng"] + n["empty"] + n["damaged"] + n["differ"] + n["failed"]
		printf "corpus: files %d, packets %d, mismatches %d, as pcapng (several link types, 2106 on) %d, " \
			"empty %d, damaged %d, failed %d, " \
			"skipped %d (not a capture %d, bad gzip %d, time beyond 2262 %d)\n",
			files, packets, mismatches, n["ok-pcapng"] + 0, n["empty"] + 0,
			n["damaged"] + 0, n["failed"] + 0,
			n["skip-notcapture"] + n["skip-gzip"] + n["skip-time"],
			n["skip-notcapture"] + 0, n["skip-gzip"] + 0, n["skip-time"] + 0
		exit (mismatches > 0 || n["failed"] + n["differ"] > 0)
	}'
}

# shellcheck disable=SC2016 # $1 is for the inner bash
list_files | xargs -0 -r -n 1 -P "${JOBS:-2}" bash -c 'roundtrip_one "$1"' _ | summarize
