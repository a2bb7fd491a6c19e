#!/usr/bin/env bash
# examples.t: the example captures the project ships (examples/data, listed in
# examples/labels.tsv, made by examples/capture.sh): each one is there, is a
# whole-frame Ethernet pcap, opens in pcap2flow, holds flows of its label and
# of its application's protocol and port, and goes through pcap2flow --all |
# flow2tok | tok2pcap back to the same packets. Parts whose tools are not
# built yet are skipped.
. "$TGPT_TOP/tests/lib.sh"

EX=$TGPT_TOP/examples
TSV=$EX/labels.tsv
MAX_TOTAL=$((8 * 1024 * 1024)) # "a few MB": the repository carries them

# What each label must hold: at least MIN flows (pcap2flow --all), of the IP
# protocols PROTOS, each to the server port PORTS ("-": none, e.g. ICMP).
# The captures hold more (examples/data/README); the margin leaves room for a
# remake, whose counts vary a little.
declare -A MIN PROTOS PORTS
while read -r label min protos ports; do
	MIN[$label]=$min PROTOS[$label]=$protos PORTS[$label]=$ports
done <<'EOF'
http   80  6     80
tls    40  6     443|4433
dns   150  6|17  53
ssh    25  6     22
icmp   15  1|58  -
ntp    35  17    123
redis  40  6     6379
mqtt   35  6     1883
bulk   10  6|17  5201
EOF

have() { command -v "$1" >/dev/null 2>&1; }
# lines of FILE that are not all of the extended regex RE (anchored)
strays() { grep -Ecv "^($2)\$" "$1" || true; }

# ------------------------------------------------------------ the list
if [ ! -f "$TSV" ]; then
	skip "examples/labels.tsv is missing (sudo examples/capture.sh makes it)"
	done_testing
fi
FILES=() LABELS=()
while IFS=$'\t' read -r file label rest; do
	case $file in '' | '#'*) continue ;; esac
	FILES+=("$file") LABELS+=("$label")
done <"$TSV"
ok "labels.tsv names at least 8 captures (${#FILES[@]})" test "${#FILES[@]}" -ge 8
is "$(printf '%s\n' "${LABELS[@]}" | sort | uniq -d | tr '\n' ' ')" "" "no label is listed twice"
is "$(printf '%s\n' "${LABELS[@]}" | grep -Ecv '^[a-z0-9][a-z0-9_.-]*$')" 0 "labels are plain words"
ok "examples/data/README exists" test -s "$EX/data/README"
ok "the capture script is valid bash" bash -n "$EX/capture.sh"

total=0
for i in "${!FILES[@]}"; do
	f=$EX/${FILES[$i]} l=${LABELS[$i]}
	ok "$l: ${FILES[$i]} exists" test -s "$f"
	[ -s "$f" ] || continue
	total=$((total + $(stat -c %s "$f")))
	# classic pcap, little-endian, microseconds (a1b2c3d4), Ethernet (1),
	# snapshot length of whole frames
	is "$(od -An -tx4 -N4 "$f" | tr -d ' ')" a1b2c3d4 "$l: a classic pcap (microseconds)"
	is "$(od -An -tu4 -j20 -N4 "$f" | tr -d ' ')" 1 "$l: link type Ethernet"
	ok "$l: snapshot length keeps whole frames" test "$(od -An -tu4 -j16 -N4 "$f" | tr -d ' ')" -ge 65535
	grep -q "^$l.pcap" "$EX/data/README" 2>/dev/null
	t_result $? "$l: the README describes it"
done
ok "all captures together are at most 8 MB ($total bytes)" test "$total" -le "$MAX_TOTAL"

# ------------------------------------------------------------ flows
if ! have pcap2flow; then
	skip "pcap2flow is not built: the captures' flows are not checked"
else
	all_flows=0
	for i in "${!FILES[@]}"; do
		f=$EX/${FILES[$i]} l=${LABELS[$i]}
		[ -s "$f" ] || continue
		exits_with 0 "$l: pcap2flow opens it" pcap2flow -a -q -l "$l" -o "$l.flows" "$f"
		if ! have mpdump; then
			skip "$l: mpdump is not built: flows not counted"
			continue
		fi
		mpdump -k t "$l.flows" | grep -c '"flow"' >n.flows || true
		mpdump -k label "$l.flows" >labels || true
		n=$(cat n.flows) min=${MIN[$l]:-1}
		all_flows=$((all_flows + n))
		ok "$l: at least $min flows ($n)" test "$n" -ge "$min"
		is "$(strays labels "\"$l\"")" 0 "$l: every flow carries the label"
		[ -n "${PROTOS[$l]:-}" ] || continue
		mpdump -k proto "$l.flows" >protos || true
		is "$(strays protos "${PROTOS[$l]}")" 0 "$l: flows of IP protocol ${PROTOS[$l]} only"
		[ "${PORTS[$l]}" = - ] && continue
		# a flow's source is its first packet's sender: here always the client
		mpdump -k dst_port "$l.flows" >ports || true
		is "$(strays ports "${PORTS[$l]}")" 0 "$l: every flow goes to port ${PORTS[$l]}"
	done
	have mpdump && ok "a few hundred flows in all ($all_flows)" test "$all_flows" -ge 300
fi

# ------------------------------------------------------------ round trip
missing=""
for tool in pcap2flow flow2tok tok2pcap pcapcmp; do have "$tool" || missing+=" $tool"; done
if [ -n "$missing" ]; then
	skip "round trip: not built:$missing"
else
	for i in "${!FILES[@]}"; do
		f=$EX/${FILES[$i]} l=${LABELS[$i]}
		[ -s "$f" ] || continue
		pcap2flow --all -q "$f" 2>"$l.err" | flow2tok -q 2>>"$l.err" | tok2pcap -q -w "$l.out.pcap" 2>>"$l.err"
		status="${PIPESTATUS[*]}"
		is "$status" "0 0 0" "$l: pcap2flow --all | flow2tok | tok2pcap exit 0"
		[ "$status" = "0 0 0" ] || sed 's/^/#   /' "$l.err" | head -5
		run pcapcmp "$f" "$l.out.pcap"
		is "$RC" 0 "$l: the round trip gives back the same packets"
		like out 'mismatches 0$' "$l: pcapcmp finds no mismatch"
	done
fi

# ------------------------------------------------------------ capture.sh
exits_with 0 "capture.sh -h exits 0" "$EX/capture.sh" -h
like out '^usage: capture.sh' "capture.sh -h prints the usage"
exits_with 64 "capture.sh refuses an unknown label" "$EX/capture.sh" nosuchlabel
# (never run as root here: it would capture)
if [ "$(id -u)" != 0 ]; then
	exits_with 77 "capture.sh refuses to run without root" bash "$EX/capture.sh" dns
	like err 'needs root' "and says why"
elif have setpriv; then
	# the script on standard input, run from /: the checkout may lie in a
	# directory the unprivileged user cannot enter (mktemp -d makes 0700 ones)
	exits_with 77 "capture.sh refuses to run without root" \
		sh -c 'cd / && exec setpriv --reuid=65534 --regid=65534 --clear-groups bash -s dns' \
		< "$EX/capture.sh"
	like err 'needs root' "and says why"
else
	skip "setpriv is missing: the refusal without root is not checked"
fi

done_testing
