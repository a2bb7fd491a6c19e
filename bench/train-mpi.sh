#!/usr/bin/env bash
# train-mpi.sh: data-parallel scaling of tgpt-train over MPI ranks on this
# machine (make bench BENCH=train-mpi): tokens/s of the small preset on
# random tokens with one process and one thread, against 2 ranks of one
# thread each (the same global batch, split over the ranks), and one process
# with 2 threads for comparison. Best of BENCH_RUNS runs each.
#   BENCH_RUNS=3  BENCH_MPI_STEPS=8  BENCH_MPI_CONTEXT=1024  BENCH_MPI_BATCH=4
set -u -o pipefail

TOP=${TGPT_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
RUNS=${BENCH_RUNS:-3}
STEPS=${BENCH_MPI_STEPS:-8}
CONTEXT=${BENCH_MPI_CONTEXT:-1024}
BATCH=${BENCH_MPI_BATCH:-4}
TRAIN=$(dirname "${TGPT_BENCHBIN:-$TOP/build/bench}")/mpi/tgpt-train
[ -x "$TRAIN" ] && command -v mpirun >/dev/null || { echo "bench: skipped: no $TRAIN or mpirun (make deps installs Open MPI)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tgpt-mpi-bench.XXXXXX") || exit 73
trap 'rm -rf "$DIR"' EXIT
ARGS=(-q --preset small --context "$CONTEXT" --batch "$BATCH" --steps "$STEPS" --random-data
	--ckpt-every 0 -o "$DIR/m.ckpt")

# tokens/s of one run: the last stderr line of rank 0, "tokens/s: X".
rate() { "$@" 2>&1 >/dev/null | sed -n 's/^tokens\/s: //p' | tail -1; }
best() {
	local b=0 r i
	for ((i = 0; i < RUNS; i++)); do
		r=$(rate "$@")
		[ -n "$r" ] || { echo "bench: failed: $*" >&2; return 1; }
		b=$(awk -v a="$b" -v r="$r" 'BEGIN { print (r > a ? r : a) }')
	done
	echo "$b"
}

one=$(best "$TRAIN" -j 1 "${ARGS[@]}") || exit 1
two=$(best mpirun --oversubscribe --bind-to none -np 2 "$TRAIN" -j 1 "${ARGS[@]}") || exit 1
thr=$(best "$TRAIN" -j 2 "${ARGS[@]}") || exit 1
printf 'tgpt-train over MPI, small preset, context %s, global batch %s, best of %s:\n' "$CONTEXT" "$BATCH" "$RUNS"
printf '  1 process, 1 thread      %10.1f tokens/s\n' "$one"
printf '  2 ranks, 1 thread each   %10.1f tokens/s  (%.2fx the single process)\n' "$two" \
	"$(awk -v a="$two" -v b="$one" 'BEGIN { print a / b }')"
printf '  1 process, 2 threads     %10.1f tokens/s  (%.2fx)\n' "$thr" \
	"$(awk -v a="$thr" -v b="$one" 'BEGIN { print a / b }')"
