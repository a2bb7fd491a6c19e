#!/usr/bin/env bash
# infer.sh: tgpt-infer's benchmark behind `make bench`: classify flows/s
# with a classifier of window W = 256 and W = 4,096 tokens (the paper's
# fine-tuning window, and a long one), and generate tokens/s, on synthetic
# long TCP flows (mkpcap bulk) labelled by capture. The models are trained
# for a few steps only: their speed does not depend on what they learned
# (but generation's rewinds do, so its tokens/s counts every sampled token).
# Generation under the decoding grammar and with --raw, tokens/s of each.
# Then the generation step of the bench preset (build/bench/gen-step, one
# stream, every weight precision) at positions 100 and 10,000 against the
# PyTorch peer's recurrent generation (torch_lingpt.py gen lin_chunk 1), in
# the same run, best of BENCH_GEN_RUNS, with the goals of issue 5.
#   BENCH_INFER_PRESET=tiny (or small)  BENCH_THREADS=2  BENCH_INFER_MB=4
#   BENCH_GEN_FLOWS=32  BENCH_GEN_TOKENS=2048 (--max-tokens)  BENCH_KEEP=1
#   BENCH_GEN_RUNS=3  BENCH_GEN_PRECISIONS="f32 f16 int8"  BENCH_QUIET_WAIT=60
#   BENCH_PEER=path of torch_lingpt.py
set -u -o pipefail
TOP=${TGPT_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
. "$TOP/bench/lib.bash"
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}

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
# The decoding grammar (the default) against free sampling (--raw), best
# of BENCH_GEN_RUNS alternating runs each, 4 x BENCH_GEN_FLOWS flows (so
# that the last flows, running with fewer streams beside them, weigh
# little: the grammar's flows end at lengths of their own, the raw ones
# of this model at --max-tokens): tokens/s counts the tokens the flows
# received, drawn or forced (the raw side's rewound ones included; its
# flows may hold no valid packet, exit 65, from a model trained this
# little).
declare -A GEN_BEST
for ((run = 1; run <= ${BENCH_GEN_RUNS:-3}; run++)); do
	for P in int8 f32; do
		for mode in grammar raw; do
			wait_quiet >/dev/null
			tgpt-infer generate -n $((4 * GEN_FLOWS)) --max-tokens "$GEN_TOKENS" -j "$THREADS" \
				--precision $P $([ $mode = raw ] && echo --raw) -o gen.tok gen.ckpt 2> gen.err ||
				[ $? = 65 ] || { cat gen.err >&2; exit 1; }
			tps=$(awk '$1 == "tokens/s:" { print $2 }' gen.err)
			GEN_BEST[$P,$mode]=$(awk -v a="${GEN_BEST[$P,$mode]:-}" -v b="$tps" \
				'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }')
			[ "$run" = 1 ] && echo "generate --precision $P, $mode: $(tail -1 gen.err) ($((4 * GEN_FLOWS))" \
				"flows of at most $GEN_TOKENS tokens, $(sed -n 's/^rewinds: //p' gen.err) rewinds$(
				sed -n 's/^grammar: \([0-9]*\) tokens forced.*/, \1 forced/p' gen.err))"
		done
	done
done
echo "generate, best of ${BENCH_GEN_RUNS:-3} runs (tokens/s):"
for P in int8 f32; do
	r=$(ratio "${GEN_BEST[$P,grammar]}" "${GEN_BEST[$P,raw]}")
	echo "  --precision $P: grammar ${GEN_BEST[$P,grammar]}, raw ${GEN_BEST[$P,raw]}: grammar / raw" \
		"= $r (goal >= 0.90): $(verdict "$r" ge 0.90)"
done

# ------------------------------------------------------------ the generation step vs the peer
GEN_STEP=${TGPT_BENCHBIN:-$TOP/build/bench}/gen-step
PEER=${BENCH_PEER:-$TOP/../shared/peers/torch_lingpt.py}
PYTHON=/usr/bin/python3
BLIS_OMP=/usr/lib/x86_64-linux-gnu/blis-openmp	# the peer's fastest BLAS (its README)
RUNS=${BENCH_GEN_RUNS:-3}
read -r -a PRECISIONS <<<"${BENCH_GEN_PRECISIONS:-f32 f16 int8}"
GOAL_PRECISION=int8	# tgpt-infer generate's default
echo
echo "== generation step: gen-step (bench preset, 1 stream, $THREADS threads) vs the peer =="
if [ ! -x "$GEN_STEP" ]; then
	echo "bench: $GEN_STEP not built (make build/bench/gen-step): skipped"
	exit 0
fi
PEER_OK=1
if [ ! -f "$PEER" ]; then
	PEER_OK=0 PEER_WHY="peer script $PEER absent (set BENCH_PEER=)"
elif ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	PEER_OK=0 PEER_WHY="python3-torch absent (make deps-bench installs it)"
fi
[ "$PEER_OK" = 1 ] || echo "bench: $PEER_WHY: the peer is skipped"
peer_env=()
[ ! -d "$BLIS_OMP" ] || peer_env=(env LD_LIBRARY_PATH="$BLIS_OMP")
# max A B: the larger number.
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }'; }
declare -A BEST SPREAD WORST
BUSY_MAX=0
for ((run = 1; run <= RUNS; run++)); do
	for P in "${PRECISIONS[@]}"; do
		busy=$(wait_quiet)
		[ "$busy" -le "$BUSY_MAX" ] || BUSY_MAX=$busy
		"$GEN_STEP" -P "$P" -j "$THREADS" -n 256 -r 5 100 10000 > step.json ||
			{ echo "bench: gen-step -P $P failed" >&2; exit 1; }
		while read -r pos tps; do
			BEST[$P,$pos]=$(max "${BEST[$P,$pos]:-}" "$tps")
		done < <(sed -n 's/.*"pos":\([0-9]*\),.*"tok_per_s":\([0-9.]*\),.*/\1 \2/p' step.json)
	done
	if [ "$PEER_OK" = 1 ]; then
		busy=$(wait_quiet)
		[ "$busy" -le "$BUSY_MAX" ] || BUSY_MAX=$busy
		"${peer_env[@]}" "$PYTHON" "$PEER" gen lin_chunk 1 --threads "$THREADS" --gen_tokens 256 \
			> peer.json || { echo "bench: the peer failed" >&2; exit 1; }
		BEST[peer]=$(max "${BEST[peer]:-}" \
			"$(sed -n 's/.*"tok_per_s": *\([0-9.]*\).*/\1/p' peer.json)")
	fi
done
[ "$BUSY_MAX" -lt 25 ] || echo "bench: warning: the machine was up to $BUSY_MAX % busy before a run"
echo "tokens/s (median of 5 x 256 tokens a run, best of $RUNS runs; the peer: median of 5 x 256):"
printf '  %-9s %12s %12s %8s %14s\n' weights "pos 100" "pos 10000" spread "/ peer (worst)"
for P in "${PRECISIONS[@]}"; do
	a=${BEST[$P,100]} b=${BEST[$P,10000]}
	spread=$(awk -v a="$a" -v b="$b" 'BEGIN { d = a > b ? a - b : b - a
		printf "%.1f", 100 * d / (a > b ? a : b) }')
	worst=$(awk -v a="$a" -v b="$b" 'BEGIN { print a < b ? a : b }')
	printf '  %-9s %12s %12s %7s%% %14s\n' "$P" "$a" "$b" "$spread" \
		"$([ "$PEER_OK" = 1 ] && ratio "$worst" "${BEST[peer]}" || echo -)"
	SPREAD[$P]=$spread WORST[$P]=$worst
done
[ "$PEER_OK" = 0 ] || printf '  %-9s %12s\n' peer "${BEST[peer]}"
if [ -n "${SPREAD[$GOAL_PRECISION]:-}" ]; then
	echo "goals ($GOAL_PRECISION, tgpt-infer generate's default):"
	[ "$PEER_OK" = 0 ] || { r=$(ratio "${WORST[$GOAL_PRECISION]}" "${BEST[peer]}")
		echo "  tokens/s / peer's = $r (goal >= 10): $(verdict "$r" ge 10)"; }
	echo "  positions 100 and 10,000 apart by ${SPREAD[$GOAL_PRECISION]} % (goal <= 10):" \
		"$(verdict "${SPREAD[$GOAL_PRECISION]}" le 10)"
fi
