#!/usr/bin/env bash
# run.sh: the benchmarks behind `make bench`. Makes a synthetic capture of
# BENCH_MB megabytes with many thousands of TCP flows (mkpcap bulk) and a second
# one half that size, then reports the best of three wall-clock runs of:
# libpcap alone (readloop), pcap2flow, pcap2flow | flow2tok, tok2pcap on the
# saved tokens, and tshark's TCP conversation table as the outside peer; and
# pcap2flow's peak RSS at both sizes (it should not grow with the file).
#   BENCH_MB=200  BENCH_FLOWS=1000 (concurrent)  BENCH_SEED=1  BENCH_RUNS=3
#   BENCH_KEEP=1 keeps the files in $TMPDIR
set -u -o pipefail

MB=${BENCH_MB:-200}
FLOWS=${BENCH_FLOWS:-1000}
SEED=${BENCH_SEED:-1}
RUNS=${BENCH_RUNS:-3}
for tool in mkpcap readloop pcap2flow flow2tok tok2pcap; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not on PATH (run through make bench)" >&2; exit 69; }
done
[ -x /usr/bin/time ] || { echo "bench: GNU time missing (make deps installs package time)" >&2; exit 69; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tgpt-bench.XXXXXX") || exit 73
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: files kept in $DIR"; else trap 'rm -rf "$DIR"' EXIT; fi
BIG=$DIR/bulk-$MB.pcap
HALF=$DIR/bulk-$((MB / 2)).pcap
TOK=$DIR/tokens.mp

# Nanoseconds of one run of a shell command line (output discarded by it).
run_ns() {
	local t0 t1
	t0=$(date +%s%N)
	bash -o pipefail -c "$1" || { echo "bench: failed: $1" >&2; return 1; }
	t1=$(date +%s%N)
	echo $((t1 - t0))
}

# Nanoseconds of the fastest of RUNS runs.
best_ns() {
	local best='' t i
	for ((i = 0; i < RUNS; i++)); do
		t=$(run_ns "$1") || return 1
		if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
	done
	echo "$best"
}

# Peak resident set of a command line, in kilobytes.
peak_kb() {
	/usr/bin/time -f %M -o "$DIR/rss" bash -c "$1" || return 1
	tail -1 "$DIR/rss"
}

size_of() { stat -c %s "$1"; }

# A table row: NAME NANOSECONDS PACKETS BYTES
row() {
	awk -v name="$1" -v ns="$2" -v pk="$3" -v by="$4" 'BEGIN {
		s = ns / 1e9
		printf "  %-28s %9.3f %14.0f %10.1f\n", name, s, pk / s, by / 1e6 / s }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

echo "bench: making $MB MB and $((MB / 2)) MB captures of ~$FLOWS concurrent TCP flows (seed $SEED) in $DIR"
gen_ns=$(run_ns "mkpcap bulk --mb $MB --flows $FLOWS --seed $SEED -w '$BIG'") || exit 1
mkpcap bulk --mb $((MB / 2)) --flows "$FLOWS" --seed "$SEED" -w "$HALF" || exit 1
bytes=$(size_of "$BIG")
packets=$(readloop "$BIG" | sed 's/^packets \([0-9]*\),.*/\1/')
echo "bench: mkpcap wrote $bytes bytes, $packets packets in $(awk -v n="$gen_ns" 'BEGIN { printf "%.2f", n / 1e9 }') s"
pcap2flow -q "$BIG" | flow2tok -q >"$TOK" || { echo "bench: pcap2flow | flow2tok failed" >&2; exit 1; }
echo "bench: token stream $(size_of "$TOK") bytes"

read_ns=$(best_ns "readloop '$BIG' >/dev/null") || exit 1
flow_ns=$(best_ns "pcap2flow -q '$BIG' >/dev/null") || exit 1
tok_ns=$(best_ns "pcap2flow -q '$BIG' | flow2tok -q >/dev/null") || exit 1
back_ns=$(best_ns "tok2pcap -q '$TOK' >/dev/null") || exit 1
shark_ns=''
if command -v tshark >/dev/null; then
	conversations=$(tshark -r "$BIG" -q -z conv,tcp 2>/dev/null | grep -c '<->')
	echo "bench: tshark counts $conversations TCP conversations"
	shark_ns=$(best_ns "tshark -r '$BIG' -q -z conv,tcp >/dev/null 2>&1") || exit 1
fi

echo
echo "best of $RUNS runs on the $MB MB capture (MB/s of capture bytes):"
printf '  %-28s %9s %14s %10s\n' step seconds packets/s MB/s
row "readloop (libpcap only)" "$read_ns" "$packets" "$bytes"
row "pcap2flow" "$flow_ns" "$packets" "$bytes"
row "pcap2flow | flow2tok" "$tok_ns" "$packets" "$bytes"
row "tok2pcap (tokens to pcap)" "$back_ns" "$packets" "$bytes"
[ -z "$shark_ns" ] || row "tshark -q -z conv,tcp" "$shark_ns" "$packets" "$bytes"
ratios="ratios: pcap2flow takes $(ratio "$flow_ns" "$read_ns")x the time of readloop"
[ -z "$shark_ns" ] || ratios+="; tshark takes $(ratio "$shark_ns" "$flow_ns")x the time of pcap2flow"
echo "$ratios"

rss_half=$(peak_kb "pcap2flow -q '$HALF' >/dev/null") || exit 1
rss_big=$(peak_kb "pcap2flow -q '$BIG' >/dev/null") || exit 1
echo "peak RSS of pcap2flow: $((rss_half / 1024)) MB on $((MB / 2)) MB, $((rss_big / 1024)) MB on $MB MB" \
	"(ratio $(ratio "$rss_big" "$rss_half"))"
