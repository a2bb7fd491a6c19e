#!/usr/bin/env bash
# eval-linktypes.t: jsdiv and realism-eval on two sides of different link
# types. The same DNS traffic as Ethernet and as raw IP differs in every
# length and offset by the link header alone (the discriminator tells them
# apart at F1 0.92): both tools say so, and --ip-layer compares the packets
# from their IP header on, where the two sides are the same traffic.
. "$TGPT_TOP/tests/lib.sh"
need_tools jsdiv realism-eval jq

eth=$TGPT_TOP/examples/data/dns.pcap
[ -f "$eth" ] || { echo "1..0 # skip examples/data/dns.pcap missing"; exit 0; }
# raw IP: every packet without its 14 bytes of Ethernet header, link type 101
perl -e 'local $/; open I, "<", $ARGV[0] or die; binmode I; my $d = <I>;
	my $o = substr($d, 0, 20) . pack("V", 101);
	for (my $at = 24; $at + 16 <= length $d;) {
		my ($s, $f, $c, $l) = unpack("VVVV", substr($d, $at, 16));
		$o .= pack("VVVV", $s, $f, $c - 14, $l - 14) . substr($d, $at + 30, $c - 14);
		$at += 16 + $c;
	}
	open O, ">", $ARGV[1] or die; binmode O; print O $o;' "$eth" raw.pcap
cp "$eth" eth.pcap

exits_with 0 "jsdiv: Ethernet against raw IP" jsdiv eth.pcap raw.pcap
like err '^jsdiv: the two sides differ in link type: eth.pcap has 1 \(EN10MB\), raw.pcap has 101 \(RAW\)' \
	"jsdiv warns, naming both sides' link types"
like err '--ip-layer' "... and the option that compares them"
exits_with 0 "jsdiv: the same link type" jsdiv eth.pcap eth.pcap
is "$(cat err)" "" "... no warning"
exits_with 0 "jsdiv --ip-layer" jsdiv --json --ip-layer eth.pcap raw.pcap
is "$(cat err)" "" "--ip-layer: no warning"
is "$(jq '[.fields[] | .jsd] | max' out)" 0 "--ip-layer: every field's divergence is 0"
jsdiv --json eth.pcap raw.pcap 2>/dev/null > as-is.json
is "$(jq '.fields[] | select(.field == "pkt_len") | .jsd > 0' as-is.json)" true \
	"without it, the packet lengths differ by the Ethernet header"

exits_with 0 "realism-eval: Ethernet against raw IP" realism-eval -q --json eth.pcap raw.pcap
like err '^realism-eval: the two sides differ in link type: eth.pcap has 1 \(EN10MB\), raw.pcap has 101 \(RAW\)' \
	"realism-eval warns too"
is "$(jq '.f1 > 0.8' out)" true "... where the discriminator tells the link layers apart"
exits_with 0 "realism-eval --ip-layer" realism-eval -q --json --ip-layer eth.pcap raw.pcap
is "$(cat err)" "" "--ip-layer: no warning"
is "$(jq '.f1 < 0.6' out)" true "--ip-layer: the discriminator does no better than chance"
is "$(jq '.mean_jsd_packet' out)" 0 "--ip-layer: no divergence"
is "$(jq '.validity' out)" 1 "--ip-layer: every packet valid as raw IP"

done_testing
