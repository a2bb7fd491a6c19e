#!/usr/bin/env bash
# pcap2flow.t: pcap2flow's command line, the flows it groups from mkpcap's
# synthetic captures (TCP session, IPv6, VLAN, link types, fragments, idle
# gaps), time stamps and lengths kept as the file has them (past 2038, wire
# length below the captured one, nothing captured), filters and labels,
# damaged and missing input, and a live capture on the loopback interface.
. "$TGPT_TOP/tests/lib.sh"

# values of KEY in the stream FILE (default: out), one line, space-separated
vals() { mpdump -k "$1" "${2:-out}" | tr '\n' ' ' | sed 's/ $//'; }
# the -v summary's count of WHAT ("flows", "packets", ...) from err
summary() { sed -nE "s/.* ([0-9]+) $1.*/\1/p" "$T_DIR/err"; }
# field N (1 time, 2 wire length, 3 index) of every packet in the stream out
pkt_field() { mpdump -k packets out | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | tr -d '[' | cut -d, -f"$1" | tr '\n' ' ' | sed 's/ $//'; }
# patch FILE OFFSET BYTES: overwrites bytes (printf escapes) in place
patch() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# no_line FILE RE: no line of $T_DIR/FILE matches RE
no_line() { ! grep -Eq -- "$2" "$T_DIR/$1"; }

need_tools mkpcap mpdump
for kind in tcp udp ipv6 vlan truncated ns mixed sll sll2 raw null empty cut garbage idle; do
	mkpcap "$kind" -w "$kind.pcap" || { echo "Bail out! mkpcap $kind"; exit 1; }
done

# ------------------------------------------------------------ command line
exits_with 0 "--help exits 0" pcap2flow --help
like out '^usage: pcap2flow' "--help prints the usage on stdout"
like out -- '--idle-timeout' "--help lists the long options"
exits_with 0 "--version exits 0" pcap2flow --version
like out '^pcap2flow \(tgpt\) [0-9]' "--version names the tool"
like out 'libpcap' "--version lists libpcap"
like out 'msgpack' "--version lists msgpack-c"
exits_with 64 "an unknown option exits 64" pcap2flow --bogus tcp.pcap
like err '^usage: pcap2flow' "the usage goes to stderr"
exits_with 64 "-t takes a number" pcap2flow -t soon tcp.pcap
exits_with 64 "-i excludes capture files" pcap2flow -i lo tcp.pcap
exits_with 64 "a filter that does not compile exits 64" pcap2flow -f 'port port' tcp.pcap
like err 'tcp.pcap: filter' "the message names the file and the filter"

run on_tty pcap2flow tcp.pcap
is "$RC" 64 "refuses to write msgpack to a terminal"
like out 'terminal' "and says why"
run on_tty pcap2flow --force tcp.pcap
is "$RC" 0 "--force writes to a terminal anyway"

# ------------------------------------------------------------ a TCP session
exits_with 0 "reads a TCP session" pcap2flow -v tcp.pcap
is "$(vals t)" '"hdr" "flow"' "a header, then one flow"
is "$(vals schema)" '"tgpt.flow"' "the header names the flow schema"
is "$(vals tool)" '"pcap2flow"' "the header names the tool"
is "$(vals src_ip):$(vals src_port)" '"0x0a000001":45207' "the source is the client (first sender)"
is "$(vals dst_ip):$(vals dst_port)" '"0x0a000002":80' "the destination is the server"
is "$(vals proto) $(vals ip_version) $(vals linktype) $(vals tsprec)" "6 4 1 6" \
	"proto, IP version, link type and precision"
is "$(vals src2dst_packets)/$(vals dst2src_packets)" "8/6" "packets per direction"
is "$(vals end)" '"fin"' "the teardown ends the flow with fin"
is "$(vals id) $(vals source)" '0 "tcp.pcap"' "id 0, source as given"
is "$(mpdump -k packets out | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | cut -d, -f3 | tr '\n' ' ')" \
	"0 1 2 3 4 5 6 7 8 9 10 11 12 13 " "every packet, with its index in the file"
is "$(mpdump -k packets out | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | cut -d, -f4 | tr -d '\n')" \
	"01001100110010" "directions follow the senders"
is "$(summary flow)" 1 "-v: the summary counts one flow"
like err ' 1 file, 14 packets, 1 flow, ' "... in the singular: 1 file, 1 flow (not \"1 flows\")"
cp out tcp.mp

exits_with 0 "reads stdin as -" pcap2flow - <tcp.pcap
is "$(vals source)" '"-"' "the source of stdin is -"
is "$(vals packets)" "$(vals packets tcp.mp)" "the same packets as from the file"
exits_with 0 "reads stdin when no file is named" sh -c 'cat tcp.pcap | pcap2flow'
is "$(vals packets)" "$(vals packets tcp.mp)" "a pipe gives the same packets"
exits_with 0 "-o writes a file" pcap2flow -o flows.mp tcp.pcap
ok "the file holds the stream" cmp flows.mp tcp.mp
is "$(ls | grep -c 'flows.mp.tmp')" 0 "no temporary file is left"

# -o onto something that is not a regular file (a FIFO, /dev/null) writes
# into it: renaming a temporary file over it would replace the device.
mkfifo fifo
timeout 20 cat fifo > via-fifo & reader=$!
exits_with 0 "-o a FIFO" pcap2flow -o fifo tcp.pcap
wait "$reader"
ok "the FIFO is still a FIFO" test -p fifo
ok "and carried the flows" cmp via-fifo flows.mp
ok "no temporary file beside it" sh -c '! ls fifo.tmp.* 2>/dev/null'

# ------------------------------------------------------------ precision, link types
exits_with 0 "reads a nanosecond pcap" pcap2flow ns.pcap
is "$(vals tsprec)" 9 "tsprec 9 from the nanosecond magic"
last=$(vals last_ns)
is "$((last % 1000 != 0))" 1 "nanosecond digits are kept"
exits_with 0 "reads a nanosecond pcap from a pipe" sh -c 'cat ns.pcap | pcap2flow -'
is "$(vals tsprec) $(vals last_ns)" "9 $last" "a pipe keeps the precision"
if command -v editcap >/dev/null; then
	editcap -F pcapng ns.pcap ns.pcapng && editcap -F pcapng tcp.pcap us.pcapng
	exits_with 0 "reads pcapng" pcap2flow ns.pcapng us.pcapng
	is "$(vals tsprec)" "9 6" "pcapng: tsprec from if_tsresol"
	pcap2flow ns.pcap tcp.pcap >pcap.mp
	is "$(vals packets)" "$(vals packets pcap.mp)" "pcapng: the same packets as pcap"
else
	skip "editcap (wireshark-common) absent: pcapng"
	skip "editcap absent"
	skip "editcap absent"
fi
exits_with 0 "reads a capture cut by its snaplen" pcap2flow truncated.pcap
is "$(vals snaplen)" "64 64" "the snaplen is recorded"
longest=$(mpdump -k packets out | grep -oE '"0x[0-9a-f]*"' | awk '{ print (length($0) - 4) / 2 }' | sort -n | tail -1)
is "$longest" 64 "no packet has more than 64 bytes captured"
is "$(vals src2dst_bytes | cut -d' ' -f1)/$(vals dst2src_bytes | cut -d' ' -f1)" \
	"$(vals src2dst_bytes tcp.mp)/$(vals dst2src_bytes tcp.mp)" "the byte counts are of the wire lengths"
while read -r kind lt; do
	exits_with 0 "reads link type $lt ($kind)" pcap2flow "$kind.pcap"
	is "$(vals linktype):$(vals src_port):$(vals dst_port):$(vals end)" "$lt:45207:80:\"fin\"" \
		"$kind: one TCP flow, link type $lt"
done <<'EOF'
sll 113
sll2 276
raw 101
null 0
EOF

# ------------------------------------------------------------ time stamps and lengths as the file has them
mkpcap tcp --t0 4000000000 -w y2096.pcap
exits_with 0 "reads time stamps past 2038" pcap2flow y2096.pcap
is "$(vals first_ns)" 4000000000000000000 "a pcap file's seconds are unsigned 32-bit"
exits_with 0 "from a pipe too" sh -c 'cat y2096.pcap | pcap2flow'
is "$(vals first_ns)" 4000000000000000000 "the same time from a pipe"
mkpcap tcp --t0 4294967290 -w y2106.pcap
exits_with 0 "reads time stamps near the end of 2106" pcap2flow y2106.pcap
is "$(vals last_ns)" 4294967290013000000 "and in 2106, close to the last second a pcap file can hold"
# version 2.3: libpcap reads its records (and gives the seconds signed)
cp y2096.pcap y2096-v23.pcap
patch y2096-v23.pcap 6 '\x03'
exits_with 0 "reads a version 2.3 pcap through libpcap" pcap2flow y2096-v23.pcap
is "$(vals first_ns)" 4000000000000000000 "libpcap's negative seconds are taken as unsigned"
if command -v editcap >/dev/null; then
	editcap -F pcapng y2096.pcap y2096.pcapng
	exits_with 0 "reads a pcapng past 2038" pcap2flow y2096.pcapng
	is "$(vals first_ns)" 4000000000000000000 "pcapng's 64-bit time stamps as they are"
else
	skip "editcap (wireshark-common) absent: pcapng"
	skip "editcap absent"
fi

# the first record (at byte 24) says 20 bytes were on the wire, 62 captured
cp tcp.pcap short.pcap
patch short.pcap 36 '\x14\x00\x00\x00'
exits_with 0 "a wire length below the captured length" pcap2flow short.pcap
is "$(pkt_field 2 | cut -d' ' -f1-2)" "20 62" "is kept as the file has it"
is "$(vals src2dst_bytes)" "$(($(vals src2dst_bytes tcp.mp) - 42))" "and counted as it is"
is "$(mpdump -k packets out | grep -o '"0x[0-9a-f]*"' | head -1 | awk '{ print (length($0) - 4) / 2 }')" 62 \
	"all 62 bytes captured are kept"
ok "without a warning" no_line err 'wire length'
exits_with 0 "a short wire length from a pipe" sh -c 'cat short.pcap | pcap2flow'
is "$(pkt_field 2 | cut -d' ' -f1-2)" "20 62" "is kept too"

# a record with nothing captured (and nothing on the wire) before the session
{ head -c 24 tcp.pcap; printf '\x00\xf1\x53\x65\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
  tail -c +25 tcp.pcap; } >empty-packet.pcap
exits_with 0 "a packet with no bytes captured" pcap2flow --all empty-packet.pcap
is "$(vals end)" '"frame" "fin"' "is kept, as a frame of its own"
is "$(mpdump -k packets out | head -1)" '[[1700000000000000000,0,0,0,"0x"]]' "with no bytes, at index 0"
is "$(pkt_field 3 | wc -w)" 15 "and the session follows whole"
exits_with 0 "and from a pipe" sh -c 'cat empty-packet.pcap | pcap2flow --all'
is "$(mpdump -k packets out | head -1)" '[[1700000000000000000,0,0,0,"0x"]]' "the same empty packet"

# ------------------------------------------------------------ IPv6, VLAN
exits_with 0 "reads IPv6" pcap2flow ipv6.pcap
is "$(vals ip_version)" "6 6" "two IPv6 flows"
is "$(vals proto)" "6 17" "TCP (past a hop-by-hop header) and UDP"
is "$(vals src_ip | cut -d' ' -f1)" '"0x20010db8000000000000000000000001"' "16-byte addresses"
exits_with 0 "reads VLAN tags" pcap2flow vlan.pcap
is "$(mpdump -k vlan out | tr '\n' ' ')" "[100] [200,300] [200,300] " "802.1Q and QinQ ids, outer first"
is "$(vals dst_port)" "80 22 53" "the tagged flows"
is "$(vals id)" "0 2 1" "a TCP flow is written at its final ACK, before an older one still open"

# ------------------------------------------------------------ TCP/UDP only, or --all
exits_with 0 "default: TCP and UDP only" pcap2flow -v mixed.pcap
is "$(vals proto)" "6 17 17 17" "TCP, UDP, and both UDP fragments"
is "$(summary 'packets skipped')" 5 "ARP, ICMP and IGMP are skipped and counted"
exits_with 0 "--all keeps every packet" pcap2flow --all -v mixed.pcap
is "$(vals end)" '"frame" "frame" "fin" "eof" "eof" "eof" "eof" "eof"' \
	"non-IP frames are flows of their own, written at once"
is "$(vals proto)" "0 0 6 1 17 17 17 2" "ARP, TCP, ICMP, UDP, fragments, IGMP"
is "$(summary 'packets skipped')" 0 "nothing is skipped"
n=$(mpdump -k packets out | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | wc -l)
is "$n" 19 "--all: all 19 packets are in the flows"

# ------------------------------------------------------------ nothing silently lost
# What is in no flow is counted on stderr, by why, without -v.
exits_with 0 "mixed.pcap without -v" pcap2flow mixed.pcap
like err '^pcap2flow: 5 packets in no flow \(--all keeps every packet\): 5 not TCP or UDP$' \
	"the packets in no flow are counted without -v"
exits_with 0 "-q" pcap2flow -q mixed.pcap
is "$(cat err)" "" "-q: no count"
exits_with 0 "--all: nothing is left out" pcap2flow --all mixed.pcap
is "$(cat err)" "" "... and nothing is said"
# snapcut SNAPLEN IN OUT: IN with a header snaplen of SNAPLEN, every packet
# cut to it (wire lengths kept), as a capture with -s SNAPLEN has them
snapcut() {
	perl -e 'my ($snap, $in, $out) = @ARGV; local $/; open I, "<", $in or die; binmode I;
		my $d = <I>; my $o = substr($d, 0, 16) . pack("V", $snap) . substr($d, 20, 4);
		for (my $at = 24; $at + 16 <= length $d;) {
			my ($s, $f, $c, $l) = unpack("VVVV", substr($d, $at, 16));
			my $k = $c < $snap ? $c : $snap;
			$o .= pack("VVVV", $s, $f, $k, $l) . substr($d, $at + 16, $k); $at += 16 + $c;
		}
		open O, ">", $out or die; binmode O; print O $o;' "$@"
}
# IPv6 at snaplen 40: the IPv6 header (54 bytes with Ethernet's) is cut
snapcut 40 ipv6.pcap ipv6-40.pcap
exits_with 0 "IPv6 at snaplen 40" pcap2flow -v ipv6-40.pcap
like err '\(0 not TCP/UDP, 16 cut, ' "-v: the cut packets are counted as cut, not as not TCP/UDP"
exits_with 0 "... and without -v" pcap2flow ipv6-40.pcap
like err ': 16 cut by the snapshot length before their ports$' "... counted and said without -v"
# IPv4 TCP at snaplen 36: the ports (34 to 37) are cut
snapcut 36 tcp.pcap tcp-36.pcap
exits_with 0 "IPv4 TCP at snaplen 36" pcap2flow tcp-36.pcap
like err ': 14 cut by the snapshot length before their ports$' "ports cut off: counted as cut"
is "$(vals t)" '"hdr"' "... and in no flow keyed without them"
exits_with 0 "--all keeps them" pcap2flow --all tcp-36.pcap
is "$(mpdump -k packets out | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | wc -l)" 14 "--all: all 14 packets are in flows"
# An unknown link type gives nothing usable: an error, not an empty stream.
{ head -c 20 tcp.pcap; printf '\x0f\x27\x00\x00'; tail -c +25 tcp.pcap; } > lt9999.pcap
exits_with 65 "a capture of an unknown link type exits 65" pcap2flow lt9999.pcap
like err 'lt9999\.pcap: link type 9999 .*is not one pcap2flow decodes' "... naming the file and the link type"
like err '--all keeps its packets' "... and what keeps them"
exits_with 0 "--all keeps the frames of an unknown link type" pcap2flow --all lt9999.pcap
is "$(vals end | tr ' ' '\n' | grep -c frame)" 14 "... each a flow of its own"
is "$(vals linktype | tr ' ' '\n' | sort -u)" 9999 "... of link type 9999"

# ------------------------------------------------------------ label, filter, count
exits_with 0 "-l labels every flow" pcap2flow -l web udp.pcap
is "$(vals label)" '"web" "web" "web"' "three flows labelled"
exits_with 0 "-f filters" pcap2flow -v -f 'udp port 53' mixed.pcap
is "$(vals dst_port)" 53 "only the DNS flow"
is "$(mpdump -k packets out | grep -o '\[[0-9]*,[0-9]*,[0-9]*,[01],' | cut -d, -f3 | tr '\n' ' ')" \
	"11 12 " "indexes count the packets filtered out"
is "$(summary 'filtered out')" 17 "the summary counts the packets filtered out"
exits_with 0 "-c stops after COUNT packets" pcap2flow -c 3 tcp.pcap udp.pcap
is "$(vals src2dst_packets)/$(vals dst2src_packets)/$(vals source)" '2/1/"tcp.pcap"' \
	"three packets, the second file unread"

# ------------------------------------------------------------ several files
exits_with 0 "reads several files" pcap2flow tcp.pcap udp.pcap
is "$(vals id)" "0 0 1 2" "ids restart with each file"
is "$(vals source)" '"tcp.pcap" "udp.pcap" "udp.pcap" "udp.pcap"' "each flow names its file"

# ------------------------------------------------------------ idle timeout
exits_with 0 "a gap longer than the idle timeout" pcap2flow idle.pcap
is "$(vals end)" '"idle" "eof"' "splits the flow (default 120 s, gap 300 s)"
is "$(vals src2dst_packets)" "3 3" "three exchanges each"
exits_with 0 "-t longer than the gap" pcap2flow -t 301 idle.pcap
is "$(vals end):$(vals src2dst_packets)" '"eof":6' "keeps one flow"
mkpcap idle --gap 30 -w idle30.pcap
exits_with 0 "-t shorter than the gap" pcap2flow --idle-timeout 29.5 idle30.pcap
is "$(vals end)" '"idle" "eof"' "splits at the given timeout"

# ------------------------------------------------------------ bad input
exits_with 65 "a cut capture exits 65" pcap2flow -v tcp.pcap cut.pcap udp.pcap
like err 'cut\.pcap: packet 14: ' "the message names the file and the first bad packet"
is "$(vals source)" '"tcp.pcap" "cut.pcap"' "what came before is written; the next file is not read"
is "$(vals src2dst_packets | cut -d' ' -f2)/$(vals dst2src_packets | cut -d' ' -f2)" "7/6" \
	"the 13 packets before the damage"
exits_with 65 "a file that is not a capture exits 65" pcap2flow garbage.pcap
like err 'garbage\.pcap: unknown file format' "libpcap's reason, with the file name"
: >zero.pcap
exits_with 65 "an empty file exits 65" pcap2flow zero.pcap
like err 'zero\.pcap: empty file' "and says it is empty"
exits_with 66 "a missing file exits 66" pcap2flow nosuch.pcap
like err 'nosuch\.pcap: No such file' "the message names it"
exits_with 0 "a capture without packets" pcap2flow empty.pcap
is "$(vals t)" '"hdr"' "gives a header and no flows"
exits_with 66 "-o: nothing read, nothing written" pcap2flow -o none.mp nosuch.pcap
ok "no output file" test ! -e none.mp

# ------------------------------------------------------------ live capture
port=$((20000 + $$ % 20000))
pcap2flow -i lo -c 3 -f "udp dst port $port" -o live.mp 2>live.err &
pid=$!
for i in $(seq 100); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
	echo "tgpt $i" 2>/dev/null >"/dev/udp/127.0.0.1/$port"
done
wait "$pid"
rc=$?
if [ "$rc" = 77 ] || [ "$rc" = 69 ] || [ "$rc" = 66 ]; then
	skip "live capture on lo not possible here ($(head -1 live.err))"
	skip "live capture"
	skip "live capture"
	skip "live capture"
else
	is "$rc" 0 "-i lo -c 3: exits 0 after three packets"
	is "$(vals dst_port live.mp)" "$port $port $port" "three datagrams, three flows"
	is "$(vals linktype live.mp):$(vals tsprec live.mp)" "1 1 1:9 9 9" "link type and precision"
	pcap2flow -i lo -t 0.5 -f "udp dst port $port" >live2.mp 2>live2.err &
	pid=$!
	sleep 1
	for i in 1 2; do echo "tgpt $i" 2>/dev/null >"/dev/udp/127.0.0.1/$port"; sleep 0.2; done
	sleep 1.5
	kill -TERM "$pid"
	wait "$pid"
	is "$?:$(vals end live2.mp)" '0:"idle" "idle"' "idle flows are written while the wire is quiet; SIGTERM exits 0"
fi

done_testing
