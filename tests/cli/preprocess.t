#!/usr/bin/env bash
# preprocess.t: pipelines/preprocess turns a directory of captures into token
# files and shards with GNU Parallel; two local jobs, the host list with this
# machine only, and one serial job all give the same bytes; a damaged capture
# fails its job with 65 and --resume-failed runs only what failed.
. "$TGPT_TOP/tests/lib.sh"
pp="$TGPT_TOP/pipelines/preprocess"
if ! command -v parallel >/dev/null || ! command -v tokshard >/dev/null; then
	echo "1..0 # skip GNU Parallel or the tools are missing"; exit 0
fi
ex="$TGPT_TOP/examples"
shard_args="--split 80/10/10 --group flow --context 4096"

exits_with 0 "--help" "$pp" --help
like out '^usage: preprocess' "usage on stdout"
exits_with 64 "a bad option is a usage error" "$pp" --bogus
exits_with 66 "a missing input directory" "$pp" /nonexistent out

exits_with 0 "serial run (one job)" "$pp" -q -j 1 --labels "$ex/labels.tsv" --shard-args "$shard_args" "$ex" serial
exits_with 0 "two local jobs" "$pp" -q -j 2 --labels "$ex/labels.tsv" --shard-args "$shard_args" "$ex" par
echo ':' > hosts
exits_with 0 "through --sshloginfile with this machine only" "$pp" -q -j 2 --sshloginfile hosts --labels "$ex/labels.tsv" --shard-args "$shard_args" "$ex" ssh
n=$(cut -f1 "$ex/labels.tsv" | grep -c .)
is "$(find serial/tok -name '*.tok' | wc -l)" "$n" "one token file per capture"
ok "two jobs give the same token files as one" diff -r serial/tok par/tok
ok "the host list gives the same token files" diff -r serial/tok ssh/tok
for s in train val test; do
	ok "$s shard identical (parallel)" cmp serial/shards/$s.shard par/shards/$s.shard
	ok "$s shard identical (host list)" cmp serial/shards/$s.shard ssh/shards/$s.shard
done
is "$(awk -F'\t' 'NR > 1 { print $2 }' ssh/joblog | sort -u)" ":" "the joblog names the host of every job"
# The label comes from the labels file: the http capture's flows say http.
ok "labels reach the token records" sh -c "mpdump -k label serial/tok/data/http.tok | grep -q http"

# Folder labels: a capture in folder dns/ is labelled dns.
mkdir -p byfolder/dns byfolder/ntp
cp "$ex/data/dns.pcap" byfolder/dns/a.pcap
cp "$ex/data/ntp.pcap" byfolder/ntp/b.pcap
exits_with 0 "folder names as labels" "$pp" -q --no-shards byfolder fl
ok "... the dns folder's flows carry dns" sh -c "mpdump -k label fl/tok/dns/a.tok | grep -q dns"

# A damaged capture: its job fails with 65 and halts the run; what ran
# before it is done.
mkdir -p dmg/good dmg/zbad
cp "$ex/data/dns.pcap" dmg/good/a.pcap
head -c 5000 "$ex/data/http.pcap" > dmg/zbad/b.pcap
exits_with 65 "a damaged capture fails the run with 65" "$pp" -q -j 1 --no-shards dmg dout
like err 'joblog' "the message points at the joblog"
ok "the capture before it was done" test -s dout/tok/good/a.tok
is "$(awk -F'\t' 'NR > 1 && $7 == 65' dout/joblog | wc -l)" 1 "the joblog records exit 65 for the damaged one"
cp "$ex/data/http.pcap" dmg/zbad/b.pcap
exits_with 0 "--resume-failed after the capture is mended" "$pp" -q -j 1 --no-shards --resume-failed dmg dout
is "$(awk -F'\t' 'NR > 1' dout/joblog | wc -l)" 3 "only the failed job ran again (2 + 1 joblog lines)"
ok "its token file is there now" test -s dout/tok/zbad/b.tok
done_testing
