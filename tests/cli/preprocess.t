#!/usr/bin/env bash
# preprocess.t: pipelines/preprocess turns a directory of captures into token
# files and shards with GNU Parallel; two local jobs, the host list with this
# machine only, and one serial job all give the same bytes; a damaged capture
# fails its job with 65 and --resume-failed runs only what failed.
. "$TGPT_TOP/tests/lib.sh"
pp="$TGPT_TOP/pipelines/preprocess"
need_tools parallel tokshard
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

# Two captures whose names differ only in the extension: each its own
# token and flow files, named with it.
mkdir -p twins
cp "$ex/data/dns.pcap" twins/x.pcap && cp "$ex/data/ntp.pcap" twins/x.cap
exits_with 0 "x.pcap and x.cap in one folder" "$pp" -q -j 2 --no-shards --keep-flows twins tw
is "$(cd tw && find tok flows -type f | sort | paste -sd' ' -)" \
	"flows/x.cap.flows flows/x.pcap.flows tok/x.cap.tok tok/x.pcap.tok" "... get files of their own"
ok "... each of its own capture" sh -c "mpdump tw/tok/x.cap.tok | grep -q 'x.cap\"' && mpdump tw/tok/x.pcap.tok | grep -q 'x.pcap\"'"

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
# --allow-damaged: the damaged capture keeps its flows before the damage.
head -c 5000 "$ex/data/http.pcap" > dmg/zbad/b.pcap
exits_with 0 "--allow-damaged: a damaged capture does not fail the run" \
	"$pp" -j 1 --no-shards --allow-damaged --keep-flows dmg dam
like err '1 damaged captures, their flows before the damage kept' "it is counted"
is "$(cat dam/damaged.txt)" "zbad/b.pcap" "and named in damaged.txt"
pcap2flow -q dmg/zbad/b.pcap > part.flows 2>/dev/null
is "$(mpdump -k id dam/flows/zbad/b.flows | tr '\n' ' ')" "$(mpdump -k id part.flows | tr '\n' ' ')" \
   "its flows before the damage are kept"
ok "... and tokenized" test -s dam/tok/zbad/b.tok
exits_with 0 "without damage" "$pp" -q -j 1 --no-shards --allow-damaged byfolder nodam
ok "no damaged.txt" test ! -e nodam/damaged.txt
# --flow-labels and --keep-flows: labels flow by flow from an nDPI-style
# table (no folder label though the captures sit in pcap/), and the flow
# streams flow2tok read kept beside the token files, same sources and ids.
if command -v mkpcap >/dev/null && command -v mpdump >/dev/null; then
	mkdir -p ft/pcap
	mkpcap udp -w ft/pcap/udp.pcap
	mkpcap tcp -w ft/pcap/tcp.pcap
	{ printf 'pcap\tflow_idx\tl4\tsrc\tdir\tdst\tvlan\tndpi_proto\tmaster\tapp\tcategory\tconfidence\tpkts\tbytes\n'
	  printf 'pcap/udp.pcap\t1\tUDP\t10.0.0.1:45207\t<->\t10.0.0.53:53\t\tDNS\tDNS\tDNS\tNetwork\tDPI\t1\t1\n'
	  printf 'pcap/udp.pcap\t2\tUDP\t10.0.0.2:54999\t<->\t10.0.0.53:53\t\tDNS\tDNS\tDNS\tWeb\tMatch by port\t1\t1\n'
	} > ft/table.tsv
	exits_with 64 "--flow-labels with --folder-labels" "$pp" --flow-labels ft/table.tsv --folder-labels ft fo
	exits_with 66 "a missing flow table exits 66" "$pp" --flow-labels nosuch.tsv ft fo
	exits_with 0 "--flow-labels --keep-flows" "$pp" -q -j 2 --no-shards --flow-labels ft/table.tsv \
		--flow-args "--label-filter confidence=DPI" --keep-flows ft fo
	is "$(mpdump -k label fo/tok/pcap/udp.tok | tr '\n' ' ')" '"Network" ' \
		"the table labels its DPI flow, the others have none (no folder label)"
	ok "the flow streams are kept" test -s fo/flows/pcap/udp.flows -a -s fo/flows/pcap/tcp.flows
	is "$(ls fo/flows/pcap | tr '\n' ' ')" "tcp.flows udp.flows " "no temporary file left"
	for c in udp tcp; do
		is "$(mpdump -k source -k id fo/flows/pcap/$c.flows | tr '\n' ' ')" \
		   "$(mpdump -k source -k id fo/tok/pcap/$c.tok | tr '\n' ' ')" "$c: the same sources and ids in flows and tokens"
		ok "$c: the flow stream is what flow2tok tokenized" sh -c "flow2tok -q < fo/flows/pcap/$c.flows | cmp -s - fo/tok/pcap/$c.tok"
	done
	exits_with 0 "without --keep-flows" "$pp" -q --no-shards ft nf
	ok "no flows directory" test ! -e nf/flows
	is "$(mpdump -k label nf/tok/pcap/udp.tok | sort -u | tr '\n' ' ')" '"pcap" ' "... and folder labels as before"
else
	skip "mkpcap and mpdump are needed for --flow-labels"
fi
done_testing
