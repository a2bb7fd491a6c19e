#!/usr/bin/env bash
# pcap2flow-labels.t: pcap2flow --labels: labels from a table of flows (nDPI's
# flow_labels.tsv layout, Zeek's conn.log) for mkpcap's captures, whose flows
# are known: both directions of a 5-tuple, VLAN ids, captures matched by base
# name, unmatched flows, the summary, --label-column, --label-filter, -l for
# the rest, conflicts, nDPI's rewritten IPv6 addresses, bad tables; and on the
# nDPI corpus, when present, the labels the table gives a few captures.
. "$TGPT_TOP/tests/lib.sh"

# the label of each flow in the stream FILE (default: out), "-" when none
labels() {
	mpdump "${1:-out}" | grep '^{"t":"flow"' |
		sed -E 's/.*"label":"([^"]*)".*/\1/;t;s/.*/-/' | tr '\n' ' ' | sed 's/ $//'
}
# the summary line's "labelled/flows used/rows" for capture NAME, from err
counts() {
	sed -nE "s|.*$1: ([0-9]+/[0-9]+) flows labelled, ([0-9]+/[0-9]+) table rows used.*|\1 \2|p" \
		"$T_DIR/err"
}
# a table in nDPI's layout: the header, then the rows given (fields split
# at "|"; the columns the tests do not use are filled in)
table() {
	local out=$1
	shift
	printf 'pcap\tflow_idx\tl4\tsrc\tdir\tdst\tvlan\tndpi_proto\tmaster\tapp\tcategory\tconfidence\tpkts\tbytes\n' >"$out"
	local i=1 row
	for row in "$@"; do
		IFS='|' read -r pcap l4 src dst vlan app category confidence <<<"$row"
		printf '%s\t%d\t%s\t%s\t<->\t%s\t%s\t%s.%s\t%s\t%s\t%s\t%s\t1\t100\n' "$pcap" "$i" "$l4" \
			"$src" "$dst" "$vlan" "$app" "$app" "$app" "$app" "$category" "$confidence" >>"$out"
		i=$((i + 1))
	done
}

need_tools mkpcap mpdump
for kind in tcp udp ipv6 vlan mixed idle; do
	mkpcap "$kind" -w "$kind.pcap" || { echo "Bail out! mkpcap $kind"; exit 1; }
done

# udp.pcap's flows: 10.0.0.1:45207, 10.0.0.2:54999 and 10.0.0.1:44975, each to
# 10.0.0.53:53. The second row names its flow the other way round; the last
# names the third flow, but for another capture.
table ndpi.tsv \
	'pcap/udp.pcap|UDP|10.0.0.1:45207|10.0.0.53:53||DNS|Network|DPI' \
	'pcap/udp.pcap|UDP|10.0.0.53:53|10.0.0.2:54999||Google|Web|Match by port' \
	'pcap/tcp.pcap|TCP|10.0.0.2:80|10.0.0.1:45207||HTTP|Web|DPI' \
	'pcap/other.pcap|UDP|10.0.0.1:44975|10.0.0.53:53||DNS|Network|DPI'

# ------------------------------------------------------------ matching
exits_with 0 "--labels reads an nDPI table" pcap2flow --labels ndpi.tsv udp.pcap
is "$(labels)" "Network Web -" "the category labels both flows the table names, either way round"
is "$(counts udp.pcap)" "2/3 2/2" "summary: 2 of 3 flows labelled, both rows for the capture used"
like err '^pcap2flow: udp\.pcap: 2/3 flows labelled' "the summary names the capture, on stderr"
ok "a row for another capture labels nothing" test "$(labels | cut -d' ' -f3)" = -
exits_with 0 "the capture is matched by base name" pcap2flow --labels ndpi.tsv "$T_DIR/udp.pcap"
is "$(labels)" "Network Web -" "a full path matches the table's pcap/udp.pcap"
is "$(mpdump -k src_port out | tr '\n' ' ')" "45207 54999 44975 " "the flows are as without labels"
exits_with 0 "--label-column picks the column" pcap2flow --labels ndpi.tsv --label-column app udp.pcap
is "$(labels)" "DNS Google -" "labels from the app column"
exits_with 0 "--label-filter keeps the rows that start with PREFIX" \
	pcap2flow --labels ndpi.tsv --label-filter confidence=DPI udp.pcap
is "$(labels)" "Network - -" "the row matched by port labels nothing"
is "$(counts udp.pcap)" "1/3 1/1" "summary: one flow, from the one row left"
like err '\(1 more filtered out or unlabelled\)' "the summary counts the row filtered out"
exits_with 0 "two filters must both hold" pcap2flow --labels ndpi.tsv --label-filter confidence=DPI \
	--label-filter app=Goo udp.pcap
is "$(labels)" "- - -" "no row passes both"
exits_with 0 "-l labels the flows the table does not name" pcap2flow --labels ndpi.tsv -l other udp.pcap
is "$(labels)" "Network Web other" "the table's labels win, -l for the rest"
exits_with 0 "-q: no summary" pcap2flow -q --labels ndpi.tsv udp.pcap
is "$(wc -c <err)" 0 "nothing on stderr"
exits_with 0 "the table from stdin" sh -c 'pcap2flow --labels - udp.pcap <ndpi.tsv'
is "$(labels)" "Network Web -" "--labels - reads stdin"

exits_with 0 "several captures" pcap2flow --labels ndpi.tsv udp.pcap tcp.pcap
is "$(labels)" "Network Web - Web" "each with its own rows"
is "$(counts tcp.pcap)" "1/1 1/1" "a summary per capture"
is "$(counts '2 captures')" "3/4 3/3" "and one over all of them"
exits_with 0 "a capture the table does not name" pcap2flow --labels ndpi.tsv vlan.pcap
is "$(labels):$(counts vlan.pcap)" "- - -:0/3 0/0" "no labels, no rows"

# ------------------------------------------------------------ IPv6, VLAN, other protocols
table v6.tsv \
	'ipv6.pcap|TCP|[2001:db8::2]:443|[2001:db8::1]:45207||TLS|Web|DPI' \
	'ipv6.pcap|UDP|[2001:db8::1]:54999|[2001:db8::35]:53||DNS|Network|DPI'
exits_with 0 "IPv6 endpoints as [addr]:port" pcap2flow --labels v6.tsv ipv6.pcap
is "$(labels)" "Web Network" "both IPv6 flows labelled"
# vlan.pcap: TCP :80 on VLAN 100, then UDP :53 and TCP :22 on 200 (outer) + 300
table vlan.tsv \
	'vlan.pcap|TCP|10.0.0.1:45207|10.0.0.2:80|100|HTTP|Web|DPI' \
	'vlan.pcap|UDP|10.0.0.3:54999|10.0.0.53:53|999|DNS|Network|DPI' \
	'vlan.pcap|TCP|10.0.0.4:22|10.0.0.3:44975|300|SSH|RemoteAccess|DPI'
exits_with 0 "rows with VLAN ids" pcap2flow --labels vlan.tsv vlan.pcap
is "$(mpdump -k dst_port out | tr '\n' ' ')$(labels)" "80 22 53 Web RemoteAccess -" \
	"a row's VLAN id must be one of the flow's tags (the inner one of QinQ too)"
# mixed.pcap: ICMP between .1 and .2, IGMP from .1 to 239.1.2.3; endpoints
# without ports
table mixed.tsv \
	'mixed.pcap|ICMP|10.0.0.2:0|10.0.0.1:0||ICMP|Ping|DPI' \
	'mixed.pcap|IGMP|10.0.0.1|239.1.2.3||IGMP|Multicast|DPI'
exits_with 0 "rows of other protocols" pcap2flow --labels mixed.tsv mixed.pcap
is "$(counts mixed.pcap)" "0/4 0/2" "label nothing by default (TCP and UDP flows only)"
exits_with 0 "with --all" pcap2flow --all --labels mixed.tsv mixed.pcap
is "$(mpdump -k proto out | tr '\n' ' ')$(labels)" "0 0 6 1 17 17 17 2 - - - Ping - - - Multicast" \
	"they label the ICMP and IGMP flows"

# ------------------------------------------------------------ one row, several flows; conflicts
table idle.tsv 'idle.pcap|UDP|10.0.0.1:45207|10.0.0.53:53||DNS|Network|DPI'
exits_with 0 "a flow split by the idle timeout" pcap2flow --labels idle.tsv idle.pcap
is "$(mpdump -k end out | tr '\n' ' ')$(labels)" '"idle" "eof" Network Network' "both parts get the row's label"
is "$(counts idle.pcap)" "2/2 1/1" "two flows from one row"
table conflict.tsv \
	'udp.pcap|UDP|10.0.0.1:45207|10.0.0.53:53||DNS|Network|DPI' \
	'udp.pcap|UDP|10.0.0.53:53|10.0.0.1:45207||DNS|Network|DPI' \
	'udp.pcap|UDP|10.0.0.1:45207|10.0.0.53:53||Tor|VPN|DPI'
exits_with 0 "several rows for one 5-tuple" pcap2flow --labels conflict.tsv udp.pcap
is "$(labels)" "Network - -" "the first row's label wins"
like err 'conflict\.tsv: udp\.pcap: 1 row names a flow an earlier row labels differently' \
	"a warning counts the rows with another label"
is "$(counts udp.pcap)" "1/3 3/3" "all three rows were used"

# nDPI writes IPv6 addresses with ":0:" turned into "::": 2001:db8:0:1:: is
# "2001:db8::1::". Give ipv6.pcap's server that address.
perl -0777 -pe 's/\x20\x01\x0d\xb8\x00{11}\x02/"\x20\x01\x0d\xb8\x00\x00\x00\x01" . "\x00" x 8/ge' \
	ipv6.pcap >v6zero.pcap
table v6zero.tsv \
	'v6zero.pcap|TCP|[2001:db8::1]:45207|[2001:db8::1::]:443||TLS|Web|DPI' \
	'v6zero.pcap|UDP|[2001:db8::1]:54999|[2001:db8::1::35]:53||DNS|Network|DPI'
exits_with 0 "nDPI's IPv6 text with two \"::\"" pcap2flow --labels v6zero.tsv v6zero.pcap
is "$(labels)" "Web -" "is read back when only one address fits"
like err 'v6zero\.tsv:3: v6zero\.pcap: 1 row left out: an IPv6 address nDPI wrote ambiguously' \
	"an ambiguous one leaves its row out, with a warning naming the line"

# ------------------------------------------------------------ Zeek's conn.log
cat >conn.log <<'EOF'
#separator \x09
#set_separator	,
#empty_field	(empty)
#unset_field	-
#path	conn
#open	2024-01-01-00-00-00
#fields	ts	uid	id.orig_h	id.orig_p	id.resp_h	id.resp_p	proto	service	duration
#types	time	string	addr	port	addr	port	enum	string	interval
1700000000.000000	C1	10.0.0.1	45207	10.0.0.53	53	udp	dns	0.005
1700000000.002000	C2	10.0.0.53	53	10.0.0.2	54999	udp	-	0.007
1700000000.000000	C3	10.0.0.2	80	10.0.0.1	45207	tcp	http	0.013
1700000000.005000	C4	10.0.0.1	8	10.0.0.2	0	icmp	(empty)	0.001
1700000000.005000	C5	10.0.0.1	8	10.0.0.2	0	icmp	ping	0.001
#close	2024-01-01-00-00-01
EOF
exits_with 0 "a Zeek conn.log, detected by its header" pcap2flow --labels conn.log udp.pcap tcp.pcap
is "$(labels)" "dns - - http" "service labels, for every capture (a conn.log names none)"
is "$(counts udp.pcap)" "1/3 1/3" "its rows with a service count for each capture"
like err 'udp\.pcap: .*\(2 more filtered out or unlabelled\)' "unset and empty services label nothing"
exits_with 0 "--labels-format zeek, --label-column" \
	pcap2flow --labels conn.log --labels-format zeek --label-column proto udp.pcap
is "$(labels)" "udp udp -" "the proto column"
exits_with 0 "Zeek's ICMP rows (type and code as ports)" pcap2flow --all --labels conn.log mixed.pcap
is "$(labels | cut -d' ' -f4)" "ping" "label the ICMP flow"

# ------------------------------------------------------------ bad tables, bad options
exits_with 66 "a missing table exits 66" pcap2flow --labels nosuch.tsv udp.pcap
like err 'nosuch\.tsv: No such file' "the message names it"
exits_with 65 "a missing column exits 65" pcap2flow --labels ndpi.tsv --label-column nosuch udp.pcap
like err 'ndpi\.tsv:1: no column "nosuch"' "naming the table, the line and the column"
cut -f1-5 ndpi.tsv >narrow.tsv
exits_with 65 "a table without the endpoints' columns" pcap2flow --labels narrow.tsv udp.pcap
like err 'narrow\.tsv:1: no column "dst"' "says which"
exits_with 65 "--label-filter on a missing column" pcap2flow --labels ndpi.tsv --label-filter nosuch=x udp.pcap
like err 'ndpi\.tsv:1: no column "nosuch"' "says which"
cp ndpi.tsv bad.tsv
printf 'pcap/udp.pcap\t9\tUDP\t10.0.0.1:45207\t->\t10.0.0.300:53\t\tDNS\tDNS\tDNS\tNetwork\tDPI\t1\t1\n' >>bad.tsv
exits_with 65 "an unparsable endpoint exits 65" pcap2flow --labels bad.tsv -o bad.mp udp.pcap
like err 'bad\.tsv:6: unparsable endpoint "10\.0\.0\.300:53"' "naming the table and the line"
ok "no output is written" test ! -e bad.mp
table badport.tsv 'udp.pcap|UDP|10.0.0.1:45207|10.0.0.53:65536||DNS|Network|DPI'
exits_with 65 "a port out of range exits 65" pcap2flow --labels badport.tsv udp.pcap
like err 'badport\.tsv:2: unparsable endpoint' "with the line"
table badvlan.tsv 'udp.pcap|UDP|10.0.0.1:45207|10.0.0.53:53|4096|DNS|Network|DPI'
exits_with 65 "a VLAN id out of range exits 65" pcap2flow --labels badvlan.tsv udp.pcap
like err 'badvlan\.tsv:2: unparsable VLAN id "4096"' "with the line"
table badproto.tsv 'udp.pcap|QUUX|10.0.0.1:45207|10.0.0.53:53||DNS|Network|DPI'
exits_with 65 "an unknown transport exits 65" pcap2flow --labels badproto.tsv udp.pcap
like err 'badproto\.tsv:2: unknown transport "QUUX"' "with the line"
head -3 ndpi.tsv >short.tsv
printf 'pcap/udp.pcap\t9\tUDP\n' >>short.tsv
exits_with 65 "a row with too few fields exits 65" pcap2flow --labels short.tsv udp.pcap
like err 'short\.tsv:4: only 3 fields, 11 needed' "with the line"
grep -v '^1700000000.002' conn.log | sed 's/^1700000000.000000\tC3\t10.0.0.2/1700000000.000000\tC3\tnot-an-address/' >badconn.log
exits_with 65 "a bad address in a conn.log exits 65" pcap2flow --labels badconn.log udp.pcap
like err 'badconn\.log:10: unparsable address "not-an-address"' "with the line"
: >empty.tsv
exits_with 65 "an empty table exits 65" pcap2flow --labels empty.tsv udp.pcap
like err 'empty\.tsv: no header line' "and says so"
exits_with 64 "--label-filter needs COLUMN=PREFIX" pcap2flow --labels ndpi.tsv --label-filter DPI udp.pcap
exits_with 64 "--labels-format knows tsv, zeek and auto" pcap2flow --labels ndpi.tsv --labels-format csv udp.pcap
exits_with 64 "--label-column needs --labels" pcap2flow --label-column app udp.pcap
like err 'need --labels' "and says so"
exits_with 64 "the table and a capture cannot both be stdin" sh -c 'pcap2flow --labels - <ndpi.tsv'

# ------------------------------------------------------------ the nDPI corpus
# For captures where pcap2flow's flows and nDPI's agree one to one, the labels
# with confidence DPI are the table's: as many, and the same categories.
ndpi=${CORPUS:-/nonexistent}/labeled/ndpi
captures="telegram.pcap whatsapp.pcap kerberos.pcap dns_fragmented.pcap lru_ipv6_caches.pcapng"
if [ -f "$ndpi/flow_labels.tsv" ] && [ -d "$ndpi/pcap" ]; then
	for c in $captures; do
		want=$(awk -F'\t' -v p="pcap/$c" '$1 == p && $12 ~ /^DPI/ && ($3 == "TCP" || $3 == "UDP")' \
			"$ndpi/flow_labels.tsv" | wc -l)
		exits_with 0 "$c: labelled from the nDPI table" \
			pcap2flow --labels "$ndpi/flow_labels.tsv" --label-filter confidence=DPI "$ndpi/pcap/$c"
		flows=$(mpdump -k t out | grep -c flow)
		is "$(counts "$c")" "$want/$flows $want/$want" \
			"$c: $want of $flows TCP/UDP flows labelled, every DPI row used"
		is "$(mpdump -k label out | tr -d '"' | sort | uniq -c | tr -s ' ')" \
			"$(awk -F'\t' -v p="pcap/$c" '$1 == p && $12 ~ /^DPI/ && ($3 == "TCP" || $3 == "UDP") { print $11 }' \
				"$ndpi/flow_labels.tsv" | sort | uniq -c | tr -s ' ')" \
			"$c: the same categories as the table's"
	done
else
	for c in $captures; do
		skip "corpus absent ($ndpi): $c"
		skip "corpus absent"
		skip "corpus absent"
	done
fi

done_testing
