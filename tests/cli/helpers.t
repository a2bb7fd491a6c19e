#!/usr/bin/env bash
# helpers.t: the test helpers themselves. mkpcap's kinds are captures libpcap
# reads, with the packets, link types and quirks they promise; pcapcmp sees a
# changed byte, a shifted timestamp, a missing packet and another link type;
# mpdump prints a known stream and names the offset of damage.
. "$TGPT_TOP/tests/lib.sh"

# ------------------------------------------------------------ mkpcap kinds
# kind, packets, link type (as the file header says)
while read -r kind packets linktype; do
	run mkpcap "$kind" -w "$kind.pcap"
	is "$RC" 0 "mkpcap $kind exits 0"
	run pcapcmp "$kind.pcap" "$kind.pcap"
	is "$RC:$(cat out)" "0:packets $packets, mismatches 0" "$kind: libpcap reads $packets packets"
	is "$(od -An -tu4 -j20 -N4 "$kind.pcap" | tr -d ' ')" "$linktype" "$kind: link type $linktype"
done <<'EOF'
tcp 14 1
udp 10 1
ipv6 16 1
vlan 22 1
truncated 16 1
ns 14 1
mixed 19 1
sll 10 113
sll2 10 276
raw 10 101
null 10 0
idle 12 1
empty 0 1
EOF

mkpcap tcp >again.pcap
ok "deterministic, and stdout gets what -w gets" cmp tcp.pcap again.pcap
is "$(od -An -tx4 -N4 tcp.pcap | tr -d ' ')" a1b2c3d4 "tcp: microsecond magic"
is "$(od -An -tx4 -N4 ns.pcap | tr -d ' ')" a1b23c4d "ns: nanosecond magic"
is "$(od -An -tu4 -j16 -N4 truncated.pcap | tr -d ' ')" 64 "truncated: snaplen 64"
is "$(stat -c %s empty.pcap)" 24 "empty: a file header only"

# truncated starts with tcp's session: the same packets, cut to 64 bytes.
run pcapcmp -n 14 tcp.pcap truncated.pcap
is "$RC" 1 "truncated differs from tcp"
like err 'packet 5: caplen 1514 vs 64$' "truncated: caplen 64, wire length and bytes kept"

mkpcap cut -w cut.pcap
run pcapcmp -c cut.pcap
is "$RC:$(cat out)" "1:13" "cut: libpcap reads 13 packets, then stops at damage"
like err 'cut.pcap: packet 14: truncated' "cut: the damage is in packet 14"
mkpcap garbage -w garbage.pcap
exits_with 2 "garbage: libpcap cannot open it" pcapcmp -c garbage.pcap
like err 'garbage.pcap: ' "garbage: the message names the file"

run mkpcap bulk --mb 1 --flows 50 --seed 7 -w bulk.pcap
size=$(stat -c %s bulk.pcap)
ok "bulk: about 1 MB ($size bytes)" test "$size" -ge 999000 -a "$size" -le 1002000
run pcapcmp -c bulk.pcap
is "$RC" 0 "bulk: libpcap reads it"

if command -v tcpdump >/dev/null; then
	dump() { tcpdump -nn -vv -e -r "$@" 2>/dev/null; }
	is "$(dump tcp.pcap | grep -c '(correct)')" 14 "tcp: 14 correct TCP checksums"
	is "$(for f in tcp udp ipv6 vlan mixed sll sll2 raw null idle; do dump $f.pcap; done |
		grep -ciE 'incorrect|bad (udp|igmp|icmp)|wrong')" 0 "no kind has a bad checksum"
	is "$(dump tcp.pcap | grep -c 'Flags \[S\]') $(dump tcp.pcap | grep -c 'Flags \[F\.\]')" "1 2" \
		"tcp: one SYN, two FINs"
	dump ipv6.pcap >ipv6.txt
	like ipv6.txt 'HBH .* Flags \[P\.\]' "ipv6: hop-by-hop header before TCP"
	like ipv6.txt '2001:db8::1\.[0-9]+ > 2001:db8::35\.53: \[udp sum ok\]' "ipv6: UDP"
	tcpdump -nn -e -r vlan.pcap >vlan.txt 2>/dev/null
	like vlan.txt '802\.1Q \(0x8100\), length [0-9]+: vlan 100' "vlan: 802.1Q"
	like vlan.txt '0x88a8.*vlan 200.*0x8100.*vlan 300.*Flags' "vlan: QinQ TCP"
	like vlan.txt '0x88a8.*vlan 200.*0x8100.*vlan 300.*A\?' "vlan: QinQ UDP"
	dump mixed.pcap >mixed.txt
	like mixed.txt 'ARP.*Request who-has' "mixed: ARP"
	like mixed.txt 'ICMP echo reply' "mixed: ICMP"
	like mixed.txt 'igmp v2 report' "mixed: IGMP"
	like mixed.txt 'flags \[\+\], proto UDP' "mixed: first fragment"
	like mixed.txt 'offset 1480, flags \[none\]' "mixed: second fragment"
	dump sll2.pcap >sll2.txt
	like sll2.txt 'ifindex 2 02:00:00:00:00:01 ethertype IPv4' "sll2: cooked v2 header"
	gap=$(tcpdump -tt -nn -r idle.pcap 2>/dev/null | awk 'NR == 6 { a = $1 } NR == 7 { print int($1 - a) }')
	is "$gap" 300 "idle: the bursts are 300 s apart"
	gap=$(mkpcap idle --gap 5 | tcpdump -tt -nn -r - 2>/dev/null | awk 'NR == 6 { a = $1 } NR == 7 { print int($1 - a) }')
	is "$gap" 5 "idle --gap 5"
else
	skip "tcpdump not installed: packet contents not checked"
fi

# ------------------------------------------------------------ pcapcmp
mkpcap tcp --seed 2 -w seed2.pcap
run pcapcmp tcp.pcap seed2.pcap
is "$RC:$(cat out)" "1:packets 14, mismatches 14" "another seed: every packet differs"
like err '^pcapcmp: packet 1: byte [0-9]+: 0x' "the first difference is described"
is "$(grep -c '^pcapcmp: packet' err)" 5 "at most five differences described"

# One byte of the last packet changed.
cp tcp.pcap onebyte.pcap
printf '\377' | dd of=onebyte.pcap bs=1 seek=$(($(stat -c %s tcp.pcap) - 1)) conv=notrunc 2>/dev/null
run pcapcmp tcp.pcap onebyte.pcap
is "$RC:$(cat out)" "1:packets 14, mismatches 1" "a changed byte is one mismatch"
like err '^pcapcmp: packet 14: byte 53: 0x[0-9a-f]{2} vs 0xff$' "and is found in packet 14, byte 53"

mkpcap tcp --t0 1700000000.000001 -w later.pcap
run pcapcmp tcp.pcap later.pcap
is "$RC:$(cat out)" "1:packets 14, mismatches 14" "timestamps 1 us later differ"
like err 'packet 1: time 1700000000\.000000000 vs 1700000000\.000001000$' "the time difference is described"

mkpcap ns --micro -w ns-micro.pcap
exits_with 0 "ns vs the same at us precision: equal at us" pcapcmp ns.pcap ns-micro.pcap
mkpcap ns --t0 1700000000.000000001 -w ns-later.pcap
exits_with 1 "two ns files 1 ns apart differ" pcapcmp ns.pcap ns-later.pcap

if command -v editcap >/dev/null; then
	editcap -F pcapng tcp.pcap tcp.pcapng && editcap -F pcapng ns.pcap ns.pcapng
	exits_with 0 "pcapng A (us) vs its pcap" pcapcmp tcp.pcapng tcp.pcap
	exits_with 0 "pcapng A (ns, if_tsresol 9) vs its pcap" pcapcmp ns.pcapng ns.pcap
	exits_with 1 "pcapng at ns: 1 ns later differs" pcapcmp ns.pcapng ns-later.pcap
	exits_with 1 "pcapng: another seed differs" pcapcmp tcp.pcapng seed2.pcap
else
	skip "editcap not installed: pcapng input not checked"
fi

mkpcap tcp -c 13 -w short.pcap
run pcapcmp tcp.pcap short.pcap
is "$RC:$(cat out)" "1:packets 14, mismatches 1" "a missing packet is a mismatch"
like err 'packet 14: only in tcp.pcap' "the missing packet is named"
exits_with 0 "--prefix compares only B's packets" pcapcmp --prefix tcp.pcap short.pcap
exits_with 1 "--prefix: B longer than A differs" pcapcmp -p short.pcap tcp.pcap
exits_with 0 "-n 13 compares 13 packets" pcapcmp -n 13 tcp.pcap short.pcap
is "$(cat out)" "packets 13, mismatches 0" "-n 13 says so"

run pcapcmp tcp.pcap sll.pcap
is "$RC" 1 "another link type differs"
like err 'link type 1 \(EN10MB\) vs 113 \(LINUX_SLL\)' "the link types are named"
mkpcap empty -w empty.pcap
exits_with 0 "two empty captures are equal" pcapcmp empty.pcap empty.pcap

exits_with 0 "- reads stdin" pcapcmp - tcp.pcap <tcp.pcap
exits_with 2 "a missing file is trouble" pcapcmp tcp.pcap no-such.pcap
exits_with 2 "damage in A is trouble" pcapcmp cut.pcap tcp.pcap
exits_with 0 "--prefix stops before A's damage" pcapcmp -p cut.pcap short.pcap
exits_with 0 "-q: same" pcapcmp -q tcp.pcap tcp.pcap
is "$(cat out err)" "" "-q prints nothing"
exits_with 64 "a bad flag is a usage error" pcapcmp --bogus tcp.pcap tcp.pcap
exits_with 64 "one file is a usage error" pcapcmp tcp.pcap
exits_with 0 "pcapcmp --help" pcapcmp --help
like out '^usage: pcapcmp' "the help is on stdout"

# ------------------------------------------------------------ mkpcap CLI
exits_with 0 "mkpcap --help" mkpcap --help
for kind in tcp udp ipv6 vlan truncated ns mixed sll sll2 raw null empty cut garbage idle bulk; do
	grep -q "^  $kind " out || echo "# --help lacks $kind"
done
is "$(grep -cE '^  (tcp|udp|ipv6|vlan|truncated|ns|mixed|sll|sll2|raw|null|empty|cut|garbage|idle|bulk) ' out)" 16 \
	"--help lists the 16 kinds"
exits_with 64 "an unknown kind is a usage error" mkpcap bogus
exits_with 64 "no kind is a usage error" mkpcap
exits_with 64 "a bad number is a usage error" mkpcap tcp --seed x
exits_with 73 "an unwritable file" mkpcap tcp -w no-such-dir/x.pcap
exits_with 64 "mkpcap refuses a terminal" on_tty mkpcap tcp
exits_with 0 "mkpcap -c 0 writes an empty capture" mkpcap tcp -c 0 -w zero.pcap
is "$(stat -c %s zero.pcap)" 24 "-c 0: a header only"

# ------------------------------------------------------------ mpdump
# {"t":"hdr","v":1}, then {"t":"tok","tokens":bin 00 01 02 01,"x":[1.5,-3,nil,true],7:"a\"é\x01"}
printf '\202\241t\243hdr\241v\001' >known.mp
printf '\204\241t\243tok\246tokens\304\004\000\001\002\001\241x\224\313\077\370\000\000\000\000\000\000\375\300\303\007\245a"\303\251\001' >>known.mp
exits_with 0 "mpdump reads a known stream" mpdump known.mp
is "$(cat out)" '{"t":"hdr","v":1}
{"t":"tok","tokens":"0x00010201","x":[1.5,-3,null,true],"7":"a\"é\u0001"}' "mpdump prints it as JSON lines"
exits_with 0 "mpdump -k" mpdump -k tokens <known.mp
is "$(cat out)" '"0x00010201"' "-k prints the key's value, skips maps without it"
printf '\223\312\077\300\000\000\300\304\000' | mpdump >floats.out
is "$(cat floats.out)" '[1.5,null,"0x"]' "float32, nil, empty bin"
head -c 20 known.mp >cut.mp
exits_with 65 "a cut stream is damaged" mpdump cut.mp
is "$(cat out)" '{"t":"hdr","v":1}' "the objects before the cut are printed"
like err 'cut\.mp: cut short: object 2 starts at byte offset 10' "the cut is located"
printf '\001\002\301\003' >bad.mp
exits_with 65 "a byte that is not msgpack" mpdump bad.mp
like err 'not msgpack at byte offset 2' "the bad byte is located"
printf '\335\377\377\377\377\001\002' >huge.mp
exits_with 65 "an array declaring 4 billion items, then 2" mpdump huge.mp
like err 'huge\.mp: cut short: object 1 starts at byte offset 0' "is a cut stream, not an allocation"
exits_with 0 "an empty stream" mpdump </dev/null
exits_with 66 "a missing file" mpdump no-such.mp
exits_with 64 "a bad flag" mpdump --bogus

done_testing
