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

# The byte baseline's row, when it ran (experiments from before it have none).
bytes_row() {
	[ -f "$exp/baseline-bytes.json" ] || return 0
	echo "| realism-eval --baseline --features bytes (XGBoost, first $(j .first_bytes baseline-bytes.json) bytes of $(j .first_packets baseline-bytes.json) packets) | $(num .macro_f1 baseline-bytes.json) | $(num .accuracy baseline-bytes.json) | $(j .test baseline-bytes.json) | $(j '[.classes[] | select(.test > 0)] | length' baseline-bytes.json) | $(j 'if .split == "file" then "shards (split.tsv)" else "own (" + .split + ")" end' baseline-bytes.json) |"
}

# A tgpt classifier's row (tgpt-infer classify's JSON), when it ran.
tgpt_row() { # NAME FILE
	[ -f "$exp/$2" ] || return 0
	echo "| $1 | $(num .macro_f1 "$2") | $(num .accuracy "$2") | $(j .labelled "$2") | $(j '[.per_class[] | select(.support > 0)] | length' "$2") | shards |"
}
# The table's rows: tgpt, the ablation (when it ran), the baselines; no
# blank line between them, which would end the table.
clf_rows() {
	tgpt_row "tgpt fine-tuned from pre-training" classify.json
	tgpt_row "tgpt fine-tuned from random parameters (no pre-training)" classify-scratch.json
	echo "| realism-eval --baseline (XGBoost, flow statistics) | $(num .macro_f1 baseline.json) | $(num .accuracy baseline.json) | $(j .test baseline.json) | $(j '[.classes[] | select(.test > 0)] | length' baseline.json) | $(j 'if .split == "file" then "shards (split.tsv)" else "own (" + .split + ")" end' baseline.json) |"
	bytes_row
}

# What the classifier was fine-tuned from: PRETRAINED (experiment.mk passes
# it), or the model pre-trained in the experiment.
pretrained_from() {
	if [ -n "${PRETRAINED:-}" ]; then echo "the pre-trained model \`$PRETRAINED\`"
	else echo "the model pre-trained in this experiment (\`$exp/model.ckpt\`)"; fi
}

# A confusion matrix as a table: labels (JSON array) and rows (array of
# arrays), only the labels that occur as truth or prediction.
confusion_table() { # JSON-FILE LABELS-EXPR ROWS-EXPR
	jq -c "{l: ($2), m: ($3)}" "$exp/$1" | jq -r '.l as $l | .m as $m |
		[range(0; $l | length) | select(. as $i | ($m[$i] | add) > 0 or ([$m[][$i]] | add) > 0)] as $k |
		"| true \\ predicted | " + ([$k[] | $l[.]] | join(" | ")) + " |",
		"|---|" + ([$k[] | "---|"] | join("")),
		($k[] as $t | "| " + $l[$t] + " | " + ([$k[] as $p | $m[$t][$p] | tostring] | join(" | ")) + " |")'
}

# The test corpus of the cross-source task (TEST_CAPTURES): where its labels
# came from, what was left out, the scores per label and the confusions.
cross_source() {
	[ -f "$exp/shards-test/labels.tsv" ] || return 0
	local known="$exp/known-labels.txt"
	awk -F'\t' '!/^#/ { print $2 }' "$exp/shards-clf/labels.tsv" | sort > "$known"
	echo
	echo "## Test corpus (cross-source)"
	echo
	echo "Test captures (TEST_CAPTURES): $(ls "$exp/test-captures" | paste -sd' ' - | sed 's/ /, /g'):" \
		"$(find -L "$exp/test-captures" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) | wc -l) captures."
	if [ -f "$exp/test-label.log" ]; then
		echo "Labels: $(grep -E '^label-ndpi: [0-9]+ captures' "$exp/test-label.log" | sed 's/^label-ndpi: //')."
	fi
	[ -f "$exp/test-damaged.txt" ] && echo "Damaged captures (flows before the damage kept): $(wc -l < "$exp/test-damaged.txt")."
	if grep -q 'left out' "$exp/shards-test.log" 2>/dev/null; then
		echo
		grep 'left out' "$exp/shards-test.log" | sed 's/^tokshard: /- /'
	fi
	echo
	echo "Test flows per label after that selection, and those left out of the scores"
	echo "because the classifier was not trained on their label:"
	echo
	echo "| label | test flows | scored | left out |"
	echo "|---|---|---|---|"
	awk -F'\t' -v known="$known" 'BEGIN { while ((getline l < known) > 0) k[l] = 1 }
		!/^#/ && $5 > 0 { s = ($2 in k); printf "| %s | %d | %d | %d |\n", $2, $5, s ? $5 : 0, s ? 0 : $5;
			n += $5; if (s) sc += $5; else lo += $5 }
		END { printf "| **all** | %d | %d | %d |\n", n, sc, lo }' "$exp/shards-test/labels.tsv"
	echo
	echo "F1 per label on the scored test flows (train: the classifier's training flows):"
	echo
	echo "| label | train | test | tgpt | flow statistics | first bytes |"
	echo "|---|---|---|---|---|---|"
	jq -r --slurpfile s "$exp/baseline.json" --slurpfile b "$exp/baseline-bytes.json" '
		def f(x): if x == null then "-" else (x * 1000 | round / 1000 | tostring) end;
		. as $t | [range(0; $t.labels | length) | select($t.per_class[.].support > 0)] as $k |
		$k[] as $i | $t.labels[$i] as $name |
		($s[0].classes[] | select(.label == $name)) as $sc |
		($b[0].classes[] | select(.label == $name)) as $bc |
		"| \($name) | \($sc.train) | \($t.per_class[$i].support) | \(f($t.per_class[$i].f1)) | \(f($sc.f1)) | \(f($bc.f1)) |"' \
		"$exp/classify.json"
	echo
	echo "Confusion of tgpt (rows: true label, columns: predicted):"
	echo
	confusion_table classify.json .labels .confusion
	echo
	echo "Confusion of the flow-statistics baseline:"
	echo
	confusion_table baseline.json '[.classes[].label]' .confusion
	echo
	echo "Confusion of the first-bytes baseline:"
	echo
	confusion_table baseline-bytes.json '[.classes[].label]' .confusion
	if [ -f "$exp/ndpi-agreement.txt" ]; then
		echo
		echo "nDPI's agreement with itself across versions: the training captures labelled"
		echo "by $(head -1 "$exp/ndpi-agreement.txt") against the training table's labels (master"
		echo "protocol, flows both call DPI; \`pipelines/ndpi-agreement\`):"
		echo
		tail -n +2 "$exp/ndpi-agreement.txt" | sed 's/^/    /'
	fi
}

cat <<MD
# Experiment: $title

Configuration: \`$exp/config.mk\`
($(grep -E '^(PRETRAINED|PRESET|CONTEXT|STEPS|FT_STEPS|FT_WINDOW|FT_DROPOUT|GEN_N|SEED|SPLIT|SPLIT_GROUP|LABEL_COLUMN|LABEL_FILTER|LABELLED_ONLY|MAX_PER_SOURCE_LABEL|MIN_LABEL_FLOWS|BASELINE_SPLIT|BYTES_PACKETS|BYTES_PER_PACKET) ' "$exp/config.mk" | tr -s ' ' | paste -sd, - | sed 's/,/, /g')).

## Classification (test split)

| classifier | macro-F1 | accuracy | test flows | labels | split |
|---|---|---|---|---|---|
$(clf_rows)

tgpt was fine-tuned from $(pretrained_from); the row "from random
parameters" is the same fine-tuning (data, steps, schedule, seed) without it.
Test flows: the flows scored (tgpt: those whose label the classifier knows).
Labels: those with test flows. Macro-F1 is the mean F1 over the labels that
occur in the test split as truth or as prediction.
$(selection)
$(cross_source)
MD
[ "$only_clf" = 1 ] && exit 0

# The generation table's cells, of either mode's JSON: "-" when the file is
# absent or holds only an error (a mode whose output was empty).
cell() { # FILE JQ-EXPR
	[ -f "$exp/$1" ] || { echo -; return; }
	jq -r "if .error then \"-\" else ($2) end" "$exp/$1"
}
round4='if . == null then "-" else (. * 10000 | round / 10000 | tostring) end'
gnum() { cell "$2" "$1 | $round4"; }
# "K of N (P%)", like share, of either mode's JSON.
gshare() { cell "$3" "[$1, $2] | if .[0] == null or .[1] == null then \"-\" else \"\\(.[0]) of \\(.[1])\" + (if .[1] > 0 then \" (\\(.[0] * 1000 / .[1] | round / 10)%)\" else \"\" end) end"; }
# The error of a mode whose output was empty, in the regrouped row.
gen_error() { [ -f "$exp/$1" ] && jq -r 'if .error then " (" + (.error | split("\n")[0] | sub("^realism-eval: "; "")) + ")" else "" end' "$exp/$1" || true; }
f1() { cell "$1" 'if .f1 == null then "-" else "\(.f1 * 10000 | round / 10000) ± \(.f1_std * 10000 | round / 10000)" end'; }
tshark() {
	cell "$1" 'if .packets == null then "- (no tshark)"
		else "\(.malformed) / \(.errors)" + (if .errors > 0 then " (" + ([.by_protocol | to_entries[] | "\(.key) \(.value)"] | join(", ")) + ")" else "" end) end'
}
# A field's JSD in a jsdiv JSON ("-" when absent or failed).
field_jsd() { cell "$2" "[.fields[] | select(.field == \"$1\") | .jsd][0] // \"-\""; }
gen_n=$(sed -n 's/^GEN_N *= *//p' "$exp/config.mk")

cat <<MD

## Generation

${gen_n:-The} flows per mode from the same model, seed and prompts: the decoding
grammar (tgpt-infer generate's default) and free sampling with packet checks
(\`--raw\`), against the real flows.

| | grammar | raw (\`--raw\`) | paper 12k |
|---|---|---|---|
| valid packets (realism-eval) | $(gshare .generated.valid_packets .generated.packets realism.json) | $(gshare .generated.valid_packets .generated.packets realism-raw.json) | - |
| generated flows that regroup alone (pcap2flow) | $(gshare .gen_alone .gen_records realism.json)$(gen_error realism.json) | $(gshare .gen_alone .gen_records realism-raw.json)$(gen_error realism-raw.json) | - |
| flows pcap2flow makes of the capture | $(cell realism.json .generated.flows) | $(cell realism-raw.json .generated.flows) | - |
| TCP flows coherent | $(gshare .generated.tcp_coherent .generated.tcp_flows realism.json) | $(gshare .generated.tcp_coherent .generated.tcp_flows realism-raw.json) | - |
| discriminator macro-F1 (0.5 = indistinguishable) | $(f1 realism.json) | $(f1 realism-raw.json) | 0.6683 ± 0.0232 |
| mean JSD, packet fields | $(gnum .mean_jsd_packet jsdiv.json) | $(gnum .mean_jsd_packet jsdiv-raw.json) | 0.1605 |
| mean JSD, flow fields | $(gnum .mean_jsd_flow jsdiv.json) | $(gnum .mean_jsd_flow jsdiv-raw.json) | 0.2396 |
| tshark: malformed packets / error expert infos | $(tshark tshark.json) | $(tshark tshark-raw.json) | - |

Valid generated packets: $(share .generated.valid_packets .generated.packets realism.json); coherent generated TCP flows: $(share .generated.tcp_coherent .generated.tcp_flows realism.json).
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
