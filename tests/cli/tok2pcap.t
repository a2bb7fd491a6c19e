#!/usr/bin/env bash
# tok2pcap.t: token records back to captures: the exact round trip through
# pcap2flow and flow2tok (µs and ns, truncated packets, every link type
# mkpcap makes), ordering, records without side data, token runs that are no
# packet, mixed link types, damaged and wrong input.
. "$TGPT_TOP/tests/lib.sh"

# pcapinfo FILE: "magic M snaplen S linktype L", then per packet
# "SEC.NSEC CAPLEN WIRELEN HEXBYTES" (files in little-endian host order).
pcapinfo() {
	perl -e 'local $/; open F, "<", $ARGV[0] or die "$ARGV[0]: $!"; binmode F; my $d = <F>;
		my ($m, $ma, $mi, $z, $sf, $snap, $lt) = unpack("VvvVVVV", $d);
		printf "magic %08x snaplen %u linktype %u\n", $m, $snap, $lt;
		for (my $o = 24; $o + 16 <= length $d;) {
			my ($s, $f, $c, $l) = unpack("VVVV", substr($d, $o, 16));
			printf "%u.%09u %u %u %s\n", $s, $m == 0xa1b23c4d ? $f : $f * 1000, $c, $l,
				unpack("H*", substr($d, $o + 16, $c));
			$o += 16 + $c;
		}' "$1"
}
npackets() { pcapinfo "$1" | tail -n +2 | wc -l; }
payloads() { pcapinfo "$1" | tail -n +2 | awk '{ print $4 }' | tr '\n' ' '; }

# ---------------------------------------------------------------- CLI
exits_with 0 "--help exits 0" tok2pcap --help
like out '^usage: tok2pcap' "--help prints the usage on stdout"
exits_with 0 "--version exits 0" tok2pcap --version
like out '^tok2pcap \(tgpt\) [0-9]' "--version names the tool and version"
exits_with 64 "an unknown flag exits 64" tok2pcap --frobnicate
like err 'usage: tok2pcap' "a bad flag prints the usage on stderr"
exits_with 64 "-w and --split together exit 64" tok2pcap -w a.pcap --split p
exits_with 64 "--start with 10 decimals exits 64" tok2pcap --start 1.1234567890
exits_with 64 "--start that is no number exits 64" tok2pcap --start soon
exits_with 64 "--linktype that is no number exits 64" tok2pcap --linktype ether

# ---------------------------------------------------------------- round trips
for kind in tcp udp ipv6 vlan truncated ns mixed sll sll2 raw null idle; do
	mkpcap "$kind" -w "$kind.pcap"
	pcap2flow --all "$kind.pcap" > "$kind.flows"
	flow2tok "$kind.flows" > "$kind.tok"
	tok2pcap -w "$kind.out" "$kind.tok"
	ok "round trip of mkpcap $kind: packet for packet" pcapcmp -q "$kind.pcap" "$kind.out"
done
ok "a microsecond capture comes back byte for byte" cmp tcp.pcap tcp.out
ok "a nanosecond capture comes back byte for byte" cmp ns.pcap ns.out
pcapinfo tcp.out > info
like info '^magic a1b2c3d4 snaplen 65535 linktype 1$' "µs magic, snaplen and link type kept"
pcapinfo ns.out > info
like info '^magic a1b23c4d ' "ns magic kept"
pcapinfo truncated.out > info
like info '^[0-9.]+ 64 ([0-9]{3,}) ' "snaplen-cut packets keep their wire length"
is "$(pcapinfo raw.out | head -1 | awk '{ print $6 }')" 101 "LINKTYPE_RAW (101) is written as 101"
is "$(pcapinfo sll2.out | head -1 | awk '{ print $6 }')" 276 "the escape comes back as 276 from side data"

# Masked tokens still decode, with the same lengths and times.
flow2tok --mask mac,ip,port udp.flows | tok2pcap > masked.pcap
is "$(pcapinfo masked.pcap | awk '{ print $1, $2, $3 }')" "$(pcapinfo udp.pcap | awk '{ print $1, $2, $3 }')" "masked tokens decode to packets of the same times and lengths"

# ---------------------------------------------------------------- stdin, files, order
tok2pcap < udp.tok > a.pcap
tok2pcap - < udp.tok > b.pcap
ok "no argument and '-' read stdin alike" cmp a.pcap b.pcap
ok "a file argument gives the same capture" cmp a.pcap udp.out
is "$(ls | grep -c 'tmp\.')" 0 "-w leaves no temporary file"
run on_tty tok2pcap udp.tok
is "$RC" 64 "refuses to write a capture to a terminal"
run on_tty tok2pcap --force udp.tok
is "$RC" 0 "--force writes to a terminal"
exits_with 66 "a missing input exits 66" tok2pcap -w x.pcap no-such.tok
exits_with 73 "an output in no directory exits 73" tok2pcap -w no/such/x.pcap udp.tok
like err '^tok2pcap: no/such/x\.pcap: ' "... naming the path given first, not its temporary file"
# Two sources: each in its own order, sources in order of first appearance.
tok2pcap udp.tok tcp.tok > two.pcap
is "$(npackets two.pcap)" "$(($(npackets udp.pcap) + $(npackets tcp.pcap)))" "two inputs, one capture"
ok "the first source's packets come first, in order" pcapcmp -q -n "$(npackets udp.pcap)" udp.pcap two.pcap
mkrec > order.tok <<'EOF'
hdr tgpt.tok
tok source=a index=2 : S 1 d0 xaa02 E
tok source=b index=0 : S 1 d0 xbb00 E
tok source=a index=0,1 : S 1 d0 xaa00 S 1 d1 xaa01 E
EOF
tok2pcap order.tok > order.pcap
is "$(payloads order.pcap)" "aa00 aa01 aa02 bb00 " "by source (first seen first), then by index"

# ---------------------------------------------------------------- exact time stamps
# An interval float64 cannot hold (2^53 + 1 ns) comes back exactly via ts_ns.
mkrec > huge.flows <<'EOF'
hdr tgpt.flow
flow : 1000/01 9007199254741993/02
EOF
flow2tok huge.flows 2>/dev/null | tok2pcap > huge.pcap
is "$(pcapinfo huge.pcap | tail -n +2 | awk '{ print $1 }' | tr '\n' ' ')" "0.000001000 9007199.254741993 " "ts_ns gives the exact time stamps back"

# ---------------------------------------------------------------- no side data
flow2tok --no-side tcp.flows > noside.tok
exits_with 0 "records without side data decode" tok2pcap -w noside.pcap noside.tok
ok "... to the same packets, from --start's default 1700000000" pcapcmp -q tcp.pcap noside.pcap
pcapinfo noside.pcap > info
like info '^magic a1b23c4d snaplen 262144 linktype 1$' "... in a ns capture, snaplen 262144"
tok2pcap --start 1600000000.5 noside.tok > start.pcap
is "$(pcapinfo start.pcap | sed -n 2p | awk '{ print $1 }')" 1600000000.500000000 "--start sets the first time stamp"
mkrec > gen.tok <<'EOF'
hdr tgpt.tok
tok : S 1 d0 x01 S 1 d2 x02 E
tok : S 1 d0 x03 S 1 d1 x04 E
EOF
tok2pcap gen.tok > gen.pcap
is "$(payloads gen.pcap)" "01 03 04 02 " "packets without side data are written in time order, stable"

# ---------------------------------------------------------------- bad token runs
mkrec > bad.tok <<'EOF'
hdr tgpt.tok
tok : S 1 d0 x0a E
tok : x01 x02 S 1 d0 x0b E
tok : S C d0 x01 E
tok : S 1 x0000 E
tok : S 1 d0 x01 P x02 E
tok : S 1 d0 E
tok : S 1 dnan x01 E
tok : S 1 dinf x01 E
tok : S 1 d1e300 x01 E
tok : S 255 d0 x01 E
tok : S 1 d0 x0c
tok : S 1 d0 x0d E x01
tok : S 1 d-2e9 x01 E
tok linktype=113 : S 1 d0 x01 E
tok index=0,1 : S 1 d0 x01 E
tok wirelen=-1 : S 1 d0 x0102 E
EOF
exits_with 0 "token runs that are no packet are dropped, not fatal" tok2pcap -w bad.pcap bad.tok
is "$(payloads bad.pcap)" "0102 0a 0b 0d " "only the good packets are written (side data first)"
like err 'dropped 1 token run: tokens outside a packet' "counted: tokens before START"
like err 'dropped 1 token run: link-type token is a special' "counted: a special as link type"
like err 'dropped 1 token run: fewer than 8 time' "counted: a short interval"
like err 'dropped 1 token run: special token inside' "counted: a special among the bytes"
like err 'dropped 1 token run: packet without bytes' "counted: no bytes"
like err 'dropped 3 token runs: time interval NaN, infinite' "counted: NaN, inf and huge intervals"
like err 'dropped 1 token run: link-type escape 255 without' "counted: an unresolved escape"
like err 'dropped 1 token run: record without END' "counted: a missing END"
like err 'dropped 1 token run: tokens after END' "counted: tokens after END"
like err 'dropped 1 token run: time stamp outside' "counted: a time before 1970"
like err "dropped 1 token run: link-type token differs" "counted: a link type against side data"
like err "dropped 1 token run: side data for another number" "counted: side data for other packets"
like err 'first: bad.tok, record 2\)' "the summary names the first record of each reason"
is "$(grep -c dropped err)" 12 "one summary line per reason"
is "$(pcapinfo bad.pcap | sed -n 2p | awk '{ print $2, $3 }')" "2 1" "a wire length below caplen in side data is kept, as damaged captures have it"
exits_with 65 "--strict: the first bad run is an error" tok2pcap --strict -w strict.pcap bad.tok
like err 'bad.tok: record 2: tokens outside a packet' "--strict names the input, record and reason"
mkrec > bad2.tok <<'EOF'
hdr tgpt.tok
tok : S 1 d0 x0a S 1 d0 x0b S 1 dnan x0c E
EOF
exits_with 65 "--strict stops at a bad packet" tok2pcap --strict -w strict2.pcap bad2.tok
like err 'bad2.tok: record 1, packet 3: time interval NaN' "... naming its record and packet"
is "$(payloads strict2.pcap.partial)" "0a 0b " "... after writing the packets before it (a failed run: to FILE.partial)"
is "$(payloads strict.pcap.partial)" "0a " "--strict still writes the packets before"
mkrec > zero.tok <<'EOF'
hdr tgpt.tok
tok first_ns=1700000000000000000 wirelen=60 : S 1 d0 E
EOF
tok2pcap -w zero.pcap zero.tok
is "$(pcapinfo zero.pcap | sed -n 2p)" "1700000000.000000000 0 60 " "side data vouches for a packet of 0 captured bytes"
mkrec > esc.tok <<'EOF'
hdr tgpt.tok
tok : S 255 d0 x0102 E
EOF
tok2pcap --linktype 276 esc.tok > esc.pcap
is "$(pcapinfo esc.pcap | head -1 | awk '{ print $6 }')" 276 "--linktype resolves the escape without side data"

# ---------------------------------------------------------------- nothing to write
# A capture of no packets is no result: an error (65), not an empty pcap.
mkrec > none.tok <<'EOF'
hdr tgpt.tok
EOF
exits_with 65 "a stream of no records exits 65" tok2pcap -w none.pcap none.tok
like err 'no packets to write: 0 token records' "... saying there were no packets"
ok "... and writes no capture" test ! -e none.pcap
mkrec > nopkt.tok <<'EOF'
hdr tgpt.tok
tok : S 1 x0000 E
tok : S C d0 x01 E
EOF
cp udp.out old.pcap
exits_with 65 "records none of whose runs is a packet exit 65" tok2pcap -w old.pcap nopkt.tok
like err 'dropped 1 token run: fewer than 8 time' "... after counting why each was dropped"
like err 'no packets to write: 2 token records, none with a packet' "... and saying none was left"
like err 'old.pcap: not replaced, the old file is kept' "... keeping the old capture"
ok "... unchanged" cmp old.pcap udp.out
exits_with 65 "the same on stdout" sh -c 'tok2pcap nopkt.tok > nopkt.pcap'
exits_with 65 "and with --split" tok2pcap --split nopkt nopkt.tok
ok "... which writes no capture" sh -c '! ls nopkt-*.pcap 2>/dev/null'

# ---------------------------------------------------------------- link types
mkrec > mixed.tok <<'EOF'
hdr tgpt.tok
tok : S 1 d0 x01 S 1 d1 x02 E
tok : S 113 d0 x03 E
EOF
exits_with 65 "two link types in one capture exit 65" tok2pcap -w m.pcap mixed.tok
like err 'link types 1 and 113' "the error names both link types"
run test -e m.pcap
is "$RC" 1 "... and writes no capture"
exits_with 0 "--split writes one capture per link type" tok2pcap --split part mixed.tok
is "$(payloads part-1.pcap)" "01 02 " "PREFIX-1.pcap holds the Ethernet packets"
is "$(payloads part-113.pcap)" "03 " "PREFIX-113.pcap holds the Linux cooked ones"
is "$(pcapinfo part-113.pcap | head -1 | awk '{ print $6 }')" 113 "... with link type 113"
is "$(cat out)" "" "--split writes nothing to stdout"

# ---------------------------------------------------------------- bad input
# A stream cut inside its last record: the records before are written.
head -c $(($(stat -c %s udp.tok) - 20)) udp.tok > cut.tok
# packets in all records but the last: the entries of their wirelen arrays
want=$(mpdump -k wirelen udp.tok | head -n -1 | perl -ne '$n += () = /\d+/g; END { print $n + 0 }')
exits_with 65 "a stream cut inside a record exits 65" tok2pcap -w cut.pcap cut.tok
like err 'cut.tok.*byte offset [0-9]+' "the error names the input and the byte offset"
is "$(npackets cut.pcap.partial)" "$want" "the packets of the complete records are written (to FILE.partial)"
ok "... as a clean capture" pcapcmp -c cut.pcap.partial
ok "... and FILE is not made" test ! -e cut.pcap
exits_with 65 "a flow stream is the wrong record type: 65" tok2pcap -w f.pcap udp.flows
like err 'flow records' "the error says what the records are"
printf 'not msgpack at all' > junk
exits_with 65 "bytes that are no stream exit 65" tok2pcap -w j.pcap junk

done_testing
