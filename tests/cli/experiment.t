#!/usr/bin/env bash
# experiment.t: pipelines/experiment.mk runs captures -> report end to end on
# two example captures with a tiny, short configuration (generation under the
# grammar and --raw side by side), and a second make
# does nothing; changing a generation setting reruns generation and its
# evaluation but not the training; CONDITIONAL = 1 trains a class-conditional
# model and generates flows of each label.
. "$TGPT_TOP/tests/lib.sh"
# The steps are told apart by the commands make echoes: not silenced by the
# flags of an outer `make -s check`.
unset MAKEFLAGS MFLAGS MAKELEVEL
need_tools parallel jq mpdump tgpt-train tgpt-infer realism-eval jsdiv
mk="$TGPT_TOP/pipelines/experiment.mk"
mkdir -p caps/data && cp "$TGPT_TOP/examples/data/dns.pcap" "$TGPT_TOP/examples/data/ntp.pcap" caps/data/
printf 'data/dns.pcap\tdns\ndata/ntp.pcap\tntp\n' > caps/labels.tsv
sed -e "s|^CAPTURES = .*|CAPTURES = $T_DIR/caps|" -e "s|^LABELS = .*|LABELS = $T_DIR/caps/labels.tsv|" \
    -e 's/^STEPS = .*/STEPS = 20/' -e 's/^FT_STEPS = .*/FT_STEPS = 20/' -e 's/^GEN_N = .*/GEN_N = 6/' \
    -e 's/^CONTEXT = .*/CONTEXT = 512/' -e 's/^FT_WINDOW = .*/FT_WINDOW = 256/' -e 's/^GEN_MAX_TOKENS = .*/GEN_MAX_TOKENS = 600/' \
    -e 's/^JOBS = .*/JOBS = 1/' "$TGPT_TOP/pipelines/experiment.conf" > conf
exits_with 0 "the experiment runs to its report" make -s -f "$mk" EXP=e CONFIG="$T_DIR/conf"
ok "report written" test -s e/report.md
like e/report.md '^\| tgpt fine-tuned from pre-training \| [0-9.]+ \| [0-9.]+ \|' "report has the classifier's macro-F1 and accuracy"
like e/report.md '^\| tgpt fine-tuned from random parameters \(no pre-training\) \| [0-9.]+ \| [0-9.]+ \|' \
	"... and the ablation's, fine-tuned from random parameters"
like e/report.md 'fine-tuned from the model pre-trained in this experiment' "... saying where from"
like e/report.md '^\| realism-eval --baseline' "report has the baseline"
like e/report.md '^Discriminator \(real vs generated\) macro-F1: [0-9.]+' "report has the discriminator F1"
like e/report.md '^\| pkt_len \| [0-9.]+' "report has the per-field JSD"
like e/report.md '^\| valid packets \(realism-eval\) \| ([0-9]+) of \1 \(100%\) \| ' \
	"the grammar's packets all valid, raw's beside"
like e/report.md '^\| generated flows that regroup alone \(pcap2flow\) \| 6 of 6 \(100%\) \| ' \
	"each of the grammar's 6 flows regroups alone"
like e/report.md '^\| tshark: malformed packets / error expert infos \| ' "tshark's verdict, both modes"
ok "plots written" sh -c 'ls e/plots/*.png >/dev/null'
steps='preprocess|tokshard|tgpt-train|tgpt-infer|tok2pcap|jsdiv|realism-eval|report.sh'
run make -f "$mk" EXP=e
is "$(grep -cE "$steps" out)" 0 "a second make runs no step"
sed -i 's/^GEN_N = .*/GEN_N = 7/' e/config.mk
run make -f "$mk" EXP=e
is "$RC" 0 "the rerun after a change of GEN_N succeeds"
[ "$RC" = 0 ] || tail -5 err | sed "s/^/#   /"
like out 'tgpt-infer generate' "after a change of GEN_N generation reruns"
like out 'report.sh' "... and the report"
! grep -q 'tgpt-train' out; t_result $? "... but not the training"
# PRETRAINED: fine-tuning starts from a model made elsewhere; nothing is
# pre-trained here.
exits_with 0 "PRETRAINED = a model: the classification runs" \
	make -f "$mk" EXP=p CONFIG="$T_DIR/conf" PRETRAINED=e/model.ckpt classification
! grep -q -- 'tgpt-train.*--preset' out; t_result $? "... pre-training nothing"
like out 'tgpt-train .*--finetune e/model.ckpt --labels' "... fine-tuning PRETRAINED"
like out 'tgpt-train .*--finetune e/model.ckpt --labels.*--random-init' "... and its ablation"
like p/classification.md 'fine-tuned from the pre-trained model `e/model.ckpt`' "the report names it"
exits_with 2 "PRETRAINED = no file: an error" \
	make -f "$mk" EXP=p CONFIG="$T_DIR/conf" PRETRAINED=nosuch.ckpt classification
like err 'PRETRAINED = nosuch.ckpt: no such file' "... saying so"
# CONDITIONAL = 1: conditional pre-training, generation split over the labels.
sed -e 's/^CONDITIONAL = .*/CONDITIONAL = 1/' -e 's/^GEN_N = .*/GEN_N = 5/' conf > conf-cond
exits_with 0 "CONDITIONAL = 1 runs to the generated capture" \
	make -s -f "$mk" EXP=c CONFIG="$T_DIR/conf-cond" c/gen.pcap
exits_with 0 "--info reads its model" tgpt-train --info c/model.ckpt
like out '^conditional 1$' "pre-training was class-conditional"
if command -v mpdump >/dev/null; then
	is "$(mpdump < c/gen.tok | grep -c '"label":"dns"') $(mpdump < c/gen.tok | grep -c '"label":"ntp"')" \
		"3 2" "the 5 flows split over the two labels"
else
	skip "mpdump absent"
fi
# Labels flow by flow from a flow table (nDPI's layout, made here from the
# captures' own IPv4 flows: label the capture's name, two dns flows "rare",
# three http flows matched by port only), the classifier's flows selected
# (labelled only, at most 30 per capture and label, labels of 5 flows or
# more) and the baseline on the classifier's shards.
mkdir -p caps2/pcap && cp "$TGPT_TOP/examples/data/dns.pcap" "$TGPT_TOP/examples/data/http.pcap" caps2/pcap/
table=caps2/flow_labels.tsv
printf 'pcap\tflow_idx\tl4\tsrc\tdir\tdst\tvlan\tndpi_proto\tmaster\tapp\tcategory\tconfidence\tpkts\tbytes\n' > $table
ip4() { printf '%d.%d.%d.%d' $((16#${1:2:2})) $((16#${1:4:2})) $((16#${1:6:2})) $((16#${1:8:2})); }
for c in dns http; do
	i=0
	pcap2flow -q caps2/pcap/$c.pcap | mpdump | grep '"t":"flow"' |
		jq -r 'select(.ip_version == 4) | [.proto, .src_ip, .src_port, .dst_ip, .dst_port] | @tsv' |
	while IFS=$'\t' read -r proto sip sport dip dport; do
		i=$((i + 1)) label=$c conf=DPI
		[ $c = dns ] && [ $i -le 2 ] && label=rare
		[ $c = http ] && [ $i -le 3 ] && conf="Match by port"
		printf 'pcap/%s.pcap\t%d\t%s\t%s:%s\t<->\t%s:%s\t\tX\tX\tX\t%s\t%s\t1\t1\n' $c $i \
			$([ "$proto" = 6 ] && echo TCP || echo UDP) "$(ip4 $sip)" $sport "$(ip4 $dip)" $dport "$label" "$conf"
	done >> $table
done
sed -e "s|^CAPTURES = .*|CAPTURES = $T_DIR/caps2/pcap|" -e "s|^LABELS = .*|LABELS =|" \
    -e 's/^STEPS = .*/STEPS = 10/' -e 's/^FT_STEPS = .*/FT_STEPS = 10/' -e 's/^GEN_N = .*/GEN_N = 6/' \
    -e 's/^CONTEXT = .*/CONTEXT = 512/' -e 's/^FT_WINDOW = .*/FT_WINDOW = 256/' -e 's/^GEN_MAX_TOKENS = .*/GEN_MAX_TOKENS = 600/' \
    -e 's/^JOBS = .*/JOBS = 1/' -e 's|^SPLIT = .*|SPLIT = 60/20/20|' "$TGPT_TOP/pipelines/experiment.conf" > conf2
printf '%s\n' "FLOW_TABLE = $T_DIR/$table" "LABEL_COLUMN = category" "LABEL_FILTER = confidence=DPI" \
	"LABELLED_ONLY = yes" "MAX_PER_SOURCE_LABEL = 30" "MIN_LABEL_FLOWS = 5" "BASELINE_SPLIT = shards" >> conf2
exits_with 0 "the experiment with a flow table, a selection and the baseline on the shards" \
	make -s -f "$mk" EXP=e2 CONFIG="$T_DIR/conf2"
split=e2/shards-clf/split.tsv
is "$(awk -F'\t' '!/^#/ { print $4 }' $split | sort -u | tr '\n' ' ')" "dns http " \
   "the classifier's labels: the table's, less the rare one, no unlabelled flow"
is "$(awk -F'\t' '!/^#/ { n[$2 FS $4]++ } END { for (k in n) if (n[k] > 30) print k }' $split)" "" \
   "at most 30 flows of a label from a capture"
like e2/shards-clf.log 'rare 2' "the log names the label left out"
ok "the flow streams are kept" test -s e2/flows/http.flows
is "$(jq .test e2/baseline.json)" "$(awk -F'\t' '$1 == "test"' $split | wc -l)" "the baseline tests the shards' test flows"
is "$(jq -r .split e2/baseline.json)" file "on the shards' split"
is "$(jq .labelled e2/classify.json)" "$(awk -F'\t' '$1 == "test"' $split | wc -l)" "so does tgpt"
like e2/report.md '^\| realism-eval --baseline \(XGBoost, flow statistics\) \| [0-9.]+ \| [0-9.]+ \| [0-9]+ \| 2 \| shards \(split.tsv\) \|' \
     "the report's baseline row: flows, labels, split"
is "$(jq .test e2/baseline-bytes.json) $(jq -r .feature_set e2/baseline-bytes.json)" \
   "$(awk -F'\t' '$1 == "test"' $split | wc -l) bytes" "the byte baseline tests the same flows"
like e2/report.md '^\| realism-eval --baseline --features bytes \(XGBoost, first 96 bytes of 8 packets\) \| [0-9.]+ \| [0-9.]+ \| [0-9]+ \| 2 \| shards' \
     "the report's byte baseline row"
like e2/report.md '^Classifier data: 2 labels; flows: train [0-9]+, val [0-9]+, test [0-9]+' "and the data"

# A test corpus of its own (TEST_CAPTURES): trained on dns, ntp and http
# captures labelled by nDPI (master protocol), tested on other folders'
# captures that label-ndpi labels: dns and http are scored, ssh is a label
# the classifier does not know, counted as left out.
if command -v ndpiReader >/dev/null; then
	mkdir -p x/train x/test/b x/test/c
	cp "$TGPT_TOP"/examples/data/{dns,ntp,http}.pcap x/train/
	cp "$TGPT_TOP"/examples/data/{dns,http}.pcap x/test/b/ && cp "$TGPT_TOP"/examples/data/ssh.pcap x/test/c/
	"$TGPT_TOP/pipelines/label-ndpi" -q -o x/train.tsv x/train
	sed -e "s|^CAPTURES = .*|CAPTURES = $T_DIR/x/train|" -e "s|^LABELS = .*|LABELS =|" \
	    -e 's/^SPLIT_GROUP = .*/SPLIT_GROUP = flow/' -e 's|^SPLIT = .*|SPLIT = 80/20/50|' conf > conf3
	printf '%s\n' "FLOW_TABLE = $T_DIR/x/train.tsv" "LABEL_COLUMN = master" "LABEL_FILTER = confidence=DPI" \
		"LABELLED_ONLY = yes" "MAX_PER_SOURCE_LABEL = 30" "MIN_LABEL_FLOWS = 5" "BASELINE_SPLIT = shards" \
		"TEST_CAPTURES = $T_DIR/x/test/b $T_DIR/x/test/c" >> conf3
	exits_with 0 "the cross-source classification: TEST_CAPTURES" make -s -f "$mk" EXP=e3 CONFIG="$T_DIR/conf3" classification
	is "$(awk -F'\t' '$1 == "test"' e3/shards-clf/split.tsv | wc -l)" 0 "the training captures' split has no test side"
	tsplit=e3/shards-test/split.tsv
	is "$(awk -F'\t' '$1 == "test" { print $4 }' $tsplit | sort | uniq -c | awk '{ print $2 "=" $1 }' | paste -sd' ' -)" \
	   "DNS=30 HTTP=30 SSH=30" "the test corpus's flows, labelled by label-ndpi, at most 30 per capture and label"
	is "$(jq .labelled e3/classify.json) $(jq .test e3/baseline.json) $(jq .test e3/baseline-bytes.json)" "60 60 60" \
	   "tgpt and both baselines score the same 60 flows of the labels they know"
	like e3/classification.md '^\| SSH \| 30 \| 0 \| 30 \|' "the report counts ssh's flows as left out"
	like e3/classification.md '^\| DNS \| [0-9]+ \| 30 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|' "per-label F1 of the three classifiers"
	like e3/classification.md '^\| true \\ predicted \|' "the confusion matrices"
	like e3/classification.md '^    agree: [0-9]+ \(100\.0 %\)' "nDPI's agreement with itself (the same release here)"
else
	skip "ndpiReader absent (Debian libndpi-bin, make deps): no cross-source run"
fi
done_testing
