#!/usr/bin/env bash
# experiment.t: pipelines/experiment.mk runs captures -> report end to end on
# two example captures with a tiny, short configuration, and a second make
# does nothing; changing a generation setting reruns generation and its
# evaluation but not the training; CONDITIONAL = 1 trains a class-conditional
# model and generates flows of each label.
. "$TGPT_TOP/tests/lib.sh"
for t in parallel jq tgpt-train tgpt-infer realism-eval jsdiv; do
	command -v $t >/dev/null || { echo "1..0 # skip $t missing"; exit 0; }
done
mk="$TGPT_TOP/pipelines/experiment.mk"
mkdir -p caps/data && cp "$TGPT_TOP/examples/data/dns.pcap" "$TGPT_TOP/examples/data/ntp.pcap" caps/data/
printf 'data/dns.pcap\tdns\ndata/ntp.pcap\tntp\n' > caps/labels.tsv
sed -e "s|^CAPTURES = .*|CAPTURES = $T_DIR/caps|" -e "s|^LABELS = .*|LABELS = $T_DIR/caps/labels.tsv|" \
    -e 's/^STEPS = .*/STEPS = 20/' -e 's/^FT_STEPS = .*/FT_STEPS = 20/' -e 's/^GEN_N = .*/GEN_N = 4/' \
    -e 's/^CONTEXT = .*/CONTEXT = 512/' -e 's/^GEN_MAX_TOKENS = .*/GEN_MAX_TOKENS = 600/' \
    -e 's/^JOBS = .*/JOBS = 1/' "$TGPT_TOP/pipelines/experiment.conf" > conf
exits_with 0 "the experiment runs to its report" make -s -f "$mk" EXP=e CONFIG="$T_DIR/conf"
ok "report written" test -s e/report.md
like e/report.md '^\| tgpt fine-tuned \| [0-9.]+ \| [0-9.]+ \|' "report has the classifier's macro-F1 and accuracy"
like e/report.md '^\| realism-eval --baseline' "report has the baseline"
like e/report.md '^Discriminator \(real vs generated\) macro-F1: [0-9.]+' "report has the discriminator F1"
like e/report.md '^\| pkt_len \| [0-9.]+' "report has the per-field JSD"
ok "plots written" sh -c 'ls e/plots/*.png >/dev/null'
steps='preprocess|tokshard|tgpt-train|tgpt-infer|tok2pcap|jsdiv|realism-eval|report.sh'
run make -f "$mk" EXP=e
is "$(grep -cE "$steps" out)" 0 "a second make runs no step"
sed -i 's/^GEN_N = .*/GEN_N = 5/' e/config.mk
run make -f "$mk" EXP=e
like out 'tgpt-infer generate' "after a change of GEN_N generation reruns"
like out 'report.sh' "... and the report"
! grep -q 'tgpt-train' out; t_result $? "... but not the training"
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
done_testing
