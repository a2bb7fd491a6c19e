#!/usr/bin/env bash
# tgpt-finetune.t: tgpt-train --labels, fine-tuning a classifier (paper
# section 2: the label is the token after CLS and the flow's first W tokens)
# on captures labelled by kind (mkpcap tcp, udp and ipv6, pcap2flow -l KIND,
# flow2tok --mask mac,ip,port, tokshard --group flow): from scratch and from
# a short pre-training it reaches validation accuracy 1.0 within a stated
# number of steps; the label map and the mode in the checkpoint (--info);
# the best checkpoint kept; exact resume; two-token labels; the refusals
# (unlabelled shards, more labels than one token names, conflicting options).
. "$TGPT_TOP/tests/lib.sh"

need_tools tgpt-train tokshard pcap2flow flow2tok mkpcap mkrec

# A key of a checkpoint's text sections, and a line of its label table (--info).
ckpt_key() { tgpt-train --info "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }
labels_key() { tgpt-train --info "$1" | awk -v k="$2" '/^\[labels\]/ { on = 1 } on && $1 == k { print $2; exit }'; }
label_line() { tgpt-train --info "$1" | awk -v i="$2" '$1 == "label" && $2 == i { print; exit }'; }
# The bytes of a section (offset and size from --info).
section() {
	local off size
	read -r off size < <(tgpt-train --info "$1" | awk -v s="$2" '$1 == "section" && $2 == s { print $6, $8 }')
	[ -n "$off" ] && tail -c +$((off + 1)) "$1" | head -c "$size"
}
# The step at which a metrics file's val_acc (column 7) first reaches 1.
first_acc1() { awk -F'\t' 'NR > 1 && $7 == 1 { print $1; found = 1; exit } END { if (!found) print "never" }' "$1"; }
# The metrics without tokens_per_s (column 5).
values() { awk -F'\t' '{ $5 = ""; print }' "$1"; }

# 48 flows of 3 kinds (seeds 1-8: 8 TCP sessions, 24 DNS-like UDP flows, 16
# IPv6 flows), addresses and ports zeroed; half for training, half for
# validation, each label in both: ipv6 8/8, tcp 4/4, udp 12/12 flows.
for k in tcp udp ipv6; do
	for s in 1 2 3 4 5 6 7 8; do
		mkpcap $k --seed $s -w $k$s.pcap && pcap2flow -q -l $k $k$s.pcap |
			flow2tok -q --mask mac,ip,port > $k$s.tok || { echo "Bail out! $k $s"; exit 1; }
	done
done
cat tcp*.tok udp*.tok ipv6*.tok | tokshard -q -o sh --split 1/1/0 --group flow --context 1024
# The same flows without labels; 300 labels (two flows each, mkrec).
for s in 1 2; do pcap2flow -q udp$s.pcap | flow2tok -q; done | tokshard -q -o nolab --split 1/1/0 --group flow
for i in $(seq 0 299); do
	for c in a b; do printf 'tok label=L%03d source=s%d%s : S 1 z8 %d %d E\n' $i $i $c $((i / 256)) $((i % 256)); done
done | (echo "hdr tgpt.tok"; cat) | mkrec | tokshard -q -o many --split 1/1/0 --group flow --context 64
[ -s sh/val.shard ] && [ -s nolab/train.shard ] && [ -s many/val.shard ] || { echo "Bail out! tokshard"; exit 1; }
FT=(--preset tiny --labels --window-tokens 64 -j 1 --lr 3e-3)

# ------------------------------------------------------------ command line
exits_with 0 "--help exits 0" tgpt-train --help
like out -- '--labels' "--help lists --labels"
like out -- '--finetune FILE' "and --finetune"
like out -- '--window-tokens W' "and --window-tokens"
exits_with 64 "--balance takes none, weight or sample" tgpt-train "${FT[@]}" --balance fair -o m.ckpt sh
exits_with 64 "--window-tokens without --labels exits 64" tgpt-train --preset tiny --window-tokens 64 -o m.ckpt sh
like err 'window-tokens is an option of --labels' "saying so"
exits_with 64 "--labels has no --context" tgpt-train "${FT[@]}" --context 128 -o m.ckpt sh
exits_with 64 "--labels with --random-data exits 64" tgpt-train "${FT[@]}" --random-data
exits_with 64 "--label-tokens is 1 or 2" tgpt-train "${FT[@]}" --label-tokens 3 -o m.ckpt sh
exits_with 64 "a learned position table shorter than the input exits 64" \
	tgpt-train "${FT[@]}" --pos learned -o m.ckpt sh
like err 'covers 64 tokens, the sequences take 65' "saying how far it reaches"

# ------------------------------------------------------------ refused data
exits_with 65 "--labels on shards without labels exits 65" tgpt-train "${FT[@]}" -o m.ckpt nolab
like err 'nolab/train.shard: no labelled flows' "naming the shard"
exits_with 65 "300 labels with --label-tokens 1 exit 65" tgpt-train "${FT[@]}" --label-tokens 1 -o m.ckpt many
like err 'many/train.shard: 300 labels; one label token names at most 256' "saying how many one token names"
ok "none of them wrote a checkpoint" test ! -e m.ckpt
mkdir -p mixed && cp sh/train.shard mixed/ && cp many/val.shard mixed/
exits_with 65 "a val.shard of another label table exits 65" tgpt-train "${FT[@]}" --steps 1 -o m.ckpt mixed
like err 'mixed/val.shard: 300 labels; mixed/train.shard has 3' "naming both"

# ------------------------------------------------------------ from scratch
# tiny (26,916 parameters), window 64, lr 3e-3 with the default warm-up and
# cosine, balanced sampling: measured with seeds 1-8, validation accuracy
# first reaches 1.0 at steps 70-110 (seed 1: 80) and stays there to step 300;
# the bound is 200. The same with --balance weight: 80-130 (seeds 1-6); with
# none: 100-140, and seed 5 never (0.83: it misses the rare tcp class).
exits_with 0 "a classifier from random parameters, 200 steps" tgpt-train "${FT[@]}" --steps 200 \
	--eval-every 10 -o clf.ckpt --metrics clf.tsv sh
is "$(head -1 clf.tsv)" "$(printf 'step\tloss\tlr\tgrad_norm\ttokens_per_s\tval_loss\tval_acc\tval_f1')" \
	"the metrics have val_acc and val_f1 columns"
is "$(awk -F'\t' 'NR > 1 && $7 != "" { n++ } END { print n }' clf.tsv)" 20 "a validation every 10 steps"
step=$(first_acc1 clf.tsv)
echo "# from scratch: val_acc 1.0 first at step $step"
ok "validation accuracy reaches 1.0 within 200 steps ($step)" test "$step" != never -a "${step/never/999}" -le 200
ok "and macro-F1 1.0 with it" awk -F'\t' -v s="$step" '$1 == s { exit !($8 == 1) }' clf.tsv
like err 'classifier of 3 labels \(1 token each\), window 64, balance sample' "the summary says what it trains"
like err 'step [0-9]+: val_loss [0-9.]+ val_acc 1.0000 val_f1 1.0000 \(best\)' "validation on stderr, the best marked"
like err "best val_f1 1.0000 \(val_acc 1.0000\) at step $step: the parameters in clf.ckpt" \
	"the last lines name the best step"

# ------------------------------------------------------------ the checkpoint
is "$(ckpt_key clf.ckpt mode)" finetune "--info: the train section says it is a classifier"
is "$(ckpt_key clf.ckpt window_tokens) $(ckpt_key clf.ckpt label_tokens) $(ckpt_key clf.ckpt balance)" \
	"64 1 sample" "with its window, label tokens and balance"
is "$(labels_key clf.ckpt n_labels) $(labels_key clf.ckpt label_tokens) $(labels_key clf.ckpt window_tokens)" \
	"3 1 64" "the label table: 3 labels of 1 token, window 64"
is "$(label_line clf.ckpt 0)" "label 0 0 8 ipv6" "label 0: token 0, 8 training flows, ipv6"
is "$(label_line clf.ckpt 1)" "label 1 1 4 tcp" "label 1: token 1, 4 flows, tcp"
is "$(label_line clf.ckpt 2)" "label 2 2 12 udp" "label 2: token 2, 12 flows, udp"
is "$(ckpt_key clf.ckpt best_step)" "$step" "best_step: the first step of the highest val_f1"
is "$(ckpt_key clf.ckpt best_val_f1) $(ckpt_key clf.ckpt best_val_acc)" "1 1" "with its scores"

# -o keeps the best: the same run stopped at the best step has those parameters
exits_with 0 "the same run stopped at its best step" tgpt-train "${FT[@]}" --steps 200 \
	--eval-every 10 --stop-after "$step" -o at.ckpt sh
section clf.ckpt params > best.f32
section clf.ckpt last > last.f32
section at.ckpt params > at.f32
section at.ckpt last > at-last.f32
ok "the classifier's params are those of its best step" cmp best.f32 at.f32
ok "its last step's are kept apart (section last), to resume from" \
	test -s last.f32 -a "$(stat -c %s last.f32)" = "$(stat -c %s best.f32)"
ok "and differ from the best" bash -c '! cmp -s best.f32 last.f32'
ok "a checkpoint at its best step has no section last" test ! -s at-last.f32
exits_with 0 "without validation" tgpt-train "${FT[@]}" --steps 3 --eval-every 0 -o nv.ckpt sh
like err 'no validation yet: nv.ckpt holds the parameters of step 3' "the output holds the last step, and says so"

# ------------------------------------------------------------ resume
for bal in sample weight none; do
	exits_with 0 "--balance $bal: 40 steps straight" tgpt-train "${FT[@]}" --balance $bal --steps 40 \
		--eval-every 5 -o a-$bal.ckpt --metrics a-$bal.tsv sh
	exits_with 0 "--balance $bal: stopped after 13 steps" tgpt-train "${FT[@]}" --balance $bal \
		--steps 40 --eval-every 5 --stop-after 13 -o b-$bal.ckpt --metrics b-$bal.tsv sh
	exits_with 0 "--balance $bal: resumed" tgpt-train --resume b-$bal.ckpt --metrics b-$bal.tsv sh
	is "$(values b-$bal.tsv)" "$(values a-$bal.tsv)" "--balance $bal: the same losses and validations"
	ok "--balance $bal: and a byte-identical checkpoint" cmp a-$bal.ckpt b-$bal.ckpt
done
cp b-sample.ckpt r.ckpt
exits_with 64 "a resumed classifier keeps its --balance" tgpt-train --resume r.ckpt --balance weight sh
like err 'a run of --balance sample; --balance weight conflicts' "saying which"
exits_with 64 "and its window" tgpt-train --resume r.ckpt --window-tokens 32 sh
exits_with 64 "and its model" tgpt-train --resume r.ckpt --layers 3 sh
ok "none of them touched it" cmp r.ckpt b-sample.ckpt

# ------------------------------------------------------------ from pre-training
# 100 steps of next-token pre-training on the same flows (labels unused),
# then fine-tuning: measured over pre-training seeds 1-3 and fine-tuning
# seeds 1-5, accuracy 1.0 first at steps 50-80 in 14 of the 15 (one stays at
# 0.96); seed 1 and 1: step 60. The bound is 150.
exits_with 0 "100 steps of pre-training" tgpt-train --preset tiny --context 256 -j 1 --steps 100 \
	--lr 1e-2 --min-lr 1e-3 --eval-every 0 -o pre.ckpt sh
is "$(ckpt_key pre.ckpt mode)" pretrain "a pre-training checkpoint says so"
is "$(ckpt_key pre.ckpt window_tokens)" "" "and has no classifier keys"
is "$(labels_key pre.ckpt n_labels)" 0 "and an empty label table"
exits_with 0 "fine-tuned from it" tgpt-train --finetune pre.ckpt --labels --window-tokens 64 -j 1 \
	--lr 3e-3 --steps 150 --eval-every 10 -o ft.ckpt --metrics ft.tsv sh
like err 'tiny model from pre.ckpt' "the summary names the pre-trained model"
step=$(first_acc1 ft.tsv)
echo "# from pre-training: val_acc 1.0 first at step $step"
ok "validation accuracy reaches 1.0 within 150 steps ($step)" test "$step" != never -a "${step/never/999}" -le 150
is "$(ckpt_key ft.ckpt max_ctx)" 256 "the model is the pre-trained one (its context)"
exits_with 64 "--finetune keeps the model: no sizes" tgpt-train --finetune pre.ckpt --labels --layers 3 -o m.ckpt sh
exits_with 64 "a window beyond the pre-trained context exits 64" tgpt-train --finetune pre.ckpt --labels \
	--window-tokens 300 -o m.ckpt sh
like err 'beyond the 256 the model of pre.ckpt covers' "saying how far it reaches"
exits_with 0 "--finetune without --labels goes on pre-training it" tgpt-train --finetune pre.ckpt -j 1 \
	--steps 2 --eval-every 0 -o more.ckpt sh
is "$(ckpt_key more.ckpt step) $(ckpt_key more.ckpt context)" "2 256" "from step 0, at the model's context"
exits_with 64 "--finetune with --resume exits 64" tgpt-train --resume more.ckpt --finetune pre.ckpt sh
exits_with 64 "--labels on a resumed pre-training run exits 64" tgpt-train --resume more.ckpt --labels sh

# ------------------------------------------------------------ two-token labels
# --label-tokens 2 on the 3 labels (0,0 0,1 0,2): measured with seeds 1-6,
# accuracy 1.0 first at steps 130-220 (seed 1: 130); the bound is 300.
exits_with 0 "--label-tokens 2: 300 steps" tgpt-train "${FT[@]}" --label-tokens 2 --steps 300 \
	--eval-every 10 -o clf2.ckpt --metrics clf2.tsv sh
step=$(first_acc1 clf2.tsv)
echo "# two-token labels: val_acc 1.0 first at step $step"
ok "validation accuracy reaches 1.0 within 300 steps ($step)" test "$step" != never -a "${step/never/999}" -le 300
is "$(label_line clf2.ckpt 2)" "label 2 0,2 12 udp" "label 2 is the tokens 0, 2"
exits_with 0 "300 labels take two tokens each" tgpt-train --preset tiny --labels --window-tokens 16 -j 1 \
	--steps 3 --eval-every 3 -o many.ckpt many
like err 'classifier of 300 labels \(2 tokens each\)' "without being asked"
like err 'step 3: val_loss [0-9.]+ val_acc [0-9.]+ val_f1' "and validate"
is "$(label_line many.ckpt 299)" "label 299 1,43 1 L299" "label 299 is the tokens 1, 43"

done_testing
