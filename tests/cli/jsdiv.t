#!/usr/bin/env bash
# jsdiv.t: jsdiv's command line and verdicts: 0 for identical inputs, 1 for
# disjoint fields, symmetry, captures (through pcap2flow) and flow streams
# (from stdin too), the k-fingerprinting features of hand-made flows, --json
# keys, --fields, --max-jsd, bad input, and --plot.
. "$TGPT_TOP/tests/lib.sh"

need_tools mkpcap mkrec
for kind in tcp udp ipv6 mixed empty cut garbage; do
	mkpcap "$kind" -w "$kind.pcap" || { echo "Bail out! mkpcap $kind"; exit 1; }
done
mkpcap bulk --mb 1 --flows 20 -w bulk.pcap || { echo "Bail out! mkpcap bulk"; exit 1; }

# field F's value of KEY (jsd, tvd, hellinger, n_a, n_b) in the --json output FILE
get() { sed -nE "s/.*\"field\":\"$1\"[^}]*\"$2\":([^,}]*).*/\1/p" "${3:-out}"; }
# FIELD=JSD for every field of a --json output, one line
jsds() { sed -nE 's/.*"field":"([a-z_0-9]+)".*"jsd":([^,]*),.*/\1=\2/p' "${1:-out}" | tr '\n' ' '; }
# the divergences of every field, without the counts (which swap with the sides)
divs() { sed -nE 's/.*("field":"[a-z_0-9]+").*("jsd":[^,]*,"tvd":[^,]*,"hellinger":[^,]*).*/\1 \2/p' "${1:-out}"; }
# how many fields of a --json output have jsd VALUE
count_jsd() { grep -c "\"jsd\":$1," "${2:-out}"; }
ALL=19

# ------------------------------------------------------------ command line
exits_with 0 "--help exits 0" jsdiv --help
like out '^usage: jsdiv' "--help prints the usage on stdout"
like out -- '--max-jsd' "--help lists the long options"
like out 'alt_conc_sum' "--help lists the fields"
exits_with 0 "--version exits 0" jsdiv --version
like out '^jsdiv \(tgpt\) [0-9]' "--version names the tool"
like out 'msgpack' "--version lists msgpack-c"
exits_with 64 "an unknown option exits 64" jsdiv --bogus tcp.pcap tcp.pcap
like err '^usage: jsdiv' "the usage goes to stderr"
exits_with 64 "one input is not enough" jsdiv tcp.pcap
exits_with 64 "three inputs are too many" jsdiv tcp.pcap tcp.pcap tcp.pcap
exits_with 64 "only one side can be stdin" jsdiv - -
exits_with 64 "--max-jsd above 1" jsdiv --max-jsd 1.5 tcp.pcap tcp.pcap
exits_with 64 "--max-jsd not a number" jsdiv --max-jsd lots tcp.pcap tcp.pcap
exits_with 64 "an unknown field" jsdiv --fields src_ip,colour tcp.pcap tcp.pcap
like err "colour" "the message names the unknown field"
exits_with 64 "-j is no option of jsdiv (--json is long only)" jsdiv -j tcp.pcap tcp.pcap
exits_with 66 "a missing file exits 66" jsdiv nosuch.pcap tcp.pcap
like err 'nosuch.pcap' "the message names the missing file"

# ------------------------------------------------------------ identical inputs
exits_with 0 "a capture against itself" jsdiv --json tcp.pcap tcp.pcap
is "$(count_jsd 0)" "$ALL" "identical: every field's jsd is 0"
is "$(grep -c '"tvd":0,"hellinger":0,' out)" "$ALL" "identical: tvd and hellinger 0 too"
like out '"mean_jsd_packet":0,"mean_jsd_flow":0\}' "identical: both means 0"
is "$(get src_ip n_a) $(get src_ip n_b) $(get in_pkts n_a)" "14 14 1" \
	"counts: 14 packets and 1 flow a side"

exits_with 0 "the table on identical inputs" jsdiv mixed.pcap mixed.pcap
like out '^field +jsd +tvd +hellinger +n\(a\) +n\(b\)$' "the table's header"
like out '^src_ip +0\.0000 +0\.0000 +0\.0000 +[0-9]+ +[0-9]+$' "a row per field"
like out '^a: mixed.pcap \(pcap\): 17 IP packets in 6 flows, 2 other frames left out' \
	"the summary counts IP packets, flows and the frames left out"
like err '^jsdiv: mixed.pcap: 2 frames without an IP header left out of the fields$' \
	"... and says so on stderr"
like out '^mean jsd: packet fields 0\.0000, flow fields 0\.0000$' "the means"
exits_with 0 "--json" jsdiv --json mixed.pcap mixed.pcap
is "$(grep -c 'frames without an IP header left out' err)" 2 "... once for each side, with --json too"

run bash -c 'cat tcp.pcap | jsdiv --json - tcp.pcap'
is "$RC:$(count_jsd 0)" "0:$ALL" "a capture piped to stdin: all 0"
like out '"a":\{"source":"-","format":"pcap"' "stdin is named -"
run bash -c 'jsdiv --json tcp.pcap - < tcp.pcap'
is "$RC:$(count_jsd 0)" "0:$ALL" "a capture file on stdin: all 0"

# captures go through pcap2flow: its idle timeout (-t) splits flows
mkpcap idle --gap 30 -w idle30.pcap
jsdiv --json idle30.pcap idle30.pcap > out
like out '"a":\{[^}]*"flows":1,' "one flow with the default idle timeout (120 s)"
jsdiv --json -t 29.5 idle30.pcap idle30.pcap > out
like out '"a":\{[^}]*"flows":2,' "-t 29.5 splits it at the 30 s gap, as pcap2flow -t does"
jsdiv_bin=$(command -v jsdiv)
mkdir -p nogp alone
cp "$jsdiv_bin" alone/jsdiv
exits_with 69 "captures without pcap2flow (next to jsdiv or on PATH) exit 69" \
	env PATH="$T_DIR/nogp" alone/jsdiv tcp.pcap tcp.pcap
like err 'pcap2flow' "and the message names pcap2flow"
if command -v pcap2flow >/dev/null; then
	pcap2flow -a tcp.pcap > tcp.mp
	exits_with 0 "flow streams need no pcap2flow" env PATH="$T_DIR/nogp" alone/jsdiv tcp.mp tcp.mp
else
	skip "pcap2flow not built"
fi

# ------------------------------------------------------------ flow streams
if command -v pcap2flow >/dev/null; then
	pcap2flow -a mixed.pcap > mixed.mp
	exits_with 0 "a capture against its own flows" jsdiv --json mixed.pcap mixed.mp
	is "$(count_jsd 0)" "$ALL" "capture and its pcap2flow stream: all 0"
	like out '"b":\{"source":"mixed.mp","format":"stream","packets":17,"flows":6' \
		"the stream side: 17 IP packets in 6 flows"
	run bash -c 'pcap2flow -a mixed.pcap | jsdiv --json mixed.pcap -'
	is "$RC:$(count_jsd 0)" "0:$ALL" "a flow stream on stdin: all 0"
else
	skip "pcap2flow not built"; skip "pcap2flow"; skip "pcap2flow"; skip "pcap2flow"; skip "pcap2flow"
fi

# Hand-made flows (mkrec): Ethernet, IPv4, TCP, 54 bytes.
frame() { # SRC DST SPORT DPORT FLAGS
	local eth ip tcp
	eth=0000000000020000000000010800                  # MACs, IPv4
	ip=450000280000000040060000$(printf '%02x' ${1//./ } ${2//./ }) # 40 bytes, TTL 64, TCP
	tcp=$(printf '%04x%04x' "$3" "$4")000000000000000050${5}721000000000 # window 0x7210
	echo "$eth$ip$tcp"
}
# one flow of five packets a quarter second apart: DIRS (0 = client to server)
flow() { # CLIENT SERVER CPORT SPORT DIRS...
	local c=$1 s=$2 cp=$3 sp=$4 i=0 line="flow :"; shift 4
	for d in "$@"; do
		if [ "$d" = 0 ]; then f=$(frame "$c" "$s" "$cp" "$sp" 10); else f=$(frame "$s" "$c" "$sp" "$cp" 10); fi
		line="$line $((1700000000000000000 + i * 250000000))/54/$i/$d/$f"
		i=$((i + 1))
	done
	echo "$line"
}
{ echo "hdr tgpt.flow"; flow 10.0.0.1 10.0.0.2 1000 2000 0 1 0 0 1; } | mkrec > a.mp
{ echo "hdr tgpt.flow"; flow 192.168.0.1 192.168.0.2 3000 4000 0 0 0 0 0; } | mkrec > b.mp
exits_with 0 "hand-made flow streams" jsdiv --json a.mp b.mp
is "$(get src_ip jsd) $(get dst_ip jsd) $(get src_port jsd) $(get dst_port jsd)" "1 1 1 1" \
	"disjoint addresses and ports: jsd 1"
is "$(get src_ip tvd) $(get src_ip hellinger)" "1 1" "disjoint: tvd and hellinger 1"
is "$(get pkt_len jsd) $(get ttl jsd) $(get iat jsd) $(get tcp_flags jsd)" "0 0 0 0" \
	"same lengths, TTL, timing and flags: jsd 0"
is "$(get flow_pkts jsd) $(get flow_bytes jsd) $(get duration jsd)" "0 0 0" \
	"5 packets, 270 bytes, 1 s on both sides: jsd 0"
# a: out in out out in: f1 2, f2 .6, f3 .4, f4 std(0,2,3) = 1.25, f5 3, f6 3;
# b: all out: f1 0, f2 1, f3 0, f4 std(0..4) = 1.41, f5 5, f6 5
is "$(get in_pkts jsd) $(get out_frac jsd) $(get in_frac jsd)" "1 1 1" "k-fp f1 f2 f3 differ"
is "$(get out_order_std jsd) $(get out_pkts jsd) $(get alt_conc_sum jsd)" "1 1 1" "k-fp f4 f5 f6 differ"
{ echo "hdr tgpt.flow"; flow 10.0.0.9 10.0.0.8 5 6 1 0 1 1 0; } | mkrec > a2.mp
exits_with 0 "the same flow pattern on other hosts" jsdiv --json --fields flow a.mp a2.mp
is "$(count_jsd 0)" 9 "flow features depend on the pattern, not the hosts: all 0"
is "$(get src_ip jsd)" "" "--fields flow leaves the packet fields out"

# a flow of 3 packets against one of 5, and twice the first: the hand case
# P = (1/2, 1/2, 0), Q = (0, 1/2, 1/2) on flow_pkts (exact small counts)
{ echo "hdr tgpt.flow"; flow 10.0.0.1 10.0.0.2 1 2 0 1 0; flow 10.0.0.1 10.0.0.2 1 3 0 1 0 1 0; } | mkrec > p.mp
{ echo "hdr tgpt.flow"; flow 10.0.0.1 10.0.0.2 1 4 0 1 0 1 0; flow 10.0.0.1 10.0.0.2 1 5 0 1 0 1 0 1; } | mkrec > q.mp
exits_with 0 "two flows a side" jsdiv --json --fields flow_pkts p.mp q.mp
is "$(get flow_pkts jsd) $(get flow_pkts tvd) $(get flow_pkts hellinger)" "0.5 0.5 0.707107" \
	"flow_pkts (3,5) vs (5,6): jsd 0.5, tvd 0.5, hellinger 0.7071"

# ------------------------------------------------------------ disjoint, symmetric
exits_with 0 "bulk TCP against DNS-like UDP" jsdiv --json bulk.pcap udp.pcap
is "$(get src_ip jsd) $(get dst_ip jsd) $(get src_port jsd) $(get dst_port jsd) $(get ip_proto jsd)" \
	"1 1 1 1 1" "disjoint captures: addresses, ports, protocol at 1"
is "$(get tcp_flags jsd) $(get tcp_flags n_b)" "1 0" "no TCP on one side: tcp_flags 1"
divs out > ab
jsdiv --json udp.pcap bulk.pcap > ba.json
divs ba.json > ba
is "$(cmp -s ab ba && echo same)" same "symmetric: (a,b) and (b,a) give the same divergences"
is "$(get src_port n_a ba.json)" "$(get src_port n_b)" "the counts swap with the sides"
jsdiv --json ipv6.pcap tcp.pcap > x.json
jsdiv --json tcp.pcap ipv6.pcap > y.json
is "$(divs x.json | md5sum)" "$(divs y.json | md5sum)" "symmetric on IPv6 against IPv4"
ok "not all zero" grep -q '"jsd":0\.[0-9]' x.json

# ------------------------------------------------------------ --json, --fields
jsdiv --json --fields src_ip,f1,f6 tcp.pcap udp.pcap > out
is "$(jsds | sed 's/=[^ ]*//g')" "src_ip in_pkts alt_conc_sum " "--fields with f1..f6 aliases, in table order"
for key in field level jsd tvd hellinger n_a n_b bins; do
	ok "--json: every field object has \"$key\"" test "$(grep -c "\"$key\":" out)" -ge 3
done
like out '"mean_jsd_packet":[0-9.]+,"mean_jsd_flow":[0-9.]+\}$' "--json: the two means"
like out '^\{"a":\{"source":"tcp.pcap","format":"pcap","packets":14,"flows":1,"skipped":0\},"b":' \
	"--json: what each side held"
if command -v python3 >/dev/null; then
	ok "--json is one valid JSON document" python3 -m json.tool out
else
	skip "python3 absent: JSON syntax not checked"
fi
jsdiv --json --fields packet tcp.pcap udp.pcap > out
like out '"mean_jsd_packet":[0-9.]+,"mean_jsd_flow":null\}' "--fields packet: no flow mean (null)"
jsdiv --json --fields tcp_flags udp.pcap udp.pcap > out
is "$(get tcp_flags jsd) $(get tcp_flags n_a)" "null 0" "no values on either side: null"

# ------------------------------------------------------------ --max-jsd
exits_with 1 "--max-jsd: a field above the bound exits 1" jsdiv --max-jsd 0.5 tcp.pcap udp.pcap
like out '^ip_proto +1\.0000' "the table is printed all the same"
exits_with 0 "--max-jsd: identical inputs exit 0" jsdiv --max-jsd 0 tcp.pcap tcp.pcap
exits_with 0 "--max-jsd 1 is never exceeded" jsdiv --max-jsd 1 tcp.pcap udp.pcap
exits_with 0 "--max-jsd on the chosen fields only" jsdiv --max-jsd 0.01 --fields ttl tcp.pcap udp.pcap

# ------------------------------------------------------------ bad input
exits_with 65 "bytes that are not a capture exit 65" jsdiv tcp.pcap garbage.pcap
like err '^jsdiv: garbage.pcap: neither a capture' "the message names the file"
exits_with 65 "a capture cut inside a record exits 65" jsdiv cut.pcap tcp.pcap
like err '^pcap2flow: cut.pcap: packet 14: ' "pcap2flow's message names the file and the packet"
like err '^jsdiv: cut.pcap: damaged capture' "and jsdiv says what it means"
is "$(wc -c < out)" 0 "nothing on stdout"
run bash -c 'cat cut.pcap | jsdiv tcp.pcap -'
is "$RC" 65 "a cut capture piped to stdin exits 65"
like err '^pcap2flow: <stdin>: packet 14: ' "pcap2flow names stdin and the packet"
exits_with 65 "a capture without IP packets exits 65" jsdiv tcp.pcap empty.pcap
like err 'empty.pcap: no IP packets' "and says so"
: > zero
exits_with 65 "an empty file exits 65" jsdiv zero tcp.pcap
like err '^jsdiv: zero: empty' "the message names the empty file"
head -c 100 a.mp > broken.mp
exits_with 65 "a stream cut inside a record exits 65" jsdiv tcp.pcap broken.mp
like err 'broken.mp: .*byte offset [0-9]+' "the message names the file and the offset"
run bash -c 'cat garbage.pcap | jsdiv - tcp.pcap'
is "$RC" 65 "garbage on stdin exits 65"
like err '<stdin>' "and the message says stdin"
echo "hdr tgpt.tok" | mkrec > tok.mp
exits_with 65 "a token stream is not a flow stream" jsdiv tcp.pcap tok.mp
like err 'tok.mp' "the message names it"

# ------------------------------------------------------------ --plot
exits_with 69 "--plot without gnuplot on PATH exits 69" env PATH="$T_DIR/nogp" "$jsdiv_bin" --plot p tcp.pcap udp.pcap
like err 'gnuplot' "and names gnuplot"
if command -v gnuplot >/dev/null; then
	exits_with 0 "--plot writes the plots" jsdiv --plot plots bulk.pcap udp.pcap
	is "$(ls plots/*.png | wc -l)" "$ALL" "a PNG per field"
	is "$(head -c 4 plots/src_ip.png | od -An -c | tr -d ' ')" '211PNG' "the files are PNG"
	ok "a histogram plot has content" test "$(stat -c %s plots/pkt_len.png)" -gt 2000
	exits_with 0 "--plot with --fields" jsdiv --plot plots2 --fields iat,f4 tcp.pcap ipv6.pcap
	is "$(cd plots2 && ls)" "$(printf 'iat.png\nout_order_std.png')" "only the chosen fields"
	: > notadir
	exits_with 73 "--plot into a file that is not a directory exits 73" jsdiv --plot notadir tcp.pcap tcp.pcap
else
	skip "gnuplot absent"; skip "gnuplot"; skip "gnuplot"; skip "gnuplot"; skip "gnuplot"; skip "gnuplot"; skip "gnuplot"
fi

done_testing
