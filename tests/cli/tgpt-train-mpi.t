#!/usr/bin/env bash
# tgpt-train-mpi.t: data-parallel tgpt-train over MPI (build/mpi/tgpt-train,
# which make check builds when mpicc exists), 2 ranks on this machine: with
# half the batch each they give the first-step gradient, the 20-step loss
# curve, the validation loss and the final parameters of 1 rank with the
# whole batch (within stated tolerances), for pre-training and a classifier;
# the gradient of half the batch alone (a rank without the reduction) is
# far outside them. One rank gives the plain build's bits; rank 0 alone
# writes; a resumed 2-rank run is exact; a signal to one rank stops all
# after the same step; what is refused; pipelines/train-mpi. Under make
# SAN=1, Open MPI's own allocations are not reported as leaks
# (tests/lsan-mpi.supp); tgpt-train's would be.
. "$TGPT_TOP/tests/lib.sh"

MPI_TRAIN=$TGPT_TESTBIN/../mpi/tgpt-train
skip_all() { echo "1..0 # skip $*"; exit 0; }
command -v mpirun >/dev/null || skip_all "no mpirun (make deps installs Open MPI: openmpi-bin)"
[ -x "$MPI_TRAIN" ] || skip_all "no $MPI_TRAIN: make check builds it when mpicc exists" \
	"(make deps installs Open MPI: libopenmpi-dev)"
need_tools tgpt-train tokshard pcap2flow flow2tok mkpcap

# Open MPI runs as root only when told; the ranks inherit the environment.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export LSAN_OPTIONS="suppressions=$TGPT_TOP/tests/lsan-mpi.supp:fast_unwind_on_malloc=0"
# N ranks of the MPI build on this machine (more ranks than cores allowed).
mpi() { local n=$1; shift; mpirun --oversubscribe --bind-to none -np "$n" "$MPI_TRAIN" "$@"; }

# The float32 values of a checkpoint section, one a line (offset and size
# from --info).
floats() {
	local off size
	read -r off size < <(tgpt-train --info "$1" | awk -v s="$2" '$1 == "section" && $2 == s { print $6, $8 }')
	od -An -v -f -w4 -j "$off" -N "$size" "$1"
}
# Compares two lists of numbers (files, one a line): "maxabs maxref maxrel",
# the largest |a - b|, the largest |a|, and the largest |a - b| / |a| over
# the values with |a| above 1e-3 of the largest.
compare() {
	paste "$1" "$2" | awk '
		{ a[NR] = $1; d[NR] = $1 - $2; if (d[NR] < 0) d[NR] = -d[NR]
		  m = $1 < 0 ? -$1 : $1; if (m > ref) ref = m; if (d[NR] > dmax) dmax = d[NR] }
		END { for (i = 1; i <= NR; i++) { m = a[i] < 0 ? -a[i] : a[i]
		        if (m > 1e-3 * ref && d[i] / m > rmax) rmax = d[i] / m }
		      printf "%g %g %g\n", dmax, ref, rmax }'
}
# within "maxabs maxref maxrel" ABS REL: maxabs <= ABS * maxref, maxrel <= REL
within() { awk -v a="$2" -v r="$3" '{ exit !($1 <= a * $2 && $3 <= r && NF == 3) }' <<<"$1"; }
# A column of a metrics file (no header).
column() { awk -F'\t' -v c="$2" 'NR > 1 { print $c }' "$1"; }
# The step a checkpoint holds (--info).
ckpt_step() { tgpt-train --info "$1" | sed -n 's/^step //p'; }

# Four real flows (179 to 375 tokens) packed into sequences of 512: the rows
# of a batch hold different numbers of targets, so a rank's loss must be
# weighed by its share of them. sv/: 3 flows to train on, 1 to validate.
mkpcap tcp -w tcp.pcap && mkpcap udp -w udp.pcap || { echo "Bail out! mkpcap"; exit 1; }
for k in tcp udp; do pcap2flow -q $k.pcap | flow2tok -q > $k.tok; done
cat tcp.tok udp.tok | tokshard -q -o all --split 1/0/0 --group flow --context 1024 2>/dev/null
cat tcp.tok udp.tok | tokshard -q -o sv --split 3/1/0 --group flow --context 1024 2>/dev/null
[ -s all/train.shard ] && [ -s sv/val.shard ] || { echo "Bail out! tokshard"; exit 1; }
TINY=(--preset tiny --context 512 -j 1 --batch 4)
# One step whose AdamW first moment is the gradient itself (beta1 0), not
# clipped, learning rate 0 (min-lr lr/10 at the only step).
GRAD=("${TINY[@]}" --steps 1 --warmup 0 --lr 0 --beta1 0 --clip 0)

# ------------------------------------------------------------ refusals
exits_with 0 "the MPI build's --version" "$MPI_TRAIN" --version
like out 'MPI' "names the MPI library"
exits_with 0 "the plain build's" tgpt-train --version
ok "names none" bash -c "! grep -q MPI out"
exits_with 64 "a batch smaller than the ranks exits 64" mpi 2 "${TINY[@]}" --batch 1 -o x.ckpt all
like err 'batch 1: fewer sequences than the 2 ranks' "saying why"
exits_with 64 "the build without MPI refuses to run as one of 2 ranks" \
	mpirun --oversubscribe -np 2 "$(command -v tgpt-train)" "${TINY[@]}" -o x.ckpt all
like err 'built without MPI' "saying why"
[ ! -e x.ckpt ]; t_result $? "neither wrote a checkpoint"

# ------------------------------------------------------------ first-step gradient
exits_with 0 "1 process, plain build, batch 4: one step" tgpt-train "${GRAD[@]}" -o g1.ckpt all
exits_with 0 "1 rank of the MPI build: the same step" mpi 1 "${GRAD[@]}" -o gm.ckpt all
ok "gives a byte-identical checkpoint" cmp g1.ckpt gm.ckpt
exits_with 0 "2 ranks of 2 rows each: the same step" mpi 2 "${GRAD[@]}" -o g2.ckpt all
is "$(grep -c '^tokens/s:' err)" 1 "one tokens/s line: rank 0 speaks for the run"
exits_with 0 "1 process with half the batch (one rank's gradient, unreduced)" \
	tgpt-train "${GRAD[@]}" --batch 2 -o gh.ckpt all
for f in g1 g2 gh; do floats $f.ckpt adam_m > $f.grad; done
is "$(wc -l < g2.grad)" "$(wc -l < g1.grad)" "both gradients have every parameter"
d2=$(compare g1.grad g2.grad)
dh=$(compare g1.grad gh.grad)
echo "# gradient, 2 ranks vs 1 (maxabs maxref maxrel): $d2"
echo "# gradient, half the batch vs the whole: $dh"
ok "the gradient is no zero (largest |g| > 0.1)" awk '{ exit !($2 > 0.1) }' <<<"$d2"
ok "2 ranks: |g2 - g1| <= 1e-5 max|g1| and <= 1e-3 relative" within "$d2" 1e-5 1e-3
ok "half the batch is far outside that (> 1e-2 max|g1|)" awk '{ exit !($1 > 1e-2 * $2) }' <<<"$dh"
floats g1.ckpt params > p1.txt && floats g2.ckpt params > p2.txt
ok "and the ranks started from the same parameters as 1 process" cmp p1.txt p2.txt

# ------------------------------------------------------------ loss curves
CURVE=("${TINY[@]}" --steps 20 --lr 1e-2 --eval-every 5 --eval-batches 2)
exits_with 0 "1 process: 20 steps with validation every 5" tgpt-train "${CURVE[@]}" \
	-o c1.ckpt --metrics c1.tsv sv
exits_with 0 "2 ranks: the same 20 steps" mpi 2 "${CURVE[@]}" -o c2.ckpt --metrics c2.tsv sv
like err 'batch 4 x 1, 1 thread on each of 2 ranks' "the summary names the ranks"
is "$(column c2.tsv 1 | tr '\n' ' ')" "$(seq 1 20 | tr '\n' ' ')" \
	"rank 0 alone wrote the metrics: one line per step"
for c in 2:loss 4:grad_norm 6:val_loss; do
	column c1.tsv ${c%%:*} | grep . > a.txt
	column c2.tsv ${c%%:*} | grep . > b.txt
	d=$(compare a.txt b.txt)
	echo "# ${c#*:}, 2 ranks vs 1 (maxabs maxref maxrel): $d"
	ok "${c#*:}: 2 ranks within 1e-4 relative of 1 rank ($(wc -l < a.txt) values)" \
		within "$d" 1e-4 1e-4
done
ok "the loss fell (lr 1e-2)" awk -F'\t' 'NR == 2 { a = $2 } NR == 21 { exit !($2 < a - 0.5) }' c2.tsv
floats c1.ckpt params > p1.txt && floats c2.ckpt params > p2.txt
d=$(compare p1.txt p2.txt)
echo "# parameters after 20 steps (maxabs maxref maxrel): $d"
ok "the parameters after 20 steps within 1e-4 of 1 rank's" within "$d" 1e-4 1e-2
is "$(ckpt_step c2.ckpt)" 20 "rank 0 wrote the checkpoint of step 20"
is "$(ls -A | grep -c '\.tmp\.')" 0 "no temporary file left"

# ------------------------------------------------------------ pipelines/train-mpi
echo "localhost slots=2" > hosts
exits_with 0 "pipelines/train-mpi with a hostfile of 2 slots on this machine" \
	"$TGPT_TOP/pipelines/train-mpi" -f hosts --tgpt-train "$MPI_TRAIN" -- "${CURVE[@]}" \
	-o h.ckpt --metrics h.tsv sv
like err 'on each of 2 ranks' "runs 2 ranks"
ok "the same run as mpirun -np 2" cmp h.ckpt c2.ckpt
exits_with 64 "it refuses the build without MPI" "$TGPT_TOP/pipelines/train-mpi" -f hosts \
	--tgpt-train "$(command -v tgpt-train)" -- "${CURVE[@]}" -o h.ckpt sv
like err 'not the MPI build' "saying so"

# ------------------------------------------------------------ resume
exits_with 0 "2 ranks stopped after 7 steps" mpi 2 "${CURVE[@]}" --stop-after 7 \
	-o r.ckpt --metrics r.tsv sv
exits_with 0 "and resumed on 2 ranks" mpi 2 --resume r.ckpt --metrics r.tsv sv
losses() { awk -F'\t' '{ $5 = ""; print }' "$1"; }
is "$(losses r.tsv)" "$(losses c2.tsv)" "give the bits of the straight 2-rank run"
ok "and its checkpoint" cmp r.ckpt c2.ckpt

# ------------------------------------------------------------ a classifier
for k in tcp udp; do
	for s in 1 2 3; do
		mkpcap $k --seed $s -w l$k$s.pcap && pcap2flow -q -l $k l$k$s.pcap |
			flow2tok -q --mask mac,ip,port > l$k$s.tok || { echo "Bail out! $k $s"; exit 1; }
	done
done
cat ltcp*.tok ludp*.tok | tokshard -q -o lab --split 1/1/0 --group flow --context 1024
FT=(--preset tiny --labels --window-tokens 64 -j 1 --lr 3e-3 --steps 6 --eval-every 3 --batch 4)
for bal in sample weight; do
	exits_with 0 "--labels --balance $bal: 1 process" tgpt-train "${FT[@]}" --balance $bal \
		-o f1.ckpt --metrics f1.tsv lab
	exits_with 0 "--labels --balance $bal: 2 ranks" mpi 2 "${FT[@]}" --balance $bal \
		-o f2.ckpt --metrics f2.tsv lab
	for c in 2:loss 4:grad_norm 6:val_loss 7:val_acc; do
		column f1.tsv ${c%%:*} | grep . > a.txt
		column f2.tsv ${c%%:*} | grep . > b.txt
		ok "--balance $bal: ${c#*:} within 1e-4 relative" within "$(compare a.txt b.txt)" 1e-4 1e-4
	done
done

# ------------------------------------------------------------ signals
rm -f s.tsv
mpirun --oversubscribe --bind-to none -np 2 "$MPI_TRAIN" "${TINY[@]}" \
	--steps 100000 --ckpt-every 0 -o s.ckpt --metrics s.tsv all 2> s.err &
pid=$!
# until 3 steps are done (at most 60 s)
timeout 60 bash -c 'until [ "$(cat s.tsv 2>/dev/null | wc -l)" -gt 3 ]; do sleep 0.1; done'
rank1=""
for p in $(pgrep -P $pid); do
	tr '\0' '\n' < /proc/$p/environ | grep -qx OMPI_COMM_WORLD_RANK=1 && rank1=$p
done
ok "rank 1 is a child of mpirun" test -n "$rank1"
kill -TERM "${rank1:-0}"
wait $pid
is "$?" 75 "SIGTERM to rank 1 only: the run stops, status 75"
step=$(ckpt_step s.ckpt)
ok "rank 0 saved the step all stopped after ($step)" test "${step:-0}" -ge 3 -a "${step:-0}" -lt 100000
is "$(column s.tsv 1 | tail -1)" "$step" "the last metrics line is that step's"

done_testing
