#!/usr/bin/env bash
# corpus-roundtrip.sh: sends every capture of $CORPUS through
# `pcap2flow --all | flow2tok | tok2pcap` and compares the result with the
# original packet by packet (pcapcmp). Run by `make check-corpus`, which puts
# bin/ and build/tests/ first on PATH. A damaged capture must give exit 65 from
# pcap2flow and round-trip the packets before the damage. Ends with one
# summary line; exits 1 when any packet differs or a tool failed.
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
# STATUS is ok, damaged (prefix compared), differ, failed, or skip-REASON.
result() { printf '%s %s %s %s\n' "$1" "$2" "$3" "$4"; }

# Explains a failure on stderr with the first lines of the evidence, in one
# write so that the messages of parallel jobs do not interleave (bash's own
# printf writes line by line; env's runs printf(1), which buffers).
complain() { # FILE WHAT [EVIDENCE-FILE]
	local msg="corpus-roundtrip: $1: $2"
	[ $# -lt 3 ] || msg+=$'\n'$(sed 's/^/    /' "$3" | head -4)
	env printf '%s\n' "$msg" >&2
}

# Runs the pipeline on $1 into $2; sets PIPE (the three exit codes) and
# leaves the tools' messages in $3.
pipeline() {
	timeout "$TIMEOUT" pcap2flow --all -q "$1" 2>"$3.1" |
		timeout "$TIMEOUT" flow2tok -q 2>"$3.2" |
		timeout "$TIMEOUT" tok2pcap -q -w "$2" 2>"$3.3"
	PIPE="${PIPESTATUS[*]}"
	cat "$3".[123] >"$3"
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

# A capture libpcap reads to the end: every tool exits 0, the output equals
# the input (tok2pcap refusing mixed link types is a skip, not a failure).
check_clean() { # IN NAME DIR
	pipeline "$1" "$3/out.pcap" "$3/tools.err"
	# pcapng can date packets from 2106 on; a classic pcap cannot hold that,
	# and tok2pcap drops them with this reason (exit 65 when nothing is
	# left to write): a skip, not a mismatch.
	if [ "${PIPE% *}" = "0 0" ] && grep -q 'outside what pcap can hold' "$3/tools.err.3"; then
		result skip-time 0 0 "$2"; return
	fi
	if [ "$PIPE" != "0 0 0" ]; then
		if grep -qi 'link.type' "$3/tools.err.3" && [ "${PIPE% *}" = "0 0" ]; then
			result skip-mixed 0 0 "$2"
		else
			complain "$2" "exit codes $PIPE" "$3/tools.err"; result failed 0 0 "$2"
		fi
		return
	fi
	compare ok "$1" "$3/out.pcap" "" "$2" "$3"
}

# A capture libpcap stops reading after COUNT packets: pcap2flow says so
# (65) and what it wrote is exactly those packets.
check_damaged() { # IN NAME DIR COUNT
	local out_count
	pipeline "$1" "$3/out.pcap" "$3/tools.err"
	if [ "$PIPE" != "65 0 0" ]; then
		complain "$2" "damaged after $4 packets, but exit codes $PIPE (want 65 0 0)" "$3/tools.err"
		result failed 0 0 "$2"; return
	fi
	out_count=$(pcapcmp -c "$3/out.pcap" 2>/dev/null)
	if [ "$out_count" != "$4" ]; then
		complain "$2" "damaged after $4 packets, round trip has ${out_count:-none}"
		result differ "$4" 1 "$2"; return
	fi
	compare damaged "$1" "$3/out.pcap" -p "$2" "$3"
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
	0) check_clean "$in" "$name" "$dir" ;;
	1) if grep -q 'has a type .* different from the type' "$dir/probe.err" && [ "$count" = 0 ]; then
		result skip-mixed 0 0 "$name"
	   else
		check_damaged "$in" "$name" "$dir" "$count"
	   fi ;;
	*) result skip-notcapture 0 0 "$name" ;;
	esac
	rm -rf "$dir"
}
export CORPUS
export -f result complain pipeline compare check_clean check_damaged roundtrip_one

# The capture files: everything but the corpus's notes and nDPI's results.
list_files() {
	find "$CORPUS" -type f ! -name SOURCES.md ! -name '*.md' ! -name '*.out' ! -name '*.tsv' -print0 | sort -z
}

summarize() {
	awk -v verbose="$VERBOSE" '
	verbose == 1 { print "  " $0 }
	{ n[$1]++; packets += $2; mismatches += $3 }
	END {
		files = n["ok"] + n["damaged"] + n["differ"] + n["failed"]
		printf "corpus: files %d, packets %d, mismatches %d, damaged %d, failed %d, " \
			"skipped %d (not a capture %d, mixed link types %d, bad gzip %d, " \
			"time beyond pcap %d)\n",
			files, packets, mismatches, n["damaged"] + 0, n["failed"] + 0,
			n["skip-notcapture"] + n["skip-mixed"] + n["skip-gzip"] + n["skip-time"],
			n["skip-notcapture"] + 0, n["skip-mixed"] + 0, n["skip-gzip"] + 0,
			n["skip-time"] + 0
		exit (mismatches > 0 || n["failed"] + n["differ"] > 0)
	}'
}

# shellcheck disable=SC2016 # $1 is for the inner bash
list_files | xargs -0 -r -n 1 -P "${JOBS:-2}" bash -c 'roundtrip_one "$1"' _ | summarize
