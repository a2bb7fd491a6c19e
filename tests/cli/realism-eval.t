#!/usr/bin/env bash
# realism-eval.t: realism-eval's command line and its verdicts on traffic
# whose answer is known: two halves of the same real captures cannot be told
# apart (F1 near 0.5), crude fakes can (F1 near 1), real traffic is valid,
# corrupted packets and gapped TCP flows are not; and the --baseline
# classifier beats chance on the labelled example captures.
. "$TGPT_TOP/tests/lib.sh"

need_tools mkpcap mkrec mpdump pcap2flow
for kind in tcp udp cut garbage; do
	mkpcap "$kind" -w "$kind.pcap" || { echo "Bail out! mkpcap $kind"; exit 1; }
done
mkpcap bulk --mb 1 --flows 20 -w bulk.pcap || { echo "Bail out! mkpcap bulk"; exit 1; }

# the first value of KEY (a number, null, true, false) in the JSON file (out):
# the summary's, which comes before the details
val() { grep -o "\"$1\":[-0-9.a-z]*" "${2:-out}" | head -1 | cut -d: -f2; }
# the value of KEY in the "generated" (or "real") object, strings quoted
gen() { sed -n "s/.*\"${2:-generated}\":{[^}]*\"$1\":\\([-0-9.a-z\"]*\\).*/\\1/p" "${3:-out}" | head -1; }
# whether the awk condition on x holds
holds() { awk -v x="$1" "BEGIN { exit !($2) }"; }

# Flow streams back into mkrec's text, to pick and damage flows (mpdump's
# JSON in, mkrec's lines out): even/odd keep the flows of even/odd id (their
# sources get TAG appended), corrupt flips byte 24 of every other packet
# (IPv4: the header checksum; IPv6: the source address), drop leaves out
# every third packet of each flow.
cat > pick.awk <<'EOF'
function num(key,   s) {
	if (!match($0, "\"" key "\":[0-9]+")) return ""
	s = substr($0, RSTART, RLENGTH); sub(/.*:/, "", s); return s
}
function str(key,   s) {
	if (!match($0, "\"" key "\":\"[^\"]*\"")) return ""
	s = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", s); sub(/"$/, "", s); return s
}
BEGIN { hex = "0123456789abcdef" }
/"t":"hdr"/ { print "hdr tgpt.flow"; next }
/"t":"flow"/ {
	id = num("id")
	if ((mode == "even" && id % 2 == 1) || (mode == "odd" && id % 2 == 0)) next
	p = substr($0, index($0, "\"packets\":[[") + 12)
	sub(/\]\]\}$/, "", p)
	n = split(p, pk, /\],\[/)
	line = "flow id=" id " source=" str("source") tag " linktype=" num("linktype")
	if (str("label") != "") line = line " label=" str("label")
	line = line " :"
	for (i = 1; i <= n; i++) {
		split(pk[i], f, ",")
		h = f[5]; gsub(/"/, "", h); sub(/^0x/, "", h)
		if (mode == "drop" && i % 3 == 0) continue
		if (mode == "corrupt" && i % 2 == 0 && length(h) >= 50) {
			d = index(hex, substr(h, 49, 1)) - 1
			h = substr(h, 1, 48) substr(hex, (d + 8) % 16 + 1, 1) substr(h, 50)
		}
		line = line " " f[1] "/" f[2] "/" f[3] "/" f[4] "/" h
	}
	print line
}
EOF
pick() { mpdump "$1" | awk -v mode="$2" -v tag="${3:-}" -f pick.awk | mkrec; }

# N crude fakes: 2-31 packets of random wire length (60-1514 bytes, 64
# captured: an Ethernet and IPv4 header start, then random bytes), random
# directions and gaps.
cat > fakes.awk <<'EOF'
function bytes(n,   s, i) { s = ""; for (i = 0; i < n; i++) s = s sprintf("%02x", int(rand() * 256)); return s }
BEGIN {
	srand(seed)
	print "hdr tgpt.flow"
	for (f = 0; f < n; f++) {
		line = "flow id=" f " source=fake :"
		t = 1700000000 + f
		k = 2 + int(rand() * 30)
		for (i = 0; i < k; i++) {
			t += rand() * 0.5
			line = line sprintf(" %.0f/%d/%d/%d/", t * 1e9, 60 + int(rand() * 1455), i, rand() < 0.5) \
				"02000000000202000000000108004500" bytes(48)
		}
		print line
	}
}
EOF

# ------------------------------------------------------------ command line
exits_with 0 "--help exits 0" realism-eval --help
like out '^usage: realism-eval' "--help prints the usage on stdout"
like out -- '--baseline' "--help lists --baseline"
exits_with 0 "--version exits 0" realism-eval --version
like out '^realism-eval \(tgpt\) [0-9]' "--version names the tool"
like out '^xgboost [0-9]' "--version names XGBoost"
exits_with 64 "an unknown option exits 64" realism-eval --bogus tcp.pcap tcp.pcap
like err '^usage: realism-eval' "the usage goes to stderr"
exits_with 64 "one input is not enough" realism-eval tcp.pcap
exits_with 64 "three inputs are too many" realism-eval tcp.pcap tcp.pcap tcp.pcap
exits_with 64 "only one side can be stdin" realism-eval - -
exits_with 64 "--folds 1" realism-eval --folds 1 tcp.pcap tcp.pcap
exits_with 64 "--packets 0" realism-eval --packets 0 tcp.pcap tcp.pcap
exits_with 64 "--split sideways" realism-eval --baseline --split sideways a=tcp.pcap
exits_with 64 "--test-share 1" realism-eval --baseline --test-share 1 a=tcp.pcap
exits_with 64 "--labels without --baseline" realism-eval --labels x.tsv tcp.pcap tcp.pcap
exits_with 64 "--baseline without inputs" realism-eval --baseline
# A short letter means one thing in every tool: -j is the thread count.
exits_with 64 "-j is the thread count: it wants a number" realism-eval -j tcp.pcap tcp.pcap
exits_with 64 "-T (threads before) is no option" realism-eval -T 1 tcp.pcap tcp.pcap
exits_with 64 "nor -k (--folds)" realism-eval -k 2 tcp.pcap tcp.pcap
exits_with 66 "a missing file exits 66" realism-eval nosuch.pcap tcp.pcap
like err 'nosuch.pcap' "the message names the missing file"
exits_with 66 "a missing labels table exits 66" realism-eval --baseline --labels nosuch.tsv

# ------------------------------------------------------------ bad input
exits_with 65 "bytes that are neither a capture nor a stream exit 65" realism-eval tcp.pcap garbage.pcap
like err '^realism-eval: garbage.pcap: neither a capture' "the message names the file"
exits_with 65 "a damaged capture exits 65" realism-eval bulk.pcap cut.pcap
like err '^pcap2flow: cut.pcap: packet 14: ' "pcap2flow names the file and packet"
like err '^realism-eval: cut.pcap: damaged capture' "and realism-eval what it means"
is "$(wc -c < out)" 0 "nothing on stdout"
pcap2flow -a bulk.pcap > bulk.mp
head -c 3000 bulk.mp > broken.mp
exits_with 65 "a stream cut inside a record exits 65" realism-eval bulk.pcap broken.mp
like err 'broken.mp: .*byte offset [0-9]+' "the message names the stream and the offset"
exits_with 65 "fewer flows than folds exit 65" realism-eval tcp.pcap bulk.pcap
like err 'too few flows to cross-validate: 1 in tcp.pcap \(real\), [0-9]+ in bulk.pcap \(generated\)' \
	"and say how many there are, naming each file"
printf 'x\n' > bad.tsv
exits_with 65 "a labels table line without a tab exits 65" realism-eval --baseline --labels bad.tsv
like err 'bad.tsv: line 1' "the message names the table and line"

# ------------------------------------------------------------ synthetic captures
# about 50 TCP flows a side (20 at a time), from captures and from streams
mkpcap bulk --mb 1 --flows 20 --seed 2 -w bulk2.pcap
flows2=$(pcap2flow -a bulk2.pcap | mpdump | grep -c '"t":"flow"')
exits_with 0 "two captures" realism-eval --json bulk.pcap bulk2.pcap
is "$(gen format real) $(gen format) $(gen flows)" "\"pcap\" \"pcap\" $flows2" "both read as captures"
is "$(val validity)" 1 "mkpcap's packets are valid"
# the capture stops in the middle of one handshake
is "$(gen tcp_coherent) $(gen tcp_flows)" "$((flows2 - 1)) $flows2" "so do its TCP flows but the one cut short"
like out '"incoherent_reasons":\{"handshake incomplete":1\}' "which is named"
if command -v python3 >/dev/null; then
	ok "--json is one valid JSON document" python3 -m json.tool out
else
	skip "python3 absent: JSON syntax not checked"
fi
for key in f1 f1_std validity tcp_valid mean_jsd_packet mean_jsd_flow flows_per_class accuracy; do
	ok "--json has \"$key\"" grep -q "\"$key\":" out
done
run bash -c 'cat bulk2.pcap | realism-eval --json bulk.mp -'
is "$RC $(gen format real) $(gen format) $(gen flows)" "0 \"stream\" \"pcap\" $flows2" \
	"a stream, and a capture piped to stdin (through pcap2flow)"

# ------------------------------------------------------------ real captures
EX="$TGPT_TOP/examples/data"
if ! ls "$EX"/*.pcap >/dev/null 2>&1; then
	skip "examples/data holds no captures"
	done_testing
fi
pcap2flow -a -q "$EX"/*.pcap > all.mp
pick all.mp even > even.mp
pick all.mp odd > odd.mp

# Halves of the same captures. Each side holds about 300 flows of the same
# nine applications; 5 folds test about 120 flows each, so chance alone moves
# a fold's F1 by about sqrt(.25/120) = 0.05 and the mean of five by about
# 0.02; near-duplicate flows (DNS, NTP) on both sides pull it a little below
# 0.5 (seeds 1..20 gave 0.44..0.49). 0.15 is five times what chance does.
exits_with 0 "two halves of the example captures" realism-eval --json even.mp odd.mp
f1=$(val f1)
ok "halves: F1 $f1 within 0.15 of 0.5" holds "$f1" 'x >= 0.35 && x <= 0.65'
ok "halves: a few hundred flows a side" holds "$(val flows_per_class)" 'x >= 200'
is "$(val validity) $(val tcp_valid)" "1 1" "real traffic: every packet and TCP flow valid"
ok "halves: packet fields close (mean jsd < 0.2)" holds "$(val mean_jsd_packet)" 'x < 0.2'
cp out first.json
realism-eval --json even.mp odd.mp > again.json
ok "the same seed gives the same report" cmp first.json again.json
realism-eval --json --seed 7 --folds 4 --packets 10 even.mp odd.mp > out
ok "another seed, 4 folds, 10 packets: F1 still within 0.15 of 0.5" holds "$(val f1)" 'x >= 0.35 && x <= 0.65'
is "$(val folds) $(val packets_per_flow) $(val features)" "4 10 57" "the options reach the report"
exits_with 0 "the text report" realism-eval even.mp odd.mp
like out '^  macro-F1 +0\.[0-9]{4} ± 0\.[0-9]{4}' "macro-F1 as mean ± deviation"
like out '^  packets with consistent headers +1\.0000' "the validity lines"
like out '^  mean jsd +packet fields 0\.[0-9]{4}, flow fields 0\.[0-9]{4}$' "the divergence line"

# crude fakes: told apart at once, and invalid
awk -v n=300 -v seed=7 -f fakes.awk | mkrec > fakes.mp
exits_with 0 "real flows against crude fakes" realism-eval --json all.mp fakes.mp
ok "fakes: F1 $(val f1) >= 0.9" holds "$(val f1)" 'x >= 0.9'
ok "fakes: validity $(val validity) below 0.1" holds "$(val validity)" 'x < 0.1'
is "$(gen validity real)" 1 "and the real side stays valid"

# damage of a known size
pick all.mp corrupt > corrupt.mp
exits_with 0 "every other packet corrupted" realism-eval --json all.mp corrupt.mp
ok "corrupted: validity $(val validity) near 1/2" holds "$(val validity)" 'x > 0.45 && x < 0.55'
is "$(val tcp_valid)" 1 "corrupted bytes leave TCP sequences coherent"
like out '"invalid_reasons":\{"IPv4 header checksum":[0-9]+' "the reasons: mostly the IPv4 header checksum"
ok "copies of the real flows: F1 far below 0.5 (memorised)" holds "$(val f1)" 'x < 0.3'
pick all.mp drop > drop.mp
exits_with 0 "every third packet dropped" realism-eval --json all.mp drop.mp
ok "gaps: TCP validity $(val tcp_valid) below 0.1" holds "$(val tcp_valid)" 'x < 0.1'
is "$(val validity)" 1 "the packets themselves stay valid"
like out '"incoherent_reasons":\{"(acknowledgement of data never sent|sequence gap)' \
	"the reasons: acknowledgements of the missing data, gaps"

# strict validity: a frame that is not IP belongs to no flow
{ mpdump even.mp | awk -v mode=all -v tag= -f pick.awk
  echo "flow id=99999 source=arp linktype=1 : 1700000000000000000/42/0/0/ffffffffffff02000000000108060001080006040001020000000001c0a80001000000000000c0a80002"
} | mkrec > arp.mp
exits_with 0 "an ARP frame among the generated flows" realism-eval --json odd.mp arp.mp
ok "counts as an invalid packet ($(val validity))" holds "$(val validity)" 'x < 1'
like out '"invalid_reasons":\{"a frame that is not IP \(of no flow\)":1\}' "saying why"

# --tokens: the flows a capture was written from, regrouped
if command -v flow2tok >/dev/null && command -v tok2pcap >/dev/null; then
	pcap2flow -q bulk.pcap | flow2tok -q > bulk.tok
	n=$(mpdump < bulk.tok | grep -c '"t":"tok"')
	exits_with 0 "--tokens: the records of bulk.pcap's flows" realism-eval --json \
		--tokens bulk.tok all.mp bulk.pcap
	like out "\"regrouped\":1,\"gen_records\":$n,\"gen_alone\":$n,\"gen_capture_flows\":$n," \
		"each of the $n comes back as one flow"
	cat bulk.tok bulk.tok > twice.tok
	tok2pcap -q -w twice.pcap twice.tok
	exits_with 0 "every record twice" realism-eval --json --tokens twice.tok all.mp twice.pcap
	like out "\"regrouped\":0,\"gen_records\":$((2 * n)),\"gen_alone\":0," \
		"pcap2flow joins each pair (or a copy follows the closed original): none alone"
	exits_with 0 "the text report" realism-eval --tokens bulk.tok all.mp bulk.pcap
	like out "^  generated flows that regroup alone 1\\.0000  \\($n of $n\\)" "has the share"
	exits_with 64 "--tokens with --baseline exits 64" realism-eval --baseline --tokens bulk.tok \
		--labels "$TGPT_TOP/examples/labels.tsv"
	exits_with 66 "a missing --tokens file exits 66" realism-eval --tokens nosuch.tok all.mp bulk.pcap
else
	for i in 1 2 3 4 5 6 7 8 9 10; do skip "flow2tok or tok2pcap absent"; done
fi

# captures straight from the examples, one piped in
run bash -c "cat '$EX/dns.pcap' | realism-eval --json '$EX/http.pcap' -"
is "$RC $(val validity)" "0 1" "captures, one on stdin: valid"

# ------------------------------------------------------------ baseline
LABELS="$TGPT_TOP/examples/labels.tsv"
exits_with 0 "--baseline on the labelled examples, split by time" \
	realism-eval --baseline --split time --json --labels "$LABELS"
n=$(grep -c . "$LABELS")
f1=$(val macro_f1)
ok "baseline: macro-F1 $f1 far above chance (1/$n)" holds "$f1" 'x > 0.6'
is "$(grep -o '"label":' out | wc -l)" "$n" "a row per label"
like out '"confusion":\[\[[0-9]' "the confusion matrix"
like out '"split":"time"' "the split named"
exits_with 0 "the baseline's table" realism-eval --baseline --split time --labels "$LABELS"
like out '^  macro-F1 +0\.[0-9]{4}$' "its macro-F1"
like out '^  label +train +test +precision +recall +f1$' "the per-class table"
like out '^  confusion \(rows: true label' "the confusion matrix"

# --features bytes: the nPrint-style vectors, K packets of N bytes and an
# interval each (the vectors themselves: tests/unit/t-bytevec.c)
exits_with 0 "--features bytes on the labelled examples" \
	realism-eval --baseline --features bytes --split time --json --labels "$LABELS"
like out '"feature_set":"bytes"' "the JSON names the feature set"
is "$(val first_packets) $(val first_bytes) $(val features)" "8 96 776" \
	"8 packets of 96 bytes by default: 776 features"
ok "bytes: macro-F1 $(val macro_f1) far above chance (1/$n)" holds "$(val macro_f1)" 'x > 0.6'
exits_with 0 "--first-packets 2 --first-bytes 10" \
	realism-eval --baseline --features bytes --first-packets 2 --first-bytes 10 --split time --json --labels "$LABELS"
is "$(val features)" 22 "2 x (10 + 1) features"
exits_with 0 "the table names the byte features" \
	realism-eval --baseline --features bytes --split time --labels "$LABELS"
like out 'first 96 bytes of the first 8 packets, masked' "... K, N and the mask"
exits_with 64 "--features bytes needs --baseline" realism-eval --features bytes tcp.pcap tcp.pcap
exits_with 64 "--features other" realism-eval --baseline --features other --labels "$LABELS"
exits_with 64 "--first-bytes 0" realism-eval --baseline --features bytes --first-bytes 0 --labels "$LABELS"

# by capture: each label in one capture cannot be split so
exits_with 65 "--split capture with one capture per label exits 65" \
	realism-eval --baseline --labels "$LABELS"
like err 'in one capture only' "and says why"
like err -- '--split time' "and what to do"
# two captures per label: the halves, under sources of their own
for f in "$EX"/*.pcap; do l=${f##*/}; pcap2flow -a -q -l "${l%.pcap}" "$f"; done > labelled.mp
{ pick labelled.mp even .even; pick labelled.mp odd .odd; } > halves.mp
exits_with 0 "--split capture on two captures per label" realism-eval --baseline --json halves.mp
is "$(val captures) $(grep -o '"left_out":\[\]' out)" '18 "left_out":[]' "18 captures, no label left out"
ok "by capture: macro-F1 $(val macro_f1) above chance" holds "$(val macro_f1)" 'x > 0.5'
realism-eval --baseline --json --seed 2 halves.mp > other.json
ok "another seed picks other test captures" test "$(val test)" != "$(val test other.json)" -o \
	"$(val macro_f1)" != "$(val macro_f1 other.json)"

# LABEL=FILE arguments, captures and streams alike
exits_with 0 "LABEL=FILE arguments" realism-eval --baseline --split time --json \
	dns="$EX/dns.pcap" ntp="$EX/ntp.pcap"
ok "two labels: macro-F1 $(val macro_f1) high" holds "$(val macro_f1)" 'x > 0.8'
exits_with 65 "flows without labels" realism-eval --baseline all.mp
like err 'without a label left out' "are left out, and said so"
like err 'two labels at least' "and two labels are needed"

# --split-file: the flows and split of tokshard's split.tsv
if command -v flow2tok >/dev/null && command -v tokshard >/dev/null; then
	flow2tok -q labelled.mp > labelled.tok
	tokshard -q -o sh --group flow --split 60/20/20 labelled.tok
	# lines of split S in split.tsv
	nsplit() { awk -F'\t' -v s="$1" '$1 == s' "${2:-sh/split.tsv}" | wc -l; }
	exits_with 0 "--split-file of tokshard's split" realism-eval --baseline --json --split-file sh/split.tsv labelled.mp
	like out '"split":"file"' "the split is the file's"
	is "$(val train) $(val test)" "$(nsplit train) $(nsplit test)" "its train and test flows, on their sides"
	is "$(val val_left_out)" "$(nsplit val)" "its val flows left out"
	like err "$(nsplit val) flows of the val split left out" "and said so"
	per_label() { awk -F'\t' '$1 == "test" { print $4 }' sh/split.tsv | sort | uniq -c | awk '{ print $2 ":" $1 }' | tr '\n' ' '; }
	is "$(grep -o '"label":"[^"]*","train":[0-9]*,"test":[0-9]*' out | sed -E 's/"label":"([^"]*)".*"test":/\1:/' | grep -v ':0$' | sort | tr '\n' ' ')" \
	   "$(per_label)" "the test flows of each label are those listed"
	ok "macro-F1 $(val macro_f1) above chance" holds "$(val macro_f1)" 'x > 0.5'
	# the split.tsv of the test side moved to train: another split, same flows
	awk -F'\t' 'BEGIN { OFS = "\t" } $1 == "test" && n++ % 2 { $1 = "train" } { print }' sh/split.tsv > moved.tsv
	exits_with 0 "another split file" realism-eval --baseline --json --split-file moved.tsv labelled.mp
	is "$(val test)" "$(nsplit test moved.tsv)" "follows the file"
	# flows the file does not list, and listed flows the inputs lack
	grep -v '	dns$' sh/split.tsv > nodns.tsv
	exits_with 0 "a file that lists fewer flows" realism-eval --baseline --json --split-file nodns.tsv labelled.mp
	is "$(val unlisted)" "$(awk -F'\t' '$4 == "dns"' sh/split.tsv | wc -l)" "the inputs' other flows are left out"
	like err 'flows of the inputs not in nodns.tsv left out' "and said so"
	! grep -q '"label":"dns"' out; t_result $? "no dns flow is used"
	{ cat sh/split.tsv; printf 'test\tnosuch.pcap\t7\tdns\n'; } > extra.tsv
	exits_with 0 "a file that lists a flow the inputs lack" realism-eval --baseline --json --split-file extra.tsv labelled.mp
	like err 'extra.tsv: 1 of its [0-9]+ flows are not in the inputs, e.g. nosuch.pcap #7' "says so, naming one"
	# nothing in common: another source name, as from another pcap2flow run
	sed 's|\t/[^\t]*/|\tother/|' sh/split.tsv > other.tsv
	exits_with 65 "no listed flow in the inputs exits 65" realism-eval --baseline --split-file other.tsv labelled.mp
	like err 'other.tsv: none of its [0-9]+ flows is in the inputs .*matched by source and id' "with a clear message"
	# the labels must agree
	awk -F'\t' 'BEGIN { OFS = "\t" } $4 == "dns" { $4 = "ntp" } { print }' sh/split.tsv > wrong.tsv
	exits_with 65 "a label that differs from the file's exits 65" realism-eval --baseline --split-file wrong.tsv labelled.mp
	like err "label 'dns' here, 'ntp' in wrong.tsv" "naming both"
	exits_with 65 "a flow twice in the inputs exits 65" realism-eval --baseline --split-file sh/split.tsv labelled.mp labelled.mp
	like err 'is in the inputs twice' "and says so"
	printf 'test\ta.pcap\tx\tdns\n' > badid.tsv
	exits_with 65 "a bad flow id exits 65" realism-eval --baseline --split-file badid.tsv labelled.mp
	like err 'badid.tsv: line 1: flow id' "naming the line"
	printf 'holdout\ta.pcap\t1\tdns\n' > badside.tsv
	exits_with 65 "an unknown split exits 65" realism-eval --baseline --split-file badside.tsv labelled.mp
	printf 'test\ta.pcap\t1\tdns\ntrain\ta.pcap\t1\tdns\n' > twice.tsv
	exits_with 65 "a flow listed twice exits 65" realism-eval --baseline --split-file twice.tsv labelled.mp
	exits_with 66 "a missing split file exits 66" realism-eval --baseline --split-file nosuch.tsv labelled.mp
	exits_with 64 "--split-file with --split" realism-eval --baseline --split time --split-file sh/split.tsv labelled.mp
	exits_with 64 "--split-file without --baseline" realism-eval --split-file sh/split.tsv all.mp all.mp
else
	skip "flow2tok and tokshard are needed for --split-file"
fi

done_testing
