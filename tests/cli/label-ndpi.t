#!/usr/bin/env bash
# label-ndpi.t: pipelines/label-ndpi labels captures with nDPI (Debian's
# ndpiReader) into a flow table pcap2flow --labels reads as it is: the example
# captures get the labels examples/labels.tsv implies; unidentified and
# port-guessed flows get their confidence, so --label-filter confidence=DPI
# keeps them out; a damaged capture keeps the flows before the damage and is
# named; ndpi-agreement counts what it should; and on a fixed sample of the
# corpus's nDPI captures (every $NDPI_STRIDE-th, 6 by default; 1: all) the
# master protocol agrees with the corpus's own table for >= 95 % of the flows
# both call DPI.
. "$TGPT_TOP/tests/lib.sh"
label="$TGPT_TOP/pipelines/label-ndpi"
agreement="$TGPT_TOP/pipelines/ndpi-agreement"
# ndpiReader: Debian's libndpi-bin (make deps)
need_tools ndpiReader parallel pcap2flow mkpcap mpdump
ex="$TGPT_TOP/examples"
header=$'pcap\tflow_idx\tl4\tsrc\tdir\tdst\tvlan\tndpi_proto\tmaster\tapp\tcategory\tconfidence\tpkts\tbytes'
# the label of each flow in the stream FILE, "-" when none
labels() { mpdump "$1" | grep '^{"t":"flow"' | sed -E 's/.*"label":"([^"]*)".*/\1/;t;s/.*/-/'; }

# ------------------------------------------------------------ the command line
exits_with 0 "--help" "$label" --help
like out '^usage: label-ndpi' "usage on stdout"
like out '^Labels from: nDPI [0-9]+\.[0-9]+' "the help names the nDPI version the labels come from"
exits_with 0 "--version" "$label" --version
like out '^nDPI [0-9]+\.[0-9]+' "... names nDPI's version"
exits_with 64 "a bad option is a usage error" "$label" --bogus
exits_with 64 "no capture is a usage error" "$label"
exits_with 66 "a missing capture" "$label" /nonexistent.pcap
mkdir empty
exits_with 66 "a directory without captures" "$label" empty

# ------------------------------------------------------------ the examples
exits_with 0 "labels the example captures" "$label" -q -j 2 "$ex/data"
mv out examples.tsv
is "$(head -1 examples.tsv)" "$header" "the columns of the corpus's flow_labels.tsv"
ok "no summary with -q" test ! -s err
# examples/labels.tsv names each capture's service; nDPI names it by its
# master protocol (both ICMP and ICMPV6 for icmp). bulk (iperf3) is no
# protocol nDPI knows by that name.
while IFS=$'\t' read -r capture service; do
	[ "$service" = bulk ] && continue
	got=$(awk -F'\t' -v p="$capture" '$1 == p && $12 ~ /^DPI/ { m = tolower($9); sub(/v6$/, "", m); print m }' \
		examples.tsv | sort | uniq -c | awk '{ print $2 "=" $1 }' | paste -sd' ' -)
	n=$(awk -F'\t' -v p="$capture" '$1 == p && $12 ~ /^DPI/' examples.tsv | wc -l)
	is "$got" "$service=$n" "$capture: every flow nDPI identifies is $service ($n flows)"
done < "$ex/labels.tsv"
exits_with 0 "-o writes the same table (one job)" "$label" -q -j 1 -o same.tsv "$ex/data"
ok "... byte for byte" cmp examples.tsv same.tsv
ok "... nothing on stdout" test ! -s out
# -o through a symbolic link writes the file it names and keeps the link (a
# rename over it would replace the link; as root, over -o /dev/null, the device)
: > target.tsv && ln -s target.tsv link.tsv
exits_with 0 "without -q a summary on stderr" "$label" -o link.tsv "$ex/data/dns.pcap"
like err '^label-ndpi: 1 capture, [0-9]+ flows: [0-9]+ by DPI, .*nDPI [0-9]+\.[0-9]+' "... with the counts and nDPI's version"
ok "-o LINK keeps the link" test -L link.tsv
ok "... and writes the table into the file it names" grep -q dns.pcap target.tsv
mkfifo fifo.tsv && { timeout 120 cat fifo.tsv > from-fifo.tsv & }
exits_with 0 "-o FIFO writes into the FIFO" "$label" -q -o fifo.tsv "$ex/data/dns.pcap"
wait
ok "... which stays a FIFO" test -p fifo.tsv
ok "... and the table came through it" grep -q dns.pcap from-fifo.tsv
# --spell-as: names as another table spells them (case, renamings)
printf '%s\n' "$header" "x.pcap|1|UDP|1.1.1.1:1|<->|2.2.2.2:53||dns|dns|dns|Network|DPI|1|1" \
	"x.pcap|2|TCP|1.1.1.1:2|<->|2.2.2.2:80||Http|Http|Http|Web|DPI|1|1" | sed 's/|/\t/g' > spell.tsv
exits_with 0 "--spell-as a table" "$label" -q --spell-as spell.tsv -o spelt.tsv "$ex/data/dns.pcap" "$ex/data/http.pcap"
is "$(awk -F'\t' 'NR > 1 { print $8 "/" $9 "/" $10 }' spelt.tsv | sort -u | paste -sd' ' -)" "Http/Http/Http dns/dns/dns" \
	"... takes its spelling of the names"
is "$(cut -f1-7,11- spelt.tsv)" "$(awk -F'\t' '$1 == "pcap" || $1 ~ /(dns|http)\.pcap$/' examples.tsv | cut -f1-7,11- | sed 's|^data/|'"$ex"'/data/|')" \
	"... and changes nothing else"
# pcap2flow reads the table as it is: the http capture's flows are HTTP.
exits_with 0 "pcap2flow --labels reads the table" \
	pcap2flow --labels examples.tsv --label-column master --label-filter confidence=DPI -o http.flows "$ex/data/http.pcap"
is "$(labels http.flows | sort -u | paste -sd' ' -)" "HTTP" "... and labels every http flow HTTP"
like err 'http\.pcap: ([0-9]+)/\1 flows labelled' "... all of them"

# ------------------------------------------------------------ confidence
# mkpcap mixed: HTTP, ICMP, DNS, IGMP and a UDP flow to port 9999 nDPI
# cannot identify; bulk: TCP flows on well-known ports without a protocol in
# them (nDPI guesses by port) and some on 5222 it leaves unknown.
mkpcap mixed -w mixed.pcap && mkpcap bulk -w bulk.pcap && mkpcap vlan -w vlan.pcap ||
	{ echo "Bail out! mkpcap"; exit 1; }
exits_with 0 "labels synthetic captures" "$label" -q -o syn.tsv mixed.pcap bulk.pcap vlan.pcap
is "$(awk -F'\t' '$1 == "mixed.pcap" { print $3 "/" $9 "/" $12 }' syn.tsv | sort | paste -sd' ' -)" \
	"ICMP/ICMP/DPI IGMP/IGMP/DPI TCP/HTTP/DPI UDP/DNS/DPI UDP/Unknown/Unknown" \
	"mixed: four protocols by DPI, the UDP flow to 9999 Unknown"
is "$(awk -F'\t' '$9 == "Unknown" && ($12 != "Unknown" || $11 != "") ' syn.tsv | wc -l)" 0 \
	"every Unknown flow has confidence Unknown and no category"
is "$(awk -F'\t' '$1 == "bulk.pcap" { print ($9 == "Unknown" ? "Unknown" : $12) }' syn.tsv | sort -u | paste -sd' ' -)" \
	"Match by port Unknown" "bulk: flows are guessed by port or unknown, none DPI"
is "$(awk -F'\t' '$1 == "vlan.pcap" { print $7 }' syn.tsv)" 100 "the VLAN id in its column"
exits_with 0 "--label-filter confidence=DPI keeps guesses out" \
	pcap2flow --labels syn.tsv --label-column master --label-filter confidence=DPI -o bulk.flows bulk.pcap
is "$(labels bulk.flows | sort -u)" "-" "... none of bulk's flows is labelled"
exits_with 0 "... and the unknown ones" \
	pcap2flow --labels syn.tsv --label-column master --label-filter confidence=DPI -o mixed.flows mixed.pcap vlan.pcap
# port=label of each flow: mixed's, then vlan's first (VLAN 100; nDPI 4.2
# does not list vlan's QinQ flows)
is "$(mpdump mixed.flows | grep '^{"t":"flow"' | sed -E 's/.*"dst_port":([0-9]*).*/\1/' |
	paste -d= - <(labels mixed.flows) | head -5 | paste -sd' ' -)" "80=HTTP 53=DNS 9999=- 0=- 80=HTTP" \
	"... the flow to 9999 unlabelled, HTTP (also in VLAN 100) and DNS labelled"
exits_with 0 "--ndpi-args -d: no guess by port" "$label" -q --ndpi-args -d -o noguess.tsv bulk.pcap
is "$(awk -F'\t' 'NR > 1 { print $9 "/" $12 }' noguess.tsv | sort -u)" "Unknown/Unknown" "... bulk's flows are all Unknown"

# ------------------------------------------------------------ damage
mkdir -p dmg
cp "$ex/data/dns.pcap" dmg/a.pcap
head -c 40000 "$ex/data/http.pcap" > dmg/b.pcap
head -c 100 /dev/urandom > dmg/c.pcap
exits_with 65 "a damaged capture: exit 65" "$label" -q -o dmg.tsv dmg
like err 'dmg/b\.pcap: damaged or unreadable, [1-9][0-9]* flows labelled before it: ndpiReader: .*truncated' \
	"... named with ndpiReader's message and the flows before the damage"
like err 'dmg/c\.pcap: damaged or unreadable, 0 flows' "an unreadable capture named, no rows"
is "$(awk -F'\t' '$1 == "dmg/a.pcap"' dmg.tsv | wc -l)" "$(awk -F'\t' '$1 == "data/dns.pcap"' examples.tsv | wc -l)" \
	"the run went on: the good capture fully labelled"
ok "the damaged capture's flows before the damage are there" \
	awk -F'\t' '$1 == "dmg/b.pcap" && $9 == "HTTP" { found = 1 } END { exit !found }' dmg.tsv
exits_with 0 "--allow-damaged: exit 0" "$label" -q --allow-damaged -o dmg2.tsv dmg
ok "... the same table" cmp dmg.tsv dmg2.tsv
exits_with 73 "an output that cannot be written" "$label" -q -o /nonexistent/dir/t.tsv "$ex/data/dns.pcap"

# ------------------------------------------------------------ ndpi-agreement
# Reference and table over 7 flows: a, b agree (b in another case and the
# endpoints swapped), c by a newer spelling (DCERPC, 4.2's DCE_RPC), d
# differs, e is a protocol the table's nDPI does not know, f is DPI in one
# only, g is in the reference only.
mk() { printf '%s\n' "$header"; sed 's/|/\t/g'; }
mk > ref.tsv <<'EOF'
p/x.pcap|1|TCP|1.1.1.1:1|<->|2.2.2.2:80||HTTP|HTTP|HTTP|Web|DPI|1|1
p/x.pcap|2|TCP|1.1.1.1:2|<->|2.2.2.2:443||TLS|TLS|TLS|Web|DPI|1|1
p/x.pcap|3|TCP|1.1.1.1:3|<->|2.2.2.2:135||DCERPC|DCERPC|DCERPC|RPC|DPI (cache)|1|1
p/x.pcap|4|UDP|1.1.1.1:4|<->|2.2.2.2:53||DNS|DNS|DNS|Network|DPI|1|1
p/x.pcap|5|UDP|1.1.1.1:5|<->|2.2.2.2:50||Discord|Discord|Discord|Chat|DPI|1|1
p/x.pcap|6|UDP|1.1.1.1:6|<->|2.2.2.2:123||NTP|NTP|NTP|System|Match by port|1|1
p/x.pcap|7|UDP|1.1.1.1:7|<->|2.2.2.2:9||NTP|NTP|NTP|System|DPI|1|1
EOF
mk > new.tsv <<'EOF'
x.pcap|1|TCP|1.1.1.1:1|<->|2.2.2.2:80||HTTP|HTTP|HTTP|Web|DPI|1|1
x.pcap|2|TCP|2.2.2.2:443|<->|1.1.1.1:2||tls|tls|tls|Web|DPI|1|1
x.pcap|3|TCP|1.1.1.1:3|<->|2.2.2.2:135||DCE_RPC|DCE_RPC|DCE_RPC|RPC|DPI|1|1
x.pcap|4|UDP|1.1.1.1:4|<->|2.2.2.2:53||MDNS|MDNS|MDNS|Network|DPI|1|1
x.pcap|5|UDP|1.1.1.1:5|<->|2.2.2.2:50||STUN|STUN|STUN|Network|DPI|1|1
x.pcap|6|UDP|1.1.1.1:6|<->|2.2.2.2:123||NTP|NTP|NTP|System|DPI|1|1
EOF
printf '%s\n' HTTP TLS DCE_RPC DNS MDNS STUN NTP > known.txt
exits_with 0 "ndpi-agreement compares two tables" "$agreement" --known known.txt ref.tsv new.tsv
is "$(sed -n 's/^\(matched flows\|both DPI\|compared\|agree\): //p' out | paste -sd' ' -)" "6 5 4 3 (75.0 %)" \
	"6 flows matched, 5 both DPI, 4 compared, 3 agree"
like out '^unknown to the table.s nDPI: 1: Discord \(1\)' "the protocol 4.2 does not know counted apart"
like out '^disagreements: DNS -> MDNS \(1\)' "the disagreement named"
exits_with 1 "--min above the agreement fails" "$agreement" --known known.txt --min 80 ref.tsv new.tsv
exits_with 0 "--min below it passes" "$agreement" --known known.txt --min 75 ref.tsv new.tsv
exits_with 65 "a table without the columns" "$agreement" --known known.txt ref.tsv known.txt

# ------------------------------------------------------------ the corpus
# Every NDPI_STRIDE-th capture of the corpus's nDPI captures (sorted by name):
# a fixed sample that keeps make check quick. The figures go to the TAP log.
ndpi=${CORPUS:-/nonexistent}/labeled/ndpi
stride=${NDPI_STRIDE:-6}
if [ -f "$ndpi/flow_labels.tsv" ] && [ -d "$ndpi/pcap" ]; then
	mkdir -p sample/pcap
	(cd "$ndpi/pcap" && ls | LC_ALL=C sort | awk -v s="$stride" '(NR - 1) % s == 0') |
		while IFS= read -r c; do ln -s "$ndpi/pcap/$c" "sample/pcap/$c"; done
	n=$(ls sample/pcap | wc -l)
	exits_with 0 "labels $n of the corpus's nDPI captures (every ${stride}th)" \
		"$label" -q --allow-damaged -o corpus.tsv sample/pcap
	exits_with 0 "the master protocol agrees with the corpus's table for >= 95 % of the flows both call DPI" \
		"$agreement" --min 95 "$ndpi/flow_labels.tsv" corpus.tsv
	sed 's/^/# /' out
else
	skip "corpus absent ($ndpi; set CORPUS=): the nDPI captures were not labelled"
	skip "corpus absent: no agreement with its table measured"
fi

done_testing
