#!/usr/bin/env bash
# train.sh: the training benchmark behind `make bench` (issue "tgpt-train and
# tokshard"): tokens/s and peak RSS of tgpt-train's bench preset against the
# PyTorch peer (../shared/peers/torch_lingpt.py, the same model), both on the
# same threads in the same run, at several contexts; tgpt alone at a context
# past the peer's learned position table; and the trainer's achieved GFLOP/s
# over BLIS's own sgemm rate (build/bench/sgemm-rate).
#   BENCH_TRAIN_CONTEXTS="1024 3072 12032"  BENCH_TRAIN_LONG=32768 (tgpt only; 0: none)
#   BENCH_TRAIN_STEPS=3  BENCH_THREADS=2  BENCH_TRAIN_RUNS=1 (best tokens/s of n)
#   BENCH_PEER=path of torch_lingpt.py  BENCH_QUIET_WAIT=60 (seconds to wait for
#   a quiet machine before each run)  BENCH_KEEP=1 keeps the logs in $TMPDIR
# The peer's median step is of the steps after a warm-up one; tgpt-train's
# tokens/s line leaves its first step out in the same way. Both train on one
# sequence per step (tgpt-train --batch 1, the peer's default).
set -u -o pipefail

TOP=${TGPT_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
. "$TOP/bench/lib.bash"
read -r -a CONTEXTS <<<"${BENCH_TRAIN_CONTEXTS:-1024 3072 12032}"
LONG=${BENCH_TRAIN_LONG:-32768}
STEPS=${BENCH_TRAIN_STEPS:-3}
THREADS=${BENCH_THREADS:-2}
RUNS=${BENCH_TRAIN_RUNS:-1}
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
PEER=${BENCH_PEER:-$TOP/../shared/peers/torch_lingpt.py}
PYTHON=/usr/bin/python3
BLIS_OMP=/usr/lib/x86_64-linux-gnu/blis-openmp	# the peer's fastest BLAS (its README)
SGEMM=${TGPT_BENCHBIN:-$TOP/build/bench}/sgemm-rate
PRESET_CTX=12032	# the bench preset's learned position table; past it: --pos axial
GOAL_T=12032	# the context the goals are stated at

command -v tgpt-train >/dev/null || { echo "bench: tgpt-train not on PATH (run through make bench)" >&2; exit 69; }
[ -x /usr/bin/time ] || { echo "bench: GNU time missing (make deps installs package time)" >&2; exit 69; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tgpt-train-bench.XXXXXX") || exit 73
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: logs kept in $DIR"; else trap 'rm -rf "$DIR"' EXIT; fi

# ------------------------------------------------------------ the FLOP count
# Multiply-adds (2 FLOP each) of every product of one training step of the
# bench model on one sequence of T tokens, as tools/tgpt computes it (the
# same count as its mm_flops counter; 254.7 GFLOP at T = 12,032):
# - per layer and token, the linear layers' forward products: qkv D x 3HD,
#   the output projection HD x D, the feed-forward D x F and F x D; and the
#   vocabulary head D x V once. Their backward is two products of the same
#   size each (input and weight gradients; the first layer's input gradient
#   feeds the embeddings), so the step is 3 times the forward.
# - per layer, head and chunk of n tokens (chunked causal linear attention,
#   chunk C): forward 4 products (scores q.k^T, scores.v, q.S, S += k^T.v),
#   backward 10 (scores again, dA, dA.k, dnum.S^T, dA^T.q, A^T.dnum, S += k^T.v,
#   v.M^T, k.M, M += q^T.dnum): 7 of n x n x dh and 7 of n x dh x dh.
# Elementwise work (LayerNorm, GELU, softmax, AdamW) is not counted.
D=256 L=4 H=4 DH=64 F=1024 V=300 C=64	# model_config_bench() in tools/tgpt/model.c
step_flop() {
	awk -v T="$1" -v D=$D -v L=$L -v H=$H -v dh=$DH -v F=$F -v V=$V -v C=$C 'BEGIN {
		dense = 3 * T * (L * 2 * (D * 3 * H * dh + H * dh * D + 2 * D * F) + 2 * D * V)
		attn = 0
		for (c0 = 0; c0 < T; c0 += C) {
			n = T - c0 < C ? T - c0 : C
			attn += 7 * 2 * n * n * dh + 7 * 2 * n * dh * dh
		}
		printf "%.0f\n", dense + L * H * attn }'
}

# ------------------------------------------------------------ helpers
# Jiffies the machine's CPUs spent busy since boot.
busy_jiffies() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

NPROC=$(nproc)
HZ=$(getconf CLK_TCK)
NOISE=10	# percent of the CPUs other processes may take during a run
# One measured run: NAME then the command; its stdout and stderr go to
# $DIR/NAME.out and .err. Sets RSS_KB (peak) and OTHERS, the percent of the
# machine's CPU time that other processes took while it ran (the CPUs' busy
# time less the run's own user and system time).
measure() {
	local name=$1 busy b0 b1
	shift
	busy=$(wait_quiet)
	[ "$busy" -lt 25 ] || echo "bench: warning: the machine was $busy % busy before $name" >&2
	b0=$(busy_jiffies)
	if ! /usr/bin/time -f '%M %e %U %S' -o "$DIR/$name.time" "$@" >"$DIR/$name.out" 2>"$DIR/$name.err"; then
		echo "bench: failed: $*" >&2
		sed 's/^/  | /' "$DIR/$name.err" | tail -5 >&2
		return 1
	fi
	b1=$(busy_jiffies)
	read -r RSS_KB OTHERS < <(tail -1 "$DIR/$name.time" | awk -v b="$((b1 - b0))" -v hz="$HZ" \
		-v np="$NPROC" '{ o = b / hz - $3 - $4; if (o < 0) o = 0
			printf "%s %.0f\n", $1, ($2 > 0) ? 100 * o / (np * $2) : 0 }')
	[ "$OTHERS" -le "$NOISE" ] ||
		echo "bench: warning: other processes took $OTHERS % of the CPUs during $name" >&2
}

# Best tokens/s of RUNS runs: NAME, a sed script that finds the tokens/s in
# the run's OUTPUT (out or err), then the command. Sets TOKS, OTHERS (of the
# best run) and RSS_KB (the largest).
best_of_runs() {
	local name=$1 find=$2 output=$3 r tok best='' oth='' rss=''
	shift 3
	for ((r = 0; r < RUNS; r++)); do
		measure "$name-$r" "$@" || return 1
		tok=$(sed -n "$find" "$DIR/$name-$r.$output" | tail -1)
		[ -n "$tok" ] || { echo "bench: no tokens/s in the $output of $name" >&2; return 1; }
		if [ -z "$best" ] || awk -v a="$tok" -v b="$best" 'BEGIN { exit !(a + 0 > b + 0) }'; then
			best=$tok oth=$OTHERS
		fi
		[ -n "$rss" ] && [ "$rss" -ge "$RSS_KB" ] || rss=$RSS_KB
	done
	TOKS=$best OTHERS=$oth RSS_KB=$rss
}

# tgpt-train at context T (its last stderr line is "tokens/s: X").
run_tgpt() {
	local T=$1
	local -a pos=()
	[ "$T" -le "$PRESET_CTX" ] || pos=(--pos axial)
	best_of_runs "tgpt-$T" 's/^tokens\/s: \([0-9.]*\)$/\1/p' err \
		tgpt-train --preset bench "${pos[@]}" --random-data --context "$T" \
		--batch 1 --steps "$STEPS" -j "$THREADS" -q
}

# The peer at context T (tok_per_s in its JSON line).
run_peer() {
	local T=$1
	local -a env=()
	[ ! -d "$BLIS_OMP" ] || env=(env LD_LIBRARY_PATH="$BLIS_OMP")
	best_of_runs "peer-$T" 's/.*"tok_per_s": *\([0-9.]*\).*/\1/p' out \
		"${env[@]}" "$PYTHON" "$PEER" train lin_chunk "$T" --threads "$THREADS" --steps "$STEPS"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
# ------------------------------------------------------------ the runs
echo "== training: tgpt-train --preset bench vs the PyTorch peer, $THREADS threads, $STEPS steps =="
echo "bench: $(uptime | sed 's/^ *//')"
echo "bench: $(nproc) processors; $(tgpt-train -V 2>&1 | head -1)"
PEER_OK=1
if [ ! -f "$PEER" ]; then
	PEER_OK=0 PEER_WHY="peer script $PEER absent (set BENCH_PEER=)"
elif ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	PEER_OK=0 PEER_WHY="python3-torch absent (make deps-bench installs it)"
fi
if [ "$PEER_OK" = 1 ]; then
	echo "bench: peer $PEER train lin_chunk, torch $("$PYTHON" -c 'import torch; print(torch.__version__)')" \
		"$([ -d "$BLIS_OMP" ] && echo "with BLIS ($BLIS_OMP)" || echo "with its default BLAS (BLIS absent)")"
else
	echo "bench: $PEER_WHY: peer columns skipped"
fi

declare -A TG_TOK TG_RSS PE_TOK PE_RSS MARK
NOISY=0
ALL_T=("${CONTEXTS[@]}")
[ "$LONG" = 0 ] || ALL_T+=("$LONG")
for T in "${ALL_T[@]}"; do
	who="tgpt-train"
	[ "$T" -le "$PRESET_CTX" ] || who+=" --pos axial (past the learned table of $PRESET_CTX)"
	[ "$PEER_OK" = 0 ] || [ "$T" -gt "$PRESET_CTX" ] || who+=", then the peer"
	echo "bench: context $T: $who"
	run_tgpt "$T" || exit 1
	TG_TOK[$T]=$TOKS TG_RSS[$T]=$RSS_KB MARK[$T]=''
	[ "$OTHERS" -le "$NOISE" ] || MARK[$T]='*' NOISY=1
	if [ "$PEER_OK" = 1 ] && [ "$T" -le "$PRESET_CTX" ]; then
		run_peer "$T" || exit 1
		PE_TOK[$T]=$TOKS PE_RSS[$T]=$RSS_KB
		[ "$OTHERS" -le "$NOISE" ] || MARK[$T]='*' NOISY=1
	fi
done

# ------------------------------------------------------------ the table
echo
echo "== training tokens/s and peak RSS (best tokens/s of $RUNS run(s); RSS by /usr/bin/time -f %M) =="
printf '  %7s %12s %12s %7s %12s %12s %7s\n' T "tgpt tok/s" "peer tok/s" ratio "tgpt RSS MB" "peer RSS MB" ratio
for T in "${ALL_T[@]}"; do
	if [ -n "${PE_TOK[$T]:-}" ]; then
		printf '  %7s %12s %12s %7s %12s %12s %7s\n' "${MARK[$T]}$T" "${TG_TOK[$T]}" "${PE_TOK[$T]}" \
			"$(ratio "${TG_TOK[$T]}" "${PE_TOK[$T]}")" "$(mb "${TG_RSS[$T]}")" \
			"$(mb "${PE_RSS[$T]}")" "$(ratio "${TG_RSS[$T]}" "${PE_RSS[$T]}")"
	else
		printf '  %7s %12s %12s %7s %12s %12s %7s%s\n' "${MARK[$T]}$T" "${TG_TOK[$T]}" - - \
			"$(mb "${TG_RSS[$T]}")" - - \
			"$([ "$T" -gt "$PRESET_CTX" ] && echo "   (tgpt --pos axial; the peer's positions stop at $PRESET_CTX)")"
	fi
done
[ "$PEER_OK" = 1 ] || echo "  (peer columns skipped: $PEER_WHY)"
[ "$NOISY" = 0 ] || echo "  * other processes took more than $NOISE % of the CPUs during a run of this row:" \
	"repeat it when the machine is quiet (BENCH_TRAIN_CONTEXTS=T BENCH_TRAIN_RUNS=3)"

echo
echo "== goals =="
[ -z "${MARK[$GOAL_T]:-}" ] || echo "  (the $GOAL_T row was measured on a busy machine: these verdicts are not to be trusted)"
if [ -n "${PE_TOK[$GOAL_T]:-}" ]; then
	r=$(ratio "${TG_TOK[$GOAL_T]}" "${PE_TOK[$GOAL_T]}")
	echo "  tokens/s at $GOAL_T: tgpt / peer = $r (goal >= 1.5): $(verdict "$r" ge 1.5)"
	r=$(ratio "${TG_RSS[$GOAL_T]}" "${PE_RSS[$GOAL_T]}")
	echo "  peak RSS at $GOAL_T: tgpt / peer = $r (goal <= 0.5): $(verdict "$r" le 0.5)"
else
	echo "  tokens/s and RSS against the peer at $GOAL_T: not measured"
fi
if [ -n "${TG_RSS[$GOAL_T]:-}" ] && [ -n "${TG_RSS[3072]:-}" ]; then
	r=$(ratio "${TG_RSS[$GOAL_T]}" "${TG_RSS[3072]}")
	echo "  linearity: tgpt RSS at $GOAL_T / at 3072 = $r (contexts $(ratio "$GOAL_T" 3072)x;" \
		"goal <= 4.5): $(verdict "$r" le 4.5)"
fi
if [ -n "${TG_RSS[$LONG]:-}" ] && [ "$LONG" != 0 ]; then
	echo "  tgpt at $LONG (--pos axial): $(mb "${TG_RSS[$LONG]}") MB, ${TG_TOK[$LONG]} tokens/s"
fi

echo
echo "== training step GFLOP/s against BLIS's sgemm rate =="
if [ -x "$SGEMM" ]; then
	busy=$(wait_quiet)
	[ "$busy" -lt 25 ] || echo "bench: warning: the machine was $busy % busy before sgemm-rate" >&2
	line=$("$SGEMM" -j "$THREADS" -r 10) || { echo "bench: $SGEMM failed" >&2; exit 1; }
	echo "  $line"
	PEAK=$(sed -n 's/.*best \([0-9.]*\) GFLOP\/s.*/\1/p' <<<"$line")
	printf '  %7s %12s %10s %10s %10s\n' T "GFLOP/step" "step s" "GFLOP/s" "of sgemm"
	for T in "${ALL_T[@]}"; do
		awk -v T="$T" -v mark="${MARK[$T]}" -v f="$(step_flop "$T")" -v tok="${TG_TOK[$T]}" \
			-v peak="$PEAK" 'BEGIN { s = T / tok; g = f / s / 1e9
			printf "  %7s %12.1f %10.3f %10.1f %9.0f %%\n", mark T, f / 1e9, s, g, 100 * g / peak }'
	done
	if [ -n "${TG_TOK[$GOAL_T]:-}" ]; then
		pct=$(awk -v f="$(step_flop "$GOAL_T")" -v tok="${TG_TOK[$GOAL_T]}" -v T="$GOAL_T" -v peak="$PEAK" \
			'BEGIN { printf "%.0f", 100 * f * tok / T / 1e9 / peak }')
		echo "  achieved / sgemm at $GOAL_T: $pct % (goal >= 50 %): $(verdict "$pct" ge 50)"
	fi
else
	echo "  $SGEMM not built (make build/bench/sgemm-rate): skipped"
fi
