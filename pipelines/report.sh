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
# The experiment's name: TITLE (experiment.mk passes the config's), else its
# directory's.
title=${TITLE:-$(basename "$exp")}
command -v jq >/dev/null || { echo "report.sh: jq is needed (make deps)" >&2; exit 69; }
j() { jq -r "$1" "$exp/$2"; }
num() { jq -r "$1 | if . == null then \"-\" else (. * 10000 | round / 10000 | tostring) end" "$exp/$2"; }
# "K of N (P%)": a count of a whole, from two JSON paths of FILE.
share() { jq -r "[$1, $2] | \"\\(.[0]) of \\(.[1])\" + (if .[1] > 0 then \" (\\(.[0] * 1000 / .[1] | round / 10)%)\" else \"\" end)" "$exp/$3"; }
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
# Experiment: $title

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

cat <<MD

## Generation

Valid generated packets: $(share .generated.valid_packets .generated.packets realism.json); coherent generated TCP flows: $(share .generated.tcp_coherent .generated.tcp_flows realism.json).
Discriminator (real vs generated) macro-F1: $(num .f1 realism.json) ± $(num .f1_std realism.json) (0.5 = indistinguishable; paper 12k: 0.6683 ± 0.0232).

| field | JSD | TVD | Hellinger |
|---|---|---|---|
$(jq -r '.fields[] | "| \(.field) | \(.jsd // "-") | \(.tvd // "-") | \(.hellinger // "-") |"' "$exp/jsdiv.json")

Mean JSD: packet fields $(num .mean_jsd_packet jsdiv.json) (paper 12k: 0.1605), flow fields $(num .mean_jsd_flow jsdiv.json) (paper 12k: 0.2396).

Histograms: \`$exp/plots/\`.
MD
