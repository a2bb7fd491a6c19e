#!/usr/bin/env bash
# report.t: pipelines/report.sh writes the experiment's report from the JSON
# the evaluators wrote: shares as counts of a whole with a percentage ("3 of
# 4 (75%)", not a bare fraction that reads as a count), and the title given
# (TITLE), or the experiment directory's name.
. "$TGPT_TOP/tests/lib.sh"
need_tools jq

mkdir -p exp/mine
e=exp/mine
printf 'PRESET = tiny\nSEED = 1\n' > $e/config.mk
echo '{"macro_f1":0.5,"accuracy":0.75,"labelled":8,"per_class":[{"support":4},{"support":4}]}' > $e/classify.json
echo '{"macro_f1":0.6,"accuracy":0.7,"test":8,"split":"time","classes":[{"test":8}]}' > $e/baseline.json
echo '{"fields":[{"field":"pkt_len","jsd":0.1,"tvd":0.2,"hellinger":0.3}],"mean_jsd_packet":0.1,"mean_jsd_flow":0.2}' > $e/jsdiv.json
echo '{"f1":0.9,"f1_std":0.01,"validity":1,"tcp_valid":0,
  "generated":{"packets":4,"valid_packets":3,"tcp_flows":2,"tcp_coherent":0}}' > $e/realism.json

exits_with 0 "report.sh writes a report" "$TGPT_TOP/pipelines/report.sh" $e
like out '^# Experiment: mine$' "titled by the experiment's directory"
like out '^Valid generated packets: 3 of 4 \(75%\); coherent generated TCP flows: 0 of 2 \(0%\)\.$' \
	"validity as a count of the whole and a percentage"
! grep -q ' of generated packets are valid' out; t_result $? "... not a bare fraction"
exits_with 0 "TITLE names it" env TITLE="the demo" "$TGPT_TOP/pipelines/report.sh" $e
like out '^# Experiment: the demo$' "... in the title"
ok "no ablation row without classify-scratch.json" sh -c '! grep -q "from random parameters (no" out'
cp $e/classify.json $e/classify-scratch.json
sed -i 's/"macro_f1":0.5/"macro_f1":0.25/' $e/classify-scratch.json
exits_with 0 "PRETRAINED names the model" env PRETRAINED=models/m.ckpt "$TGPT_TOP/pipelines/report.sh" $e
like out 'fine-tuned from the pre-trained model `models/m.ckpt`' "... in the report"
like out '^\| tgpt fine-tuned from random parameters \(no pre-training\) \| 0\.25 \| 0\.75 \| 8 \| 2 \|' \
	"the ablation's row from classify-scratch.json"
# the demo gives its experiment a title, not its directory's "exp"
grep -q 'TITLE=' "$TGPT_TOP/examples/demo.sh"; t_result $? "the demo titles its experiment"

done_testing
