#!/usr/bin/env bash
# flow2tok.t: the tokenizer's command line and its output, token by token:
# packet layout, float64 intervals, side data, masking, --max-tokens,
# --first-packets and --first-bytes, damaged
# and wrong input. Crafted flows come from mkrec, captures from mkpcap.
. "$TGPT_TOP/tests/lib.sh"

# toks FILE N: the tokens of the Nth token record of FILE, one per line.
toks() {
	mpdump -k tokens "$1" | sed -n "${2}p" |
		perl -ne 's/^"0x//; s/"\s*$//; print join("\n", unpack("v*", pack("H*", $_))), "\n"'
}
# alltoks FILE: the tokens of every record, one per line.
alltoks() {
	mpdump -k tokens "$1" |
		perl -ne 's/^"0x//; s/"\s*$//; print join("\n", unpack("v*", pack("H*", $_))), "\n"'
}
# be8 HEX16: the 8 tokens of a big-endian float64 given as 16 hex digits.
be8() { perl -e 'print join("\n", unpack("C8", pack("H16", $ARGV[0]))), "\n"' "$1"; }
records() { mpdump "$1" | grep -c '"t":"tok"'; }

# ---------------------------------------------------------------- CLI
exits_with 0 "--help exits 0" flow2tok --help
like out '^usage: flow2tok' "--help prints the usage on stdout"
exits_with 0 "--version exits 0" flow2tok --version
like out '^flow2tok \(tgpt\) [0-9]' "--version names the tool and version"
exits_with 64 "an unknown flag exits 64" flow2tok --frobnicate
like err 'usage: flow2tok' "a bad flag prints the usage on stderr"
exits_with 64 "--mask with an unknown field exits 64" flow2tok --mask mac,vlan
exits_with 64 "--max-tokens below 12 exits 64" flow2tok --max-tokens 11

# ---------------------------------------------------------------- layout
# Two packets 1.5 s apart: START, link type, 8 interval tokens, the bytes.
mkrec > two.flows <<'EOF'
hdr tgpt.flow
flow id=7 source=a.pcap linktype=1 snaplen=65535 tsprec=9 label=web : 1700000000000000000/aabbcc 1700000001500000000/ddeeff00
EOF
flow2tok two.flows > two.tok
{ echo 256; echo 1; be8 0000000000000000; printf '%s\n' 170 187 204
  echo 256; echo 1; be8 3ff8000000000000; printf '%s\n' 221 238 255 0; echo 257; } > want
toks two.tok 1 > got
is "$(cat got)" "$(cat want)" "tokens of a two-packet flow, one by one"

# Intervals: 0.25 s, 1 ns, and a clock that steps back 1 s.
mkrec > ivl.flows <<'EOF'
hdr tgpt.flow
flow : 1000000000/01 1250000000/02 1250000001/03 250000001/04
EOF
flow2tok ivl.flows > ivl.tok
toks ivl.tok 1 > got
is "$(sed -n 14,21p got | tr '\n' ' ')" "$(be8 3fd0000000000000 | tr '\n' ' ')" "0.25 s is big-endian float64 3fd0000000000000"
is "$(sed -n 25,32p got | tr '\n' ' ')" "$(be8 3e112e0be826d695 | tr '\n' ' ')" "1 ns is float64 1e-9"
is "$(sed -n 36,43p got | tr '\n' ' ')" "$(be8 bff0000000000000 | tr '\n' ' ')" "a step back of 1 s is -1.0"

# A real frame: mkpcap's first TCP packet, its bytes read from the pcap.
mkpcap tcp -w tcp.pcap
pcap2flow --all tcp.pcap > tcp.flows
flow2tok tcp.flows > tcp.tok
caplen=$(od -An -tu4 -j 32 -N 4 tcp.pcap | tr -d ' ')
{ echo 256; echo 1; be8 0000000000000000; od -An -v -tu1 -j 40 -N "$caplen" tcp.pcap | tr -s ' ' '\n' | sed '/^$/d'; } > want
toks tcp.tok 1 | head -n $((caplen + 10)) > got
is "$(cat got)" "$(cat want)" "first packet of a capture: START, 1, zero interval, its $caplen bytes"
is "$(toks tcp.tok 1 | tail -n 1)" 257 "END closes the flow"

# The escape: link types above 254 are token 255, the real one in side data.
mkpcap sll2 | pcap2flow > sll2.flows
flow2tok sll2.flows > sll2.tok
is "$(toks sll2.tok 1 | sed -n 2p)" 255 "LINKTYPE_LINUX_SLL2 (276) is the escape token 255"
mpdump sll2.tok > dump
like dump '"linktype":276' "the record's linktype holds 276"

# ---------------------------------------------------------------- side data
mpdump two.tok > dump
like dump '"id":7,"source":"a.pcap"' "side data: id and source"
like dump '"label":"web"' "side data: label"
like dump '"linktype":1,"snaplen":65535,"tsprec":9,"first_ns":1700000000000000000' "side data: link type, snaplen, precision, first time stamp"
like dump '"wirelen":\[0,0\],"index":\[0,1\]' "side data: wire lengths (0 = caplen) and indices"
flow2tok --no-side -l other two.flows | mpdump > dump
run grep -E 'source|first_ns|linktype|wirelen|index' dump
is "$RC" 1 "--no-side drops source, time stamps, link type, lengths and indices"
like dump '"label":"other"' "-l sets the label, kept by --no-side"
is "$(flow2tok --no-side two.flows | mpdump -k tokens)" "$(mpdump -k tokens two.tok)" "--no-side keeps the tokens"
mkpcap truncated | pcap2flow --all > trunc.flows
flow2tok trunc.flows | mpdump -k wirelen > wl
like wl '[1-9]' "snaplen-cut packets keep their wire length in side data"

# ---------------------------------------------------------------- stdin, files, output
flow2tok < two.flows > a.tok
flow2tok - < two.flows > b.tok
ok "no argument and '-' read stdin alike" cmp a.tok b.tok
ok "a file argument gives the same stream" cmp a.tok two.tok
flow2tok two.flows ivl.flows > both.tok
is "$(records both.tok)" 2 "two inputs, one stream"
exits_with 0 "-o FILE exits 0" flow2tok -o out.tok two.flows
ok "-o FILE writes the stream" cmp out.tok two.tok
is "$(ls | grep -c 'tmp\.')" 0 "-o leaves no temporary file"
run on_tty flow2tok two.flows
is "$RC" 64 "refuses to write to a terminal"
run on_tty flow2tok --force -q two.flows
is "$RC" 0 "--force writes to a terminal"
exits_with 66 "a missing input exits 66" flow2tok no-such.flows

# ---------------------------------------------------------------- masking
# Zeroes exactly the MACs (bytes 0-11), IPv4 addresses (26-33) and ports
# (34-37) of each Ethernet/IPv4/TCP packet, nothing else.
mask_expect() { # OFFSETS...: zero these byte offsets of every packet
	awk -v offs="$*" 'BEGIN { n = split(offs, o, " "); for (i = 1; i <= n; i++) z[o[i]] = 1 }
		$1 == 256 { pos = -1 } { pos++; b = pos - 10 } b >= 0 && (b in z) && $1 < 256 { $1 = 0 } { print }'
}
mkpcap tcp | pcap2flow > m.flows
flow2tok m.flows > plain.tok
flow2tok --mask mac,ip,port m.flows > all.tok
flow2tok --mask ip m.flows > ip.tok
alltoks plain.tok > plain
is "$(alltoks all.tok)" "$(mask_expect $(seq 0 11) $(seq 26 37) < plain)" "--mask mac,ip,port zeroes MACs, addresses and ports, in place"
is "$(alltoks ip.tok)" "$(mask_expect $(seq 26 33) < plain)" "--mask ip zeroes only the addresses"
run cmp -s plain.tok all.tok
is "$RC" 1 "masking changes the stream"
is "$(alltoks all.tok | wc -l)" "$(wc -l < plain)" "masking keeps every offset"

# ---------------------------------------------------------------- --max-tokens
{ mkpcap tcp | pcap2flow; mkpcap udp | pcap2flow; } > big.flows
flow2tok big.flows > full.tok
flow2tok --max-tokens 300 big.flows > cut.tok 2> cut.err
like cut.err 'flows cut by --max-tokens 300' "the cut flows are counted on stderr"
n=$(records full.tok)
fits=1 prefix=1
for i in $(seq 1 "$n"); do
	toks cut.tok "$i" > c; toks full.tok "$i" > f
	[ "$(wc -l < c)" -le 300 ] || fits=0
	# cut at a packet boundary: the cut tokens minus END, then START or END follows in the full record
	k=$(($(wc -l < c) - 1))
	head -n "$k" f | cmp -s - <(head -n "$k" c) || prefix=0
	next=$(sed -n "$((k + 1))p" f)
	[ "$next" = 256 ] || [ "$next" = 257 ] || prefix=0
done
is "$fits" 1 "every record fits 300 tokens"
is "$prefix" 1 "records are cut at packet boundaries"
mpdump cut.tok > dump
like dump '"cut":true' "cut records say so"
# Packets of 15 tokens: the budget counts START to END exactly.
mkrec > five.flows <<'EOF'
hdr tgpt.flow
flow : 1/0102030405 2/0102030405 3/0102030405 4/0102030405
EOF
is "$(flow2tok --max-tokens 61 five.flows | mpdump | grep -c '"cut"')" 0 "a flow of exactly N tokens is not cut"
is "$(flow2tok -q --max-tokens 61 five.flows > t.tok; toks t.tok 1 | wc -l)" 61 "... and keeps its 4 packets"
is "$(flow2tok -q --max-tokens 60 five.flows > t.tok; toks t.tok 1 | wc -l)" 46 "N - 1 keeps 3 packets (46 tokens)"
is "$(flow2tok -q --max-tokens 46 five.flows > t.tok; toks t.tok 1 | wc -l)" 46 "46 still keeps 3"
is "$(flow2tok -q --max-tokens 45 five.flows > t.tok; toks t.tok 1 | wc -l)" 31 "45 keeps 2"
flow2tok --max-tokens 12 big.flows > tiny.tok 2> tiny.err
is "$(toks tiny.tok 1 | wc -l)" 12 "a first packet over the budget is cut to N-1 tokens, then END"
is "$(toks tiny.tok 1 | tail -n 1)" 257 "the cut record still ends with END"
like tiny.err 'inside their first packet' "cutting inside a first packet is counted"
flow2tok -q --max-tokens 12 big.flows 2> quiet.err > /dev/null
is "$(cat quiet.err)" "" "-q keeps the summary quiet"

# ---------------------------------------------------------------- --first-packets, --first-bytes
# five.flows: 4 packets of 5 bytes (15 tokens each).
is "$(flow2tok -q --first-packets 2 five.flows > t.tok; toks t.tok 1 | wc -l)" 31 \
	"--first-packets 2 keeps 2 packets (2 x 15 tokens and END)"
mpdump t.tok > d
like d '"cut":true' "... and says the record is cut"
is "$(flow2tok -q --first-bytes 3 five.flows > t.tok; toks t.tok 1 | wc -l)" 53 \
	"--first-bytes 3 keeps 3 bytes of each of the 4 packets (4 x 13 tokens and END)"
is "$(toks t.tok 1 | sed -n '11,13p' | paste -sd' ')" "1 2 3" "... the first 3"
mpdump t.tok > d
like d '"wirelen":\[2,2,2,2\]' "... their wire lengths kept (2 bytes beyond each)"
is "$(flow2tok -q --first-bytes 5 five.flows | mpdump | grep -c '"cut"')" 0 \
	"--first-bytes of a whole packet cuts nothing"
flow2tok -q --first-packets 3 --first-bytes 40 --mask mac,ip,port big.flows > fb.tok
flow2tok -q --mask mac,ip,port big.flows > fm.tok
prefix=1
for i in $(seq 1 "$(records fm.tok)"); do
	# each packet of fb.tok: the head and first 40 bytes of fm.tok's
	toks fm.tok "$i" | awk 'NR > 1 && $1 == 256 { p++ } $1 != 257 { if (p < 3) { n[p]++; if (n[p] <= 50) print } }' > want
	toks fb.tok "$i" | grep -vx 257 > got
	cmp -s want got || prefix=0
done
is "$prefix" 1 "masked flows: the first 40 bytes of the first 3 packets, as tokenized whole"
exits_with 0 "tok2pcap writes them back" tok2pcap -q -w fb.pcap fb.tok
is "$(tcpdump -nr fb.pcap 2>/dev/null | wc -l)" "$(mpdump fb.tok | grep -o '"index":\[[0-9,]*' | tr ',' '\n' | wc -l)" \
	"... every packet kept"
exits_with 64 "--first-bytes 0 exits 64" flow2tok --first-bytes 0 five.flows

# ---------------------------------------------------------------- exactness
# An interval float64 cannot hold to the nanosecond (2^53 + 1 ns): warned,
# and the exact time stamps go in "ts_ns".
mkrec > huge.flows <<'EOF'
hdr tgpt.flow
flow : 1000/01 9007199254741993/02
EOF
exits_with 0 "an inexact interval is no error" flow2tok huge.flows
like err 'does not survive float64' "an inexact interval is warned about"
like err '^flow2tok: 1 flow with a time interval float64 cannot hold exactly$' "... and counted, in the singular"
flow2tok huge.flows 2>/dev/null | mpdump -k ts_ns > ts
is "$(cat ts)" "[1000,9007199254741993]" "the exact time stamps are kept in ts_ns"
flow2tok two.flows | mpdump > dump
run grep -c ts_ns dump
is "$RC" 1 "no ts_ns when the intervals are exact"

# ---------------------------------------------------------------- bad input
size=$(stat -c %s tcp.flows)
head -c $((size - 20)) tcp.flows > cut.flows
exits_with 65 "a stream cut inside a record exits 65" flow2tok cut.flows
like err 'cut.flows.*byte offset [0-9]+' "the error names the input and the byte offset"
is "$(records out)" "$(($(mpdump tcp.flows | grep -c '"t":"flow"') - 1))" "the records before the damage are written"
exits_with 65 "a token stream is the wrong record type: 65" flow2tok two.tok
like err 'tok records' "the error says what the records are"
printf 'not msgpack at all' > junk
exits_with 65 "bytes that are no stream exit 65" flow2tok junk

done_testing
