#!/usr/bin/env bash
# pcapng.t: pcapng files whose interfaces have several link types (captures
# on several interfaces, or on "any" beside one NIC), which libpcap refuses:
# pcap2flow reads them itself, each packet keeping its interface's link
# type in its flow, and the round trip through flow2tok and tok2pcap gives
# them back, as a pcapng (--pcapng) or one pcap per link type (--split).
# pcapcmp reads them with a reader of its own. The fixtures come from
# mergecap (wireshark-common), independent of our writers.
. "$TGPT_TOP/tests/lib.sh"
need_tools mergecap

vals() { mpdump -k "$1" "${2:-out}" | tr '\n' ' ' | sed 's/ $//'; }
for k in tcp sll raw udp; do mkpcap "$k" -w "$k.pcap"; done
mergecap -F pcapng -w multi.pcapng tcp.pcap sll.pcap raw.pcap
n=$(($(pcapcmp -c tcp.pcap) + $(pcapcmp -c sll.pcap) + $(pcapcmp -c raw.pcap)))

# ------------------------------------------------------------ pcapcmp's own reader
run pcapcmp -c multi.pcapng
is "$RC:$(cat out)" "0:$n" "pcapcmp counts the packets of all three link types"
exits_with 0 "pcapcmp: a pcapng of several link types equals itself" pcapcmp multi.pcapng multi.pcapng
exits_with 0 "pcapcmp -l 113: its Linux cooked packets are sll.pcap's" pcapcmp -l 113 multi.pcapng sll.pcap
exits_with 1 "pcapcmp -l 1: its Ethernet packets are not raw.pcap's" pcapcmp -l 1 multi.pcapng raw.pcap
like err 'link type 1 vs 101' "... per packet, naming both link types"

# ------------------------------------------------------------ pcap2flow
exits_with 0 "pcap2flow reads a pcapng of link types 1, 113 and 101" pcap2flow -v multi.pcapng
is "$(vals linktype | tr ' ' '\n' | sort -n | tr '\n' ' ')" "1 101 113 " \
	"a flow per link type: the same 5-tuple on another interface is another flow"
like err " $n packets, 3 flows, 0 packets skipped" "every packet is in a flow"
cp out multi.flows
is "$(mpdump -k packets multi.flows | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | wc -l)" "$n" "all $n packets"
exits_with 0 "from a pipe" sh -c 'cat multi.pcapng | pcap2flow'
is "$(vals linktype)" "$(vals linktype multi.flows)" "... the same flows"
exits_with 0 "a filter is compiled for each link type" pcap2flow -f 'tcp port 80' multi.pcapng
is "$(vals linktype | tr ' ' '\n' | sort -n | tr '\n' ' ')" "1 101 113 " "... and matches on all three"
# An interface described after packets (a second section) is found too.
mergecap -F pcapng -w tcp.pcapng tcp.pcap
mergecap -F pcapng -w sll.pcapng sll.pcap
cat tcp.pcapng sll.pcapng > sections.pcapng
exits_with 0 "two sections of different link types, from a file" pcap2flow sections.pcapng
is "$(vals linktype)" "1 113" "... each flow of its own link type"

# ------------------------------------------------------------ the round trip
pcap2flow --all multi.pcapng | flow2tok > multi.tok
exits_with 65 "tok2pcap: several link types do not share one pcap" tok2pcap -w one.pcap multi.tok
like err 'link types [0-9]+ and [0-9]+ cannot share one pcap; use --split PREFIX .*, or --pcapng' \
	"... and says what does"
exits_with 0 "tok2pcap --pcapng writes them into one pcapng" tok2pcap --pcapng -w back.pcapng multi.tok
run pcapcmp multi.pcapng back.pcapng
is "$RC:$(cat out)" "0:packets $n, mismatches 0" "... packet for packet, each of its link type"
if command -v tshark >/dev/null; then
	tshark -r back.pcapng -T fields -e frame.interface_id 2>/dev/null | sort -u > ifaces
	is "$(wc -l < ifaces)" 3 "tshark reads it: three interfaces"
fi
exits_with 0 "tok2pcap --split writes one pcap per link type" tok2pcap --split part multi.tok
for lt in 1 113 101; do
	exits_with 0 "part-$lt.pcap holds the packets of link type $lt" pcapcmp -l "$lt" multi.pcapng "part-$lt.pcap"
done
exits_with 0 "... part-1.pcap is tcp.pcap again" pcapcmp tcp.pcap part-1.pcap
exits_with 64 "--split and --pcapng exclude each other" tok2pcap --split p --pcapng multi.tok
pcap2flow --all sections.pcapng | flow2tok | tok2pcap --pcapng > sections-back.pcapng
exits_with 0 "two sections round-trip too" pcapcmp sections.pcapng sections-back.pcapng
# A pcapng holds times a pcap cannot (from 2106 on).
mkrec > late.tok <<'EOT'
hdr tgpt.tok
tok source=a linktype=1 snaplen=65535 tsprec=9 first_ns=4300000000000000000 index=0 wirelen=0 : S 1 d0 xaabb E
EOT
exits_with 65 "a packet of 2106 on is no pcap's" tok2pcap -w late.pcap late.tok
exits_with 0 "... but a pcapng's" tok2pcap --pcapng -w late.pcapng late.tok
is "$(pcap2flow --all late.pcapng | mpdump -k first_ns)" 4300000000000000000 "... with its time"

# ------------------------------------------------------------ damaged
size=$(stat -c %s multi.pcapng)
head -c $((size - 10)) multi.pcapng > cut.pcapng
exits_with 65 "a pcapng of several link types cut short exits 65" pcap2flow --all cut.pcapng
like err "cut.pcapng: packet $n: pcapng block at byte offset [0-9]+: file ends inside" \
	"... naming the file, the packet and the block's offset"
is "$(vals packets | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | wc -l)" "$((n - 1))" \
	"the packets before the damage are written"

done_testing
