#!/usr/bin/env bash
# report.sh: EXP/report.md from the JSON the evaluators wrote (classify.json,
# baseline.json, jsdiv.json, realism.json), with the paper's published values
# beside ours (paper section 4, TrafficGPT 12k). With --classification, the
# classification part alone (classify.json, baseline.json): it does not wait
# for generation.
set -euo pipefail
only_clf=0
[ "${1:-}" = --classification ] && { only_clf=1; shift; }
exp=${1:?usage: report.sh [--classification] EXPDIR}
command -v jq >/dev/null || { echo "report.sh: jq is needed (make deps)" >&2; exit 69; }
j() { jq -r "$1" "$exp/$2"; }
num() { jq -r "$1 | if . == null then \"-\" else (. * 10000 | round / 10000 | tostring) end" "$exp/$2"; }
# What tokshard's selection left out of the classifier's flows, and the
# flows and labels per split (shards-clf/labels.tsv), when there was one.
selection() {
	local log="$exp/shards-clf.log" labels="$exp/shards-clf/labels.tsv"
	[ -f "$labels" ] || return 0
	awk -F'\t' '!/^#/ { n++; for (s = 3; s <= 5; s++) f[s] += $s }
		END { printf "Classifier data: %d labels; flows: train %d, val %d, test %d.\n", n, f[3], f[4], f[5] }' "$labels"
	if [ -f "$log" ] && grep -q 'left out' "$log"; then
		echo
		grep 'left out' "$log" | sed 's/^tokshard: /- /'
	fi
}

cat <<MD
# Experiment $(basename "$exp")

Configuration: \`$exp/config.mk\`
($(grep -E '^(PRESET|CONTEXT|STEPS|FT_STEPS|FT_WINDOW|GEN_N|SEED|SPLIT|SPLIT_GROUP|LABEL_COLUMN|LABEL_FILTER|LABELLED_ONLY|MAX_PER_SOURCE_LABEL|MIN_LABEL_FLOWS|BASELINE_SPLIT) ' "$exp/config.mk" | tr -s ' ' | paste -sd, - | sed 's/,/, /g')).

## Classification (test split)

| classifier | macro-F1 | accuracy | test flows | labels | split |
|---|---|---|---|---|---|
| tgpt fine-tuned | $(num .macro_f1 classify.json) | $(num .accuracy classify.json) | $(j .labelled classify.json) | $(j '[.per_class[] | select(.support > 0)] | length' classify.json) | shards |
| realism-eval --baseline (XGBoost) | $(num .macro_f1 baseline.json) | $(num .accuracy baseline.json) | $(j .test baseline.json) | $(j '[.classes[] | select(.test > 0)] | length' baseline.json) | $(j 'if .split == "file" then "shards (split.tsv)" else "own (" + .split + ")" end' baseline.json) |

Test flows: the flows scored (tgpt: those whose label the classifier knows).
Labels: those with test flows. Macro-F1 is the mean F1 over the labels that
occur in the test split as truth or as prediction.
$(selection)
MD
[ "$only_clf" = 1 ] && exit 0

# The raw side's numbers (its JSON may hold only an error: then "-").
rawnum() { jq -r "if .error then \"-\" else ($1 | if . == null then \"-\" else (. * 10000 | round / 10000 | tostring) end) end" "$exp/$2"; }
# "alone of records (share)" from a realism JSON.
regrouped() {
	jq -r 'if .error then "- (" + (.error | split("\n")[0] | sub("^realism-eval: "; "")) + ")"
		elif .gen_records == null then "-"
		else "\(.gen_alone) of \(.gen_records) (\(.regrouped * 10000 | round / 10000))" end' "$exp/$1"
}
capflows() { jq -r 'if .error then "-" else .generated.flows end' "$exp/$1"; }
f1() { jq -r 'if .error or .f1 == null then "-" else "\(.f1 * 10000 | round / 10000) ± \(.f1_std * 10000 | round / 10000)" end' "$exp/$1"; }
tshark() {
	jq -r 'if .packets == null then "- (no tshark)"
		else "\(.malformed) / \(.errors)" + (if .errors > 0 then " (" + ([.by_protocol | to_entries[] | "\(.key) \(.value)"] | join(", ")) + ")" else "" end) end' "$exp/$1"
}
# A field's JSD in a jsdiv JSON ("-" when absent or failed).
field_jsd() { jq -r --arg f "$1" 'if .error then "-" else ([.fields[] | select(.field == $f) | .jsd][0] // "-") end' "$exp/$2"; }
gen_n=$(sed -n 's/^GEN_N *= *//p' "$exp/config.mk")

cat <<MD

## Generation

${gen_n} flows per mode from the same model, seed and prompts: the decoding
grammar (tgpt-infer generate's default) and free sampling with packet checks
(\`--raw\`), against the real flows.

| | grammar | raw (\`--raw\`) | paper 12k |
|---|---|---|---|
| valid packets (realism-eval) | $(num .validity realism.json) | $(rawnum .validity realism-raw.json) | - |
| generated flows that regroup alone (pcap2flow) | $(regrouped realism.json) | $(regrouped realism-raw.json) | - |
| flows pcap2flow makes of the capture | $(capflows realism.json) | $(capflows realism-raw.json) | - |
| TCP flows coherent | $(num .tcp_valid realism.json) | $(rawnum .tcp_valid realism-raw.json) | - |
| discriminator macro-F1 (0.5 = indistinguishable) | $(f1 realism.json) | $(f1 realism-raw.json) | 0.6683 ± 0.0232 |
| mean JSD, packet fields | $(num .mean_jsd_packet jsdiv.json) | $(rawnum .mean_jsd_packet jsdiv-raw.json) | 0.1605 |
| mean JSD, flow fields | $(num .mean_jsd_flow jsdiv.json) | $(rawnum .mean_jsd_flow jsdiv-raw.json) | 0.2396 |
| tshark: malformed packets / error expert infos | $(tshark tshark.json) | $(tshark tshark-raw.json) | - |

$(num .validity realism.json) of generated packets are valid; $(num .tcp_valid realism.json) of generated TCP flows are coherent.
Discriminator (real vs generated) macro-F1: $(num .f1 realism.json) ± $(num .f1_std realism.json) (0.5 = indistinguishable; paper 12k: 0.6683 ± 0.0232).

| field | JSD | TVD | Hellinger | JSD raw |
|---|---|---|---|---|
$(jq -r '.fields[] | "\(.field)\t\(.jsd // "-")\t\(.tvd // "-")\t\(.hellinger // "-")"' "$exp/jsdiv.json" |
	while IFS=$'\t' read -r f jsd tvd hel; do
		echo "| $f | $jsd | $tvd | $hel | $(field_jsd "$f" jsdiv-raw.json) |"
	done)

Mean JSD: packet fields $(num .mean_jsd_packet jsdiv.json) (paper 12k: 0.1605), flow fields $(num .mean_jsd_flow jsdiv.json) (paper 12k: 0.2396).

Histograms: \`$exp/plots/\`.
MD
