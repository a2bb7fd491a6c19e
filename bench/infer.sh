#!/usr/bin/env bash
# infer.sh: tgpt-infer's benchmark behind `make bench`: classify flows/s
# with a classifier of window W = 256 and W = 4,096 tokens (the paper's
# fine-tuning window, and a long one), and generate tokens/s, on synthetic
# long TCP flows (mkpcap bulk) labelled by capture. The models are trained
# for a few steps only: their speed does not depend on what they learned
# (but generation's rewinds do, so its tokens/s counts every sampled token).
#   BENCH_INFER_PRESET=tiny (or small)  BENCH_THREADS=2  BENCH_INFER_MB=4
#   BENCH_GEN_FLOWS=32  BENCH_GEN_TOKENS=2048 (--max-tokens)  BENCH_KEEP=1
set -u -o pipefail

PRESET=${BENCH_INFER_PRESET:-tiny}
THREADS=${BENCH_THREADS:-2}
MB=${BENCH_INFER_MB:-4}
GEN_FLOWS=${BENCH_GEN_FLOWS:-32}
GEN_TOKENS=${BENCH_GEN_TOKENS:-2048}
for tool in mkpcap mpdump pcap2flow flow2tok tokshard tgpt-train tgpt-infer; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not on PATH (run through make bench)" >&2; exit 69; }
done
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tgpt-infer-bench.XXXXXX") || exit 73
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: files kept in $DIR"; else trap 'rm -rf "$DIR"' EXIT; fi
cd "$DIR" || exit 1

# Two captures of ~MB megabytes of about 16 concurrent TCP flows each,
# labelled a and b: about 110 flows a capture, three quarters of them
# longer than 4,096 tokens.
for s in 1 2; do
	mkpcap bulk --mb "$MB" --flows 16 --seed $s -w b$s.pcap &&
		pcap2flow -q b$s.pcap | flow2tok -q -l "l$s" > b$s.tok || exit 1
done
cat b1.tok b2.tok > flows.tok
tokshard -q -o sh --split 1/0/0 --context 12032 flows.tok 2>/dev/null || exit 1
# tokens per flow (the hex of "tokens" holds 4 digits a token)
lengths=$(mpdump < flows.tok | grep -o '"tokens":"0x[0-9a-f]*' |
	awk '{ print (length($0) - 12) / 4 }')
echo "preset $PRESET, $THREADS threads, $(echo "$lengths" | wc -l) flows"

for W in 256 4096; do
	tgpt-train -q --labels --preset "$PRESET" --window-tokens $W --steps 2 --batch 2 \
		-j "$THREADS" -o clf$W.ckpt sh 2>/dev/null ||
		{ echo "bench: tgpt-train --labels failed" >&2; exit 1; }
	tgpt-infer classify -q -j "$THREADS" -o /dev/null clf$W.ckpt flows.tok 2> c$W.err ||
		{ cat c$W.err >&2; exit 1; }
	fps=$(awk '$1 == "flows/s:" { print $2 }' c$W.err)
	mean=$(echo "$lengths" | awk -v W=$W '{ s += $1 < W ? $1 : W } END { printf "%.0f", s / NR }')
	echo "classify W=$W: flows/s: $fps (mean input $mean tokens + CLS;" \
		"$(awk -v f="$fps" -v m="$mean" 'BEGIN { printf "%.0f", f * (m + 1) }') tokens/s)"
done

tgpt-train -q --preset "$PRESET" --context 1024 --batch 2 --steps 20 -j "$THREADS" \
	-o gen.ckpt sh 2>/dev/null ||
	{ echo "bench: tgpt-train failed" >&2; exit 1; }
tgpt-infer generate -n "$GEN_FLOWS" --max-tokens "$GEN_TOKENS" -j "$THREADS" -o gen.tok gen.ckpt \
	2> gen.err || { cat gen.err >&2; exit 1; }
echo "generate: $(tail -1 gen.err) ($GEN_FLOWS flows of at most $GEN_TOKENS tokens," \
	"$(sed -n 's/^rewinds: //p' gen.err) rewinds)"
