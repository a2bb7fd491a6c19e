#!/usr/bin/env bash
# report.sh: EXP/report.md from the JSON the evaluators wrote (classify.json,
# baseline.json, jsdiv.json, realism.json), with the paper's published values
# beside ours (paper section 4, TrafficGPT 12k).
set -euo pipefail
exp=${1:?usage: report.sh EXPDIR}
command -v jq >/dev/null || { echo "report.sh: jq is needed (make deps)" >&2; exit 69; }
j() { jq -r "$1" "$exp/$2"; }
num() { jq -r "$1 | if . == null then \"-\" else (. * 10000 | round / 10000 | tostring) end" "$exp/$2"; }

cat <<MD
# Experiment $(basename "$exp")

Configuration: \`$exp/config.mk\`
($(grep -E '^(PRESET|CONTEXT|STEPS|FT_STEPS|FT_WINDOW|GEN_N|SEED) ' "$exp/config.mk" | tr -s ' ' | paste -sd, - | sed 's/,/, /g')).

## Classification (test split)

| classifier | macro-F1 | accuracy |
|---|---|---|
| tgpt fine-tuned | $(num .macro_f1 classify.json) | $(num .accuracy classify.json) |
| realism-eval --baseline (XGBoost) | $(num .macro_f1 baseline.json) | $(num .accuracy baseline.json) |

## Generation

$(num .validity realism.json) of generated packets are valid; $(num .tcp_valid realism.json) of generated TCP flows are coherent.
Discriminator (real vs generated) macro-F1: $(num .f1 realism.json) ± $(num .f1_std realism.json) (0.5 = indistinguishable; paper 12k: 0.6683 ± 0.0232).

| field | JSD | TVD | Hellinger |
|---|---|---|---|
$(jq -r '.fields[] | "| \(.field) | \(.jsd // "-") | \(.tvd // "-") | \(.hellinger // "-") |"' "$exp/jsdiv.json")

Mean JSD: packet fields $(num .mean_jsd_packet jsdiv.json) (paper 12k: 0.1605), flow fields $(num .mean_jsd_flow jsdiv.json) (paper 12k: 0.2396).

Histograms: \`$exp/plots/\`.
MD
