#!/usr/bin/env bash
# tgpt-train.t: tgpt-train's command line; contexts and data it must refuse
# before writing anything; the tiny preset overfitting a handful of real
# flows (mkpcap | pcap2flow | flow2tok | tokshard); a resumed run giving the
# same losses and checkpoint as an uninterrupted one; damaged and conflicting
# checkpoints refused; SIGTERM and SIGINT saving a checkpoint; validation;
# dropout (off by default, resumed, never in validation); --random-data and
# its tokens/s line.
. "$TGPT_TOP/tests/lib.sh"

need_tools tgpt-train tokshard pcap2flow flow2tok mkpcap

# The steps (column 1) and values but tokens_per_s (column 5) of a metrics file.
losses() { awk -F'\t' 'NR > 1 { print $1, $2, $3, $4, $6 }' "$1"; }
# A key of a checkpoint's text sections (--info).
ckpt_key() { tgpt-train --info "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }
# Waits until FILE has more than N lines (up to 60 s).
wait_lines() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ -f "$1" ] && [ "$(wc -l < "$1")" -gt "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# Four real flows (a TCP session, three DNS-like UDP exchanges: 179 to 375
# tokens, 1245 in all): all for training in all/, three and one in sv/.
mkpcap tcp -w tcp.pcap && mkpcap udp -w udp.pcap || { echo "Bail out! mkpcap"; exit 1; }
for k in tcp udp; do pcap2flow -q $k.pcap | flow2tok -q > $k.tok; done
cat tcp.tok udp.tok | tokshard -q -o all --split 1/0/0 --group flow --context 1024 2>/dev/null
cat tcp.tok udp.tok | tokshard -q -o sv --split 3/1/0 --group flow --context 1024 2>/dev/null
[ -s all/train.shard ] && [ -s sv/val.shard ] || { echo "Bail out! tokshard"; exit 1; }
TINY1=(--preset tiny --context 512)
TINY=("${TINY1[@]}" -j 1)

# ------------------------------------------------------------ command line
exits_with 0 "--help exits 0" tgpt-train --help
like out '^usage: tgpt-train' "--help prints the usage on stdout"
like out -- '--resume FILE' "--help lists --resume"
exits_with 0 "--version exits 0" tgpt-train --version
like out '^tgpt-train \(tgpt\) [0-9]' "--version names the tool"
like out '^BLIS [0-9]' "--version lists the BLIS version"
exits_with 64 "an unknown option exits 64" tgpt-train --bogus all
like err '^usage: tgpt-train' "the usage goes to stderr"
exits_with 64 "an unknown preset exits 64" tgpt-train --preset huge -o m.ckpt all
exits_with 64 "no -o FILE exits 64" tgpt-train "${TINY[@]}" all
exits_with 64 "no shard directory exits 64" tgpt-train "${TINY[@]}" -o m.ckpt
exits_with 64 "--random-data with shards exits 64" tgpt-train "${TINY[@]}" --random-data all
exits_with 64 "--pos knows axial and learned" tgpt-train "${TINY[@]}" --pos rotary -o m.ckpt all
exits_with 64 "a bad number exits 64" tgpt-train "${TINY[@]}" --lr fast -o m.ckpt all
exits_with 64 "-o - exits 64 (a checkpoint is a file)" tgpt-train "${TINY[@]}" -o - all
exits_with 73 "an output directory that does not exist exits 73" \
	tgpt-train "${TINY[@]}" -o nodir/m.ckpt all

# ------------------------------------------------------------ refused before writing
echo "an old model" > keep.ckpt
exits_with 64 "a context that is no multiple of the local window exits 64" \
	tgpt-train --preset tiny --context 100 -o keep.ckpt all
like err 'multiple of 8' "and says which multiple"
exits_with 64 "a context beyond a learned position table exits 64" \
	tgpt-train --preset tiny --pos learned --context 128 -o keep.ckpt all
like err 'covers 64 tokens' "and says how far it reaches"
exits_with 64 "sizes the model cannot take exit 64" \
	tgpt-train "${TINY[@]}" --local-heads 3 -o keep.ckpt all
exits_with 66 "a missing shard directory exits 66" tgpt-train "${TINY[@]}" -o keep.ckpt nosuch
like err 'nosuch/train.shard' "and names the file"
mkdir -p v2 cut
cp all/train.shard v2/ && printf '\002' | dd of=v2/train.shard bs=1 seek=8 conv=notrunc 2>/dev/null
exits_with 65 "a shard of another format version exits 65" tgpt-train "${TINY[@]}" -o keep.ckpt v2
like err 'v2/train.shard: shard format version 2' "naming the file and the version"
head -c 1000 all/train.shard > cut/train.shard
exits_with 65 "a shard cut short exits 65" tgpt-train "${TINY[@]}" -o keep.ckpt cut
like err 'cut/train.shard: cut short' "naming the file"
is "$(cat keep.ckpt)" "an old model" "none of them touched the output"

# ------------------------------------------------------------ overfitting
# tiny (27,348 parameters) on the four flows, constant learning rate 1e-2:
# measured with seeds 1-5, the loss (5.56 at step 1) first falls below 1.0 at
# steps 104-127 and the highest of steps 191-200 is 0.06-0.26 (seed 1: 0.18,
# a margin of 5x under the bound of 1.0).
exits_with 0 "tiny trains 200 steps on four flows" tgpt-train "${TINY[@]}" --steps 200 \
	--lr 1e-2 --min-lr 1e-2 -o fit.ckpt --metrics fit.tsv all
is "$(losses fit.tsv | wc -l)" 200 "one metrics line per step"
is "$(head -1 fit.tsv)" "$(printf 'step\tloss\tlr\tgrad_norm\ttokens_per_s\tval_loss')" \
	"the metrics start with a header"
ok "the first loss is near ln 260 = 5.56" awk -F'\t' 'NR == 2 { exit !($2 > 5 && $2 < 6) }' fit.tsv
ok "every loss of steps 191-200 is below 1.0 (it overfits)" \
	awk -F'\t' 'NR > 1 && $1 > 190 && !($2 < 1.0) { bad = 1 } END { exit bad }' fit.tsv
awk -F'\t' 'NR > 1 && $1 > 190 && $2 > max { max = $2 } END { print "# highest loss of steps 191-200:", max }' fit.tsv
like err '^tokens/s: [0-9.]+$' "a tokens/s line on stderr"
is "$(tail -1 err | cut -d' ' -f1)" "tokens/s:" "as the last line"
ok "no progress on stderr when it is not a terminal" bash -c "! grep -q $'\r' err"
is "$(ckpt_key fit.ckpt step)" 200 "the checkpoint holds step 200"
is "$(ls -A | grep -c '\.tmp\.')" 0 "no temporary file left"

# ------------------------------------------------------------ resume
exits_with 0 "20 steps straight" tgpt-train "${TINY[@]}" --steps 20 -o a.ckpt --metrics a.tsv all
# Stopped after step 7, mid-epoch (flow 1 of the permutation is next).
exits_with 0 "the same run stopped after 7 steps" tgpt-train "${TINY[@]}" --steps 20 \
	--stop-after 7 -o b.ckpt --metrics b.tsv all
is "$(ckpt_key b.ckpt step)" 7 "its checkpoint holds step 7"
is "$(ckpt_key b.ckpt cursor)" 1 "and a data position inside an epoch"
cp b.ckpt b7.ckpt
exits_with 0 "--resume with no other flag continues it" tgpt-train --resume b.ckpt --metrics b.tsv all
like err 'resuming at step 7 of 20' "from step 7"
is "$(losses b.tsv | awk '$1 > 7')" "$(losses a.tsv | awk '$1 > 7')" \
	"steps 8-20 after the resume: the same loss, lr and grad_norm bits as straight"
is "$(losses b.tsv | wc -l)" 20 "the metrics file goes on where it stopped"
ok "and the final checkpoints are byte-identical" cmp a.ckpt b.ckpt
exits_with 0 "the same 20 steps with -j 2" tgpt-train "${TINY1[@]}" -j 2 --steps 20 \
	-o c.ckpt --metrics c.tsv all
is "$(losses c.tsv)" "$(losses a.tsv)" "give the same losses as with -j 1"
exits_with 0 "a finished run resumed has nothing to do" tgpt-train --resume a.ckpt all
like err 'tokens/s: 0' "and says so with tokens/s 0"

# ------------------------------------------------------------ checkpoints refused
size=$(stat -c %s b7.ckpt)
head -c $((size - 1000)) b7.ckpt > short.ckpt
cp short.ckpt short.orig
exits_with 65 "a checkpoint cut short is refused" tgpt-train --resume short.ckpt all
like err 'short.ckpt: cut short' "naming the file"
ok "and left as it was" cmp short.ckpt short.orig
cp b7.ckpt flip.ckpt
printf '\125' | dd of=flip.ckpt bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
cp flip.ckpt flip.orig
exits_with 65 "a checkpoint with a flipped byte is refused" tgpt-train --resume flip.ckpt all
like err 'flip.ckpt: section [a-z_]+ is damaged' "naming the file and the section"
ok "and left as it was" cmp flip.ckpt flip.orig
exits_with 65 "--info refuses it too" tgpt-train --info flip.ckpt
exits_with 66 "a missing checkpoint exits 66" tgpt-train --resume nosuch.ckpt all
cp b7.ckpt r.ckpt
exits_with 64 "--resume with a conflicting --layers exits 64" tgpt-train --resume r.ckpt --layers 3 all
like err "r.ckpt: the model's n_layer is 2, the options ask for 3" "naming the file and the field"
exits_with 64 "--resume with another preset exits 64" tgpt-train --resume r.ckpt --preset small all
exits_with 64 "--resume with another --context exits 64" tgpt-train --resume r.ckpt --context 256 all
exits_with 64 "--resume with another --batch exits 64" tgpt-train --resume r.ckpt --batch 2 all
exits_with 0 "--resume with the same sizes given again is fine" tgpt-train --resume r.ckpt \
	--preset tiny --context 512 --layers 2 --batch 4 --stop-after 1 all
# Another preset is named as the conflict, not as a context the user never gave.
tgpt-train --preset tiny --context 520 -j 1 --steps 1 -o r520.ckpt all 2>/dev/null
exits_with 64 "--resume with another --preset exits 64" tgpt-train --resume r520.ckpt --preset small all
like err 'r520.ckpt: a run of preset tiny; --preset small conflicts' "... naming the presets"
! grep -q -- '--context' err; t_result $? "... not a --context it was not given"
cp b7.ckpt r.ckpt
exits_with 65 "--resume on other shards exits 65" tgpt-train --resume r.ckpt sv
like err 'sv/train.shard: 3 flows' "saying the data differ"
ok "none of them touched the checkpoint" cmp r.ckpt b7.ckpt

# ------------------------------------------------------------ signals
# start_run: a long run in the background (PID in $pid), once 3 steps are done
start_run() {
	rm -f sig.tsv sig.ckpt
	# a background job ignores SIGINT and SIGQUIT unless told otherwise (env(1))
	env --default-signal=INT,QUIT tgpt-train "${TINY[@]}" --steps 100000 --ckpt-every 0 \
		-o sig.ckpt --metrics sig.tsv all 2> sig.err &
	pid=$!
	wait_lines sig.tsv 3
}
# finish_run: waits for it (60 s at most: then it is killed), status in $?
finish_run() {
	local i
	for ((i = 0; i < 600; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	kill -KILL $pid 2>/dev/null
	wait $pid
}
# One signal, and two at once as timeout(1) sends them (to the process and
# to its group): the run stops after its step, writes its checkpoint and
# exits 75, whenever the second one comes (it changes nothing; while the
# checkpoint is written, signals wait).
for sig in TERM INT; do
	for n in 1 2; do
		start_run
		for ((k = 0; k < n; k++)); do kill -$sig $pid; done
		finish_run
		is "$?" 75 "$n SIG$sig: exits 75 (stopped, checkpoint written)"
		step=$(ckpt_key sig.ckpt step)
		ok "$n SIG$sig: the checkpoint loads and holds a step between 3 and 99999 ($step)" \
			test "${step:-0}" -ge 3 -a "${step:-0}" -lt 100000
		like sig.err "stopped by SIG$sig" "$n SIG$sig: says why it stopped"
	done
done
exits_with 0 "a run stopped by a signal resumes" tgpt-train --resume sig.ckpt --stop-after 2 all
# timeout(1) itself, both signals
for sig in INT TERM; do
	rm -f to.ckpt
	timeout -s $sig 4 env --default-signal=INT tgpt-train "${TINY[@]}" --steps 100000 --ckpt-every 0 \
		-o to.ckpt all 2> to.err
	is "$?" 124 "timeout -s $sig: timed out"
	step=$(ckpt_key to.ckpt step)
	ok "timeout -s $sig: a checkpoint that loads ($step)" test "${step:-0}" -ge 1
done
# Any number of them: still the checkpoint; SIGQUIT ends the run at once.
start_run
for ((k = 0; k < 5; k++)); do kill -INT $pid; kill -TERM $pid; sleep 0.05; done
finish_run
is "$?" 75 "ten signals, some in the checkpoint's writing: exits 75"
step=$(ckpt_key sig.ckpt step)
ok "... with a checkpoint that loads ($step)" test "${step:-0}" -ge 3
start_run
kill -QUIT $pid
finish_run
is "$?" $((128 + 3)) "SIGQUIT ends the run at once"

# ------------------------------------------------------------ the outputs, before the first step
mkdir ckdir
exits_with 73 "-o a directory exits 73" timeout 60 tgpt-train "${TINY[@]}" --steps 100000 -o ckdir \
	--metrics early.tsv all
like err 'ckdir: a directory, not a file to write' "... naming it"
ok "... before the first step" test ! -s early.tsv
exits_with 73 "-o in a directory that does not exist exits 73" timeout 60 tgpt-train "${TINY[@]}" \
	--steps 100000 -o no/such/dir/m.ckpt all
like err 'no/such/dir/m.ckpt: ' "... naming it"
exits_with 73 "--metrics a directory exits 73" timeout 60 tgpt-train "${TINY[@]}" --steps 100000 \
	-o m.ckpt --metrics ckdir all
like err 'ckdir' "... naming it"
ok "... and no checkpoint is written" test ! -e m.ckpt

# ------------------------------------------------------------ validation, accumulation
exits_with 0 "validation every 3 steps over val.shard, 2 micro-batches a step" \
	tgpt-train "${TINY[@]}" --steps 6 --eval-every 3 --eval-batches 2 --accum 2 \
	-o v.ckpt --metrics - sv
is "$(awk -F'\t' 'NR > 1 && $6 != "" { print $1 }' out | tr '\n' ' ')" "3 6 " \
	"val_loss at steps 3 and 6, empty at the others (--metrics - is stdout)"
ok "the validation loss is a loss" awk -F'\t' 'NR == 4 { exit !($6 > 0 && $6 < 10) }' out
like err 'step 3: val_loss' "and reported on stderr"
exits_with 0 "without val.shard there is no validation" tgpt-train "${TINY[@]}" --steps 2 \
	--eval-every 1 -o n.ckpt all
like err 'no validation' "which it says"

# ------------------------------------------------------------ dropout
exits_with 0 "--dropout 0 runs" tgpt-train "${TINY[@]}" --steps 20 --dropout 0 -o d0.ckpt all
ok "and writes the very checkpoint of a run without the option" cmp a.ckpt d0.ckpt
exits_with 0 "20 steps with dropout 0.1" tgpt-train "${TINY[@]}" --steps 20 --dropout 0.1 \
	-o da.ckpt --metrics da.tsv all
losses da.tsv | cut -d' ' -f2 > da.loss
losses a.tsv | cut -d' ' -f2 > a.loss
ok "train on other losses than without dropout" test "$(cat da.loss)" != "$(cat a.loss)"
is "$(ckpt_key da.ckpt attn_dropout) $(ckpt_key da.ckpt resid_dropout)" "0.1 0.1" \
	"the checkpoint's train section records both rates"
is "$(ckpt_key a.ckpt attn_dropout)" "" "a run without dropout records none (as before)"
exits_with 0 "the same run stopped after 7 steps, with -j 2" tgpt-train "${TINY1[@]}" -j 2 \
	--steps 20 --dropout 0.1 --stop-after 7 -o db.ckpt --metrics db.tsv all
exits_with 0 "--resume continues it with its dropout" tgpt-train --resume db.ckpt -j 1 \
	--metrics db.tsv all
is "$(losses db.tsv)" "$(losses da.tsv)" "the same losses as straight (masks of no stored state)"
ok "and the same parameters and moments" \
	bash -c "diff <(tgpt-train --info da.ckpt | grep -v '^file\|^threads\|section train') \
	<(tgpt-train --info db.ckpt | grep -v '^file\|^threads\|section train')"
# At learning rate 0 the parameters stay put: validation without dropout
# then gives the same loss whatever the rate, training does not.
for p in 0 0.5; do
	tgpt-train "${TINY[@]}" --steps 3 --lr 0 --eval-every 3 --eval-batches 2 --dropout $p \
		-o dv.ckpt --metrics dv$p.tsv sv 2>/dev/null
done
is "$(awk -F'\t' 'NR == 4 { print $6 }' dv0.5.tsv)" "$(awk -F'\t' 'NR == 4 { print $6 }' dv0.tsv)" \
	"validation runs without dropout"
ok "while training does" test "$(cut -f2 dv0.tsv)" != "$(cut -f2 dv0.5.tsv)"
exits_with 64 "a rate above 0.9 exits 64" tgpt-train "${TINY[@]}" --dropout 1 -o x.ckpt all

# ------------------------------------------------------------ export
exits_with 64 "--export without -o exits 64" tgpt-train --export b7.ckpt
exits_with 0 "--export writes the model alone" tgpt-train --export b7.ckpt -o e.ckpt
is "$(tgpt-train --info e.ckpt | awk '$1 == "section" { print $2 }' | tr '\n' ' ')" \
	"model labels params " "its sections: model, labels, params"
is "$(tgpt-train --info e.ckpt | grep '^section params' | cut -d' ' -f9)" \
	"$(tgpt-train --info b7.ckpt | grep '^section params' | cut -d' ' -f9)" \
	"the parameters are the run's (the same CRC-32)"
ok "and it is less than half the run's file" test $(($(wc -c < e.ckpt) * 2)) -lt "$(wc -c < b7.ckpt)"
exits_with 65 "it cannot be resumed" tgpt-train --resume e.ckpt -o e2.ckpt all
like err 'e.ckpt: no train section' "naming the file and what it lacks"
exits_with 0 "it can be fine-tuned" tgpt-train --finetune e.ckpt -j 1 --steps 2 -o fe.ckpt \
	--metrics fe.tsv all
exits_with 0 "as the run's own file can" tgpt-train --finetune b7.ckpt -j 1 --steps 2 -o fb.ckpt \
	--metrics fb.tsv all
is "$(losses fe.tsv)" "$(losses fb.tsv)" "with the same losses"
exits_with 66 "--export of a missing file exits 66" tgpt-train --export nosuch.ckpt -o x.ckpt

# --random-init: the shape of --finetune FILE, the parameters of a fresh run
exits_with 64 "--random-init without --finetune exits 64" tgpt-train "${TINY[@]}" --random-init \
	-o ri.ckpt all
exits_with 0 "--finetune FILE --random-init" tgpt-train --finetune e.ckpt --random-init -j 1 \
	--steps 2 -o ri.ckpt --metrics ri.tsv all
like err 'from e.ckpt with random parameters' "says the parameters are random"
exits_with 0 "a fresh run of the same shape" tgpt-train "${TINY[@]}" --steps 2 -o rf.ckpt \
	--metrics rf.tsv all
is "$(losses ri.tsv)" "$(losses rf.tsv)" "gives the same losses"
ok "which are not the pre-trained model's" test "$(losses ri.tsv)" != "$(losses fe.tsv)"

# ------------------------------------------------------------ random data
exits_with 0 "--random-data needs no shards" tgpt-train --preset tiny --random-data --steps 3 -j 1 -q
is "$(wc -l < err)" 1 "-q: only the tokens/s line"
like err '^tokens/s: [0-9]+\.[0-9]$' "tokens/s: X on stderr"
exits_with 0 "--random-data with a checkpoint" tgpt-train --preset tiny --random-data --steps 4 \
	--stop-after 2 -j 1 -o rd.ckpt --metrics rd1.tsv
exits_with 0 "resumes with the random stream where it was" tgpt-train --resume rd.ckpt --metrics rd1.tsv
exits_with 0 "the same run straight" tgpt-train --preset tiny --random-data --steps 4 -j 1 \
	-o rd2.ckpt --metrics rd2.tsv
is "$(losses rd1.tsv)" "$(losses rd2.tsv)" "gives the same losses"

done_testing
