#!/usr/bin/env bash
# demo.sh: the main job on the shipped example captures (make demo): the
# reversible path (every capture to flows and tokens and back, checked packet
# for packet), then the whole experiment of pipelines/experiment.mk.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# the tools and the test helpers (pcapcmp, mpdump): make demo builds both
export PATH="${TGPT_BIN:-$top/bin}:${TGPT_TESTBIN:-$top/build/tests}:$PATH"
out=${DEMO_DIR:-$top/demo}
mkdir -p "$out/flows" "$out/tok" "$out/pcap"
labels="$top/examples/labels.tsv"
[ -f "$labels" ] || { echo "demo: $labels missing (examples/capture.sh makes the data)" >&2; exit 66; }

total_flows=0 total_tokens=0 failures=0
printf '%-10s %8s %8s %10s  %s\n' label packets flows tokens "round trip"
while IFS=$'\t' read -r file label; do
	case $file in ''|'#'*) continue ;; esac
	pcap="$top/examples/$file"
	pcap2flow --all -l "$label" "$pcap" > "$out/flows/$label.flows"
	flow2tok < "$out/flows/$label.flows" > "$out/tok/$label.tok"
	tok2pcap -w "$out/pcap/$label.pcap" < "$out/tok/$label.tok"
	if pcapcmp "$pcap" "$out/pcap/$label.pcap" > "$out/pcap/$label.cmp" 2>&1; then verdict=identical
	else verdict="DIFFERS ($(cat "$out/pcap/$label.cmp"))"; failures=$((failures + 1)); fi
	packets=$(sed -n 's/^packets \([0-9]*\).*/\1/p' "$out/pcap/$label.cmp")
	flows=$(mpdump -k t "$out/flows/$label.flows" | grep -c flow)
	tokens=$(( $(stat -c %s "$out/tok/$label.tok") / 2 ))
	total_flows=$((total_flows + flows)) total_tokens=$((total_tokens + tokens))
	printf '%-10s %8s %8s %10s  %s\n' "$label" "$packets" "$flows" "~$tokens" "$verdict"
done < "$labels"
echo "demo: $total_flows flows, ~$total_tokens tokens, $failures captures that did not round-trip; outputs in $out"
[ "$failures" = 0 ] || exit 1

# The whole experiment on the same captures: pretraining, fine-tuning,
# classification against the classical baseline, generation and its
# evaluation (pipelines/experiment.mk; tiny preset, minutes on 2 cores).
echo "demo: the experiment (pretrain, fine-tune, classify, generate, evaluate) in $out/exp ..."
make --no-print-directory -s -f "$top/pipelines/experiment.mk" EXP="$out/exp" TITLE="the demo (examples/)" >"$out/exp.log" 2>&1 ||
	{ tail -20 "$out/exp.log" >&2; echo "demo: the experiment failed; log: $out/exp.log" >&2; exit 1; }
r=$out/exp/report.md
echo "demo: report $r"
grep -E '^\| tgpt fine-tuned|^\| realism-eval|^\| \||^\|---\|---\|---\|---\|$|^\| (valid packets|generated flows|flows pcap2flow|TCP flows|discriminator|mean JSD|tshark)' "$r"
