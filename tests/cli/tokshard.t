#!/usr/bin/env bash
# tokshard.t: tokshard's command line; the split (ratio, no source in two
# splits, stratified by label, seeded, independent of the input order); long
# flows cut or windowed at packet boundaries; byte-identical shards for the
# same input; damaged input; the label table shared by the splits; and the
# real pipeline mkpcap | pcap2flow | flow2tok | tokshard when it is built.
. "$TGPT_TOP/tests/lib.sh"

need_tools mkrec

# gen FLOWS SOURCES [RARE]: mkrec input for FLOWS token records; flow i comes
# from source i % SOURCES, labelled L(source % 4), and its packets carry the
# source number in their first two bytes (tokens 10 and 11 of the flow), so
# the shards tell which source a flow came from. RARE more sources of label
# "rare" follow, two flows each.
gen() {
	awk -v n="$1" -v s="$2" -v rare="${3:-0}" 'BEGIN {
		print "hdr tgpt.tok"
		for (i = 0; i < n; i++) {
			src = i % s
			printf "tok id=%d source=cap%04d.pcap label=L%d : S 1 d0 x%04x%02x S 1 d0.001 x%04x0102 E\n",
				i, src, src % 4, src, i % 256, src
		}
		for (r = 0; r < rare * 2; r++) {
			src = 9000 + int(r / 2)
			printf "tok id=%d source=cap%04d.pcap label=rare : S 1 d0 x%04x00 E\n", r, src, src
		}
	}'
}
# flows of the shard FILE: "LABEL_ID LEN TOKENS..." per line
flows() {
	tokshard --dump "$1" |
	awk '$1 == "flow" { printf "%s %s", $3, $4; for (i = 6; i <= NF; i++) printf " %s", $i; print "" }'
}
# source numbers of the flows in shard FILE, one per line
sources() { tokshard --dump "$1" | awk '$1 == "flow" { print $16 * 256 + $17 }'; }
# a header field of shard FILE
field() { tokshard --dump "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }

gen 2000 400 3 | mkrec > big.tok || { echo "Bail out! mkrec"; exit 1; }

# ------------------------------------------------------------ command line
exits_with 0 "--help exits 0" tokshard --help
like out '^usage: tokshard' "--help prints the usage on stdout"
like out -- '--long' "--help lists the long options"
exits_with 0 "--version exits 0" tokshard --version
like out '^tokshard \(tgpt\) [0-9]' "--version names the tool"
exits_with 64 "an unknown option exits 64" tokshard --bogus -o s big.tok
like err '^usage: tokshard' "the usage goes to stderr"
exits_with 64 "no -o DIR exits 64" tokshard big.tok
exits_with 64 "--split needs three shares" tokshard -o s --split 90/10 big.tok
exits_with 64 "--split shares are whole numbers" tokshard -o s --split 9.5/0.25/0.25 big.tok
exits_with 64 "--split shares must not all be 0" tokshard -o s --split 0/0/0 big.tok
exits_with 64 "--long knows cut, window, drop" tokshard -o s --long squeeze big.tok
exits_with 64 "--group knows source and flow" tokshard -o s --group label big.tok
exits_with 64 "--context below one packet exits 64" tokshard -o s --context 5 big.tok
exits_with 64 "--dump needs a shard" tokshard --dump
exits_with 66 "a missing input exits 66" tokshard -o s nosuch.tok
like err 'nosuch.tok' "and names it"
exits_with 73 "an output directory that cannot be made exits 73" tokshard -o no/such/dir big.tok

# ------------------------------------------------------------ a default run
exits_with 0 "tokshard -o s big.tok exits 0" tokshard -o s big.tok
ok "writes train.shard" test -s s/train.shard
ok "writes val.shard" test -s s/val.shard
ok "writes test.shard" test -s s/test.shard
ok "writes labels.tsv" test -s s/labels.tsv
ok "writes groups.tsv" test -s s/groups.tsv
is "$(ls -A s | grep -c tmp)" 0 "leaves no temporary file"
like err '^train +L0 +[0-9]+ +[0-9]+' "prints a table of splits and labels on stderr"
like err '^test +\(all\)' "with a total per split"
is "$(head -c 8 s/train.shard)" "TGPTSHRD" "a shard starts with the magic"
is "$(field s/train.shard version)" 1 "format version 1"
is "$(field s/val.shard split)" val "the header names the split"
is "$(field s/train.shard context)" 12032 "default context 12032"
is "$(field s/train.shard vocab)" 260 "vocabulary 260"
total=0
for s in train val test; do total=$((total + $(field s/$s.shard flows))); done
is "$total" 2006 "every flow is in one of the shards"
exits_with 0 "-q" tokshard -q -o q big.tok
is "$(cat err)" "" "-q prints nothing"

# stdin
tokshard -q -o a - < big.tok
tokshard -q -o b < big.tok
ok "'-' reads stdin" cmp -s s/train.shard a/train.shard
ok "no FILE reads stdin" cmp -s s/train.shard b/train.shard

# ------------------------------------------------------------ the split
exits_with 0 "--split 80/10/10" tokshard -q -o r --split 80/10/10 big.tok
for s in train val test; do
	eval "n_$s=\$(field r/$s.shard flows)"
done
echo "# flows: train $n_train, val $n_val, test $n_test"
ok "train holds about 80 % of the flows" test "$n_train" -ge 1550 -a "$n_train" -le 1660
ok "val holds about 10 % of the flows" test "$n_val" -ge 170 -a "$n_val" -le 230
ok "test holds about 10 % of the flows" test "$n_test" -ge 170 -a "$n_test" -le 230

for s in train val test; do sources r/$s.shard | sort -u > src.$s; done
is "$(cat src.train src.val src.test | sort | uniq -d | wc -l)" 0 "no source has flows in two splits"
is "$(cat src.train src.val src.test | wc -l)" 403 "and every source is somewhere"
is "$(awk '!/^#/ { print $5 }' r/groups.tsv | sort | uniq -d | wc -l)" 0 "groups.tsv lists each source once"
is "$(awk '!/^#/ && $5 == "cap0007.pcap" { print $1 }' r/groups.tsv)" \
   "$(grep -qx 7 src.val && echo val || { grep -qx 7 src.test && echo test || echo train; })" \
   "groups.tsv says where a source went"

# Each label L0..L3 has 100 sources: all three splits get some of each.
for s in train val test; do
	for l in 0 1 2 3; do
		id=$(tokshard --dump r/$s.shard | awk -v l="L$l" '$1 == "label" && $3 == l { print $2 }')
		c=$(flows r/$s.shard | awk -v id="$id" '$1 == id' | wc -l)
		want=$([ $s = train ] && echo 400 || echo 50)
		ok "$s has about its share of label L$l ($c flows)" test "$c" -ge $((want * 7 / 10)) -a "$c" -le $((want * 13 / 10))
	done
done
# Ten labels of ten sources each: stratified, every split gets one source of
# every label (a split drawn over all labels at once would miss some).
awk 'BEGIN { print "hdr tgpt.tok"
	for (i = 0; i < 200; i++)
		printf "tok id=%d source=s%02d label=K%d : S 1 d0 x%04x E\n", i, i % 100, i % 10, i % 100 }' |
	mkrec > ten.tok
tokshard -q -o ten --split 80/10/10 ten.tok
for s in train val test; do
	is "$(flows ten/$s.shard | cut -d' ' -f1 | sort -u | wc -l)" 10 "$s has flows of all ten labels"
done
is "$(flows ten/val.shard | wc -l)" 20 "val has one source (two flows) of each"

rare=$(tokshard --dump s/train.shard | awk '$1 == "label" && $3 == "rare" { print $2 }')
ok "a label with 3 sources is in train (98/1/1)" test "$(flows s/train.shard | awk -v id="$rare" '$1 == id' | wc -l)" -ge 2

# --group flow: flows of one source spread over the splits
exits_with 0 "--group flow" tokshard -q -o g --group flow --split 80/10/10 big.tok
for s in train val test; do sources g/$s.shard | sort -u > gsrc.$s; done
ok "with --group flow, sources straddle splits" test "$(cat gsrc.train gsrc.val gsrc.test | sort | uniq -d | wc -l)" -gt 0
is "$(field g/train.shard group)" flow "the header says --group flow"

# ------------------------------------------------------------ determinism
tokshard -q -o d1 --split 80/10/10 big.tok
tokshard -q -o d2 --split 80/10/10 big.tok
ok "the same input gives byte-identical train shards" cmp -s d1/train.shard d2/train.shard
ok "... val shards" cmp -s d1/val.shard d2/val.shard
ok "... test shards" cmp -s d1/test.shard d2/test.shard
{ echo "hdr tgpt.tok"; gen 2000 400 3 | tail -n +2 | tac; } | mkrec > rev.tok
tokshard -q -o d3 --split 80/10/10 rev.tok
ok "the input's order does not change the split" cmp -s d1/groups.tsv d3/groups.tsv
ok "nor the label ids" cmp -s d1/labels.tsv d3/labels.tsv
tokshard -q -o d4 --split 80/10/10 --seed 2 big.tok
is "$(cmp -s d1/groups.tsv d4/groups.tsv && echo same || echo other)" other "another --seed gives another split"
is "$(field d4/train.shard seed)" 2 "the header keeps the seed"

# ------------------------------------------------------------ labels
for s in train val test; do tokshard --dump r/$s.shard | grep '^label ' > lab.$s; done
ok "train and val share one label table" cmp -s lab.train lab.val
ok "train and test share one label table" cmp -s lab.train lab.test
is "$(cut -d' ' -f3 lab.train | tr '\n' ' ')" "L0 L1 L2 L3 rare " "labels numbered in byte order"
is "$(awk '!/^#/ { print $1 ":" $2 }' r/labels.tsv | tr '\n' ' ')" "0:L0 1:L1 2:L2 3:L3 4:rare " \
   "labels.tsv has the same ids"
is "$(awk '!/^#/ && $2 == "L0" { print $3 + $4 + $5 }' r/labels.tsv)" 500 "labels.tsv counts the flows"
printf 'hdr tgpt.tok\ntok source=a : S 1 d0 x01 E\ntok source=b label=x : S 1 d0 x02 E\n' | mkrec > unl.tok
tokshard -q -o u --split 1/0/0 unl.tok
is "$(flows u/train.shard | cut -d' ' -f1 | tr '\n' ' ')" "- 0 " "an unlabelled flow has no label id"

# ------------------------------------------------------------ long flows
# One flow of packets of 10+5, 10+20, 10+3, 10+40 and 10+8 tokens, then END:
# 15 + 30 + 13 + 50 + 18 + 1 = 127 tokens.
long='S 1 d0 z5 S 1 d0.1 z20 S 1 d0.2 z3 S 1 d0.3 z40 S 1 d0.4 z8 E'
printf 'hdr tgpt.tok\ntok source=a label=x : %s\n' "$long" | mkrec > long.tok
whole=$(tokshard -q -o w --split 1/0/0 --context 1000 long.tok && flows w/train.shard | cut -d' ' -f3-)
is "$(echo $whole | wc -w)" 127 "a flow that fits is stored whole (127 tokens)"
is "$(echo $whole | awk '{ print $NF }')" 257 "with its END"

tokshard -q -o c --split 1/0/0 --context 60 long.tok
is "$(flows c/train.shard | wc -l)" 1 "--long cut stores one sequence"
is "$(flows c/train.shard | cut -d' ' -f2)" 58 "of the first whole packets that fit (15 + 30 + 13)"
cut=$(flows c/train.shard | cut -d' ' -f3-)
is "$(echo $whole | cut -d' ' -f1-58)" "$cut" "the flow's head, unchanged"
is "$(echo $whole | cut -d' ' -f59)" 256 "ending at a packet boundary"

tokshard -q -o win --split 1/0/0 --context 60 --long window long.tok
is "$(flows win/train.shard | cut -d' ' -f2 | tr '\n' ' ')" "58 50 19 " "--long window: windows of whole packets"
is "$(flows win/train.shard | awk '$3 != 256' | wc -l)" 0 "every window starts with START"
is "$(flows win/train.shard | cut -d' ' -f3- | tr '\n' ' ' | sed 's/ $//')" "$(echo $whole)" \
   "the windows put back together are the flow"

tokshard -q -o win2 --split 1/0/0 --context 40 --long window long.tok
is "$(flows win2/train.shard | cut -d' ' -f2 | tr '\n' ' ')" "15 30 13 40 19 " \
   "a packet longer than the context is cut at the context"
is "$(flows win2/train.shard | awk '$3 != 256' | wc -l)" 0 "every window starts with START"

tokshard -q -o dr --split 1/0/0 --context 60 --long drop long.tok
is "$(field dr/train.shard flows)" 0 "--long drop leaves a long flow out"
run tokshard -o dr --split 1/0/0 --context 60 --long drop long.tok
like err '1 flow longer than the context of 60 dropped' "and says so"

# Every stored sequence fits the context, in a bigger run.
tokshard -q -o bw --split 1/0/0 --context 20 --long window big.tok
is "$(flows bw/train.shard | awk '$2 > 20 || $3 != 256' | wc -l)" 0 "windows of big.tok: within 20 tokens, each from START"

# ------------------------------------------------------------ selection
# sel.tok: source big.pcap has 300 flows of A and 25 of C; ten sources c0..c9
# have 3 flows of B each; r.pcap has 5 of R; u.pcap 7 without a label. A
# flow's packet carries its source and id (tokens 16 and 17: id).
selgen() {
	awk 'BEGIN { print "hdr tgpt.tok"
		for (i = 0; i < 300; i++) printf "tok id=%d source=big.pcap label=A : S 1 d0 x%04x E\n", i, i
		for (i = 300; i < 325; i++) printf "tok id=%d source=big.pcap label=C : S 1 d0 x%04x E\n", i, i
		for (i = 0; i < 30; i++) printf "tok id=%d source=c%d.pcap label=B : S 1 d0 x%04x E\n", i, i % 10, i
		for (i = 0; i < 5; i++) printf "tok id=%d source=r.pcap label=R : S 1 d0 x%04x E\n", i, i
		for (i = 0; i < 7; i++) printf "tok id=%d source=u.pcap : S 1 d0 x%04x E\n", i, i
	}'
}
selgen | mkrec > sel.tok
# the split.tsv lines of split S: "source id label"
listed() { awk -F'\t' -v s="$2" '$1 == s { print $2, $3, $4 }' "$1/split.tsv"; }
# the shard's flows as "label-name id"
stored() { tokshard --dump "$1" | awk '$1 == "label" { name[$2] = $3 } $1 == "flow" { print name[$3], $16 * 256 + $17 }'; }

exits_with 64 "--min-label-flows 0 is a usage error" tokshard -o x --min-label-flows 0 sel.tok
exits_with 64 "--max-flows-per-source-label takes a number" tokshard -o x --max-flows-per-source-label many sel.tok
exits_with 0 "without selection" tokshard -o all --split 1/0/0 sel.tok
is "$(grep -vc '^#' all/split.tsv)" 367 "split.tsv lists every stored flow"
is "$(awk -F'\t' '$2 == "u.pcap" { print $4 }' all/split.tsv | sort -u)" "-" "an unlabelled flow's label is '-'"
is "$(head -1 all/split.tsv)" "# split	source	id	label" "split.tsv's header"

exits_with 0 "--labelled-only" tokshard -o lo --split 1/0/0 --labelled-only sel.tok
is "$(grep -vc '^#' lo/split.tsv)" 360 "leaves out the 7 unlabelled flows"
like err '^tokshard: 7 flows without a label left out' "and says so"
is "$(flows lo/train.shard | awk '$1 == "-"' | wc -l)" 0 "no unlabelled flow in the shard"

exits_with 0 "--max-flows-per-source-label 20" tokshard -o cap --split 1/0/0 --max-flows-per-source-label 20 sel.tok
is "$(listed cap train | awk '$1 == "big.pcap" && $3 == "A"' | wc -l)" 20 "keeps 20 of big.pcap's 300 flows of A"
is "$(listed cap train | awk '$1 == "big.pcap" && $3 == "C"' | wc -l)" 20 "and 20 of its 25 of C: per source and label"
is "$(listed cap train | awk '$3 == "B"' | wc -l)" 30 "sources with fewer flows keep them all"
ids=$(listed cap train | awk '$1 == "big.pcap" && $3 == "A" { print $2 }' | tr '\n' ' ')
ok "the kept flows are a draw, not the first 20" test "$ids" != "$(seq 0 19 | tr '\n' ' ')"
like err '^tokshard: 285 flows left out: over 20 of one label from one source' "counts what it left out"
is "$(stored cap/train.shard | awk '$1 == "A" { print $2 }' | tr '\n' ' ')" "$ids" \
   "the shard holds exactly the flows split.tsv lists"
tokshard -q -o cap2 --split 1/0/0 --max-flows-per-source-label 20 sel.tok
ok "the same seed draws the same flows" cmp -s cap/split.tsv cap2/split.tsv
tokshard -q -o cap3 --split 1/0/0 --max-flows-per-source-label 20 --seed 7 sel.tok
is "$(cmp -s cap/split.tsv cap3/split.tsv && echo same || echo other)" other "another seed draws others"
{ echo "hdr tgpt.tok"; selgen | tail -n +2 | tac; } | mkrec > selrev.tok
tokshard -q -o cap4 --split 1/0/0 --max-flows-per-source-label 20 selrev.tok
is "$(listed cap4 train | sort)" "$(listed cap train | sort)" "the input's order does not change the draw"

exits_with 0 "--min-label-flows 10" tokshard -o min --split 1/0/0 --min-label-flows 10 sel.tok
is "$(tokshard --dump min/train.shard | awk '$1 == "label" { print $3 }' | tr '\n' ' ')" "A B C " \
   "R (5 flows) is not in the label table"
is "$(listed min train | awk '$3 == "R"' | wc -l)" 0 "nor are its flows"
is "$(listed min train | awk '$3 == "-"' | wc -l)" 7 "unlabelled flows are not a label: kept"
like err 'tokshard: 1 label with fewer than 10 flows left out with their 5 flows \(--min-label-flows\): R 5' \
     "says which labels it left out"
like min/labels.tsv '^# left out \(--min-label-flows\)	R	5$' "labels.tsv names them too"
# The cap first, then the count: A (300 flows) and C (25) have 10 each left
# after the cap, fewer than 15; B keeps its 30.
tokshard -q -o both --split 1/0/0 --max-flows-per-source-label 10 --min-label-flows 15 sel.tok
is "$(tokshard --dump both/train.shard | awk '$1 == "label" { print $3 }' | tr '\n' ' ')" "B " \
   "labels are counted after the cap"
is "$(listed both train | awk '{ print $3 }' | sort | uniq -c | awk '{ print $2 ":" $1 }' | tr '\n' ' ')" \
   "-:7 B:30 " "split.tsv: all of B and the unlabelled flows"

# split.tsv follows the split, and each shard holds the flows listed for it.
tokshard -q -o sp --split 60/20/20 --labelled-only --max-flows-per-source-label 20 --min-label-flows 10 sel.tok
for s in train val test; do
	is "$(stored sp/$s.shard)" "$(listed sp $s | awk '{ print $3, $2 }')" "$s.shard holds the flows split.tsv lists for it"
done
is "$(listed sp val | awk '{ print $1 }' | sort -u | tr '\n' ' ')" \
   "$(awk -F'\t' '$1 == "val" { print $5 }' sp/groups.tsv | sort | tr '\n' ' ')" "split.tsv agrees with groups.tsv"

# Flows of several sequences (--long window): a flow left out takes all of
# its windows with it, the others keep theirs whole.
awk 'BEGIN { print "hdr tgpt.tok"
	for (i = 0; i < 6; i++) printf "tok id=%d source=w.pcap label=W : S 1 d0 x%04x S 1 d0.1 x%04x S 1 d0.2 x%04x E\n", i, i, i, i
}' | mkrec > win.tok
tokshard -q -o sw --split 1/0/0 --context 14 --long window --max-flows-per-source-label 2 win.tok
is "$(field sw/train.shard flows)" 6 "two flows kept, three windows each"
is "$(stored sw/train.shard | awk '{ print $2 }' | uniq | tr '\n' ' ')" \
   "$(listed sw train | awk '{ print $2 }' | tr '\n' ' ')" "the windows are those of the flows listed, in order"

# --dedup: a flow whose tokens came before is left out (the first stays),
# before the cap per source, which then draws among the others. dup.tok:
# d1.pcap has flows of payload 0..9; d2.pcap repeats 5..9 and adds 10..14;
# flow 20 of d1 repeats 0 with another time token, so it is not the same.
awk 'BEGIN { print "hdr tgpt.tok"
	for (i = 0; i < 10; i++) printf "tok id=%d source=d1.pcap : S 1 d0 x%04x E\n", i, i
	printf "tok id=20 source=d1.pcap : S 1 d0.5 x0000 E\n"
	for (i = 5; i < 15; i++) printf "tok id=%d source=d2.pcap : S 1 d0 x%04x E\n", i + 100, i
}' | mkrec > dup.tok
exits_with 0 "--dedup" tokshard -o dd --split 1/0/0 --dedup dup.tok
is "$(listed dd train | awk '{ print $1 ":" $2 }' | tr '\n' ' ')" \
   "d1.pcap:0 d1.pcap:1 d1.pcap:2 d1.pcap:3 d1.pcap:4 d1.pcap:5 d1.pcap:6 d1.pcap:7 d1.pcap:8 d1.pcap:9 d1.pcap:20 d2.pcap:110 d2.pcap:111 d2.pcap:112 d2.pcap:113 d2.pcap:114 " \
   "leaves out d2's copies of d1's flows, keeps the first of each"
like err '^tokshard: 5 flows left out: the same tokens as a flow before \(--dedup\)' "and counts them"
exits_with 0 "without --dedup" tokshard -o nd --split 1/0/0 dup.tok
is "$(grep -vc '^#' nd/split.tsv)" 21 "every flow stays"
tokshard -q -o ddc --split 1/0/0 --dedup --max-flows-per-source-label 3 dup.tok
is "$(listed ddc train | awk '$1 == "d2.pcap" { print ($2 >= 110 ? "new" : "copy") }' | sort | uniq -c | tr -s ' ')" \
   " 3 new" "--dedup comes before the cap: 3 of d2's 5 new flows (no copies)"

# ------------------------------------------------------------ bad input
head -c -7 big.tok > cut.tok
exits_with 65 "a damaged stream exits 65" tokshard -o dmg cut.tok
like err 'cut.tok.*byte offset [0-9]+' "naming the input and the byte offset"
total=0
for s in train val test; do total=$((total + $(field dmg/$s.shard.partial flows))); done
is "$total" 2005 "the flows read before the damage are still written, to DIR/*.partial"
ok "... and no shard of the failed run is in place" test ! -e dmg/train.shard
like err '^tokshard: dmg: no shards written; what was read before the error \(2005 flows\) is in dmg/\*\.partial$' \
	"... which it says"
# A failed run over good shards leaves them as they were.
tokshard -q -o keep --split 80/10/10 big.tok
cp -r keep keep.orig
printf 'not a token stream' > garbage.bin
exits_with 65 "garbage over good shards exits 65" tokshard -o keep garbage.bin
ok "... the old shards and tables are kept" diff -r keep keep.orig
like err '^tokshard: keep: the old shards are kept$' "... which it says"
exits_with 65 "a damaged stream over good shards exits 65" tokshard -o keep cut.tok
ok "... the old shards are kept" cmp keep/train.shard keep.orig/train.shard
ok "... beside what was read" test -s keep/train.shard.partial
like err '^tokshard: keep: the old shards are kept; what was read before the error' "... which it says"
exits_with 65 "garbage into a new directory" tokshard -o fresh garbage.bin
ok "... leaves no directory behind" test ! -e fresh
# Through a link to a directory of shards: the link stays, the shards are written in it.
mkdir real && ln -s real linked
exits_with 0 "-o a link to a directory" tokshard -q -o linked big.tok
ok "... the link is still a link" test -L linked
ok "... the shards are in the directory" test -s real/train.shard
# An output the run cannot write is named as given, not as its temporary file.
echo a file > notadir
exits_with 73 "-o a file, not a directory, exits 73" tokshard -o notadir big.tok
like err '^tokshard: notadir: ' "... naming it"
! grep -q 'spill' err; t_result $? "... not its temporary file"
printf 'hdr tgpt.tok\ntok source=a : S 1 d0 x01 E\ntok source=b : S 1 d0 300 E\n' | mkrec > vocab.tok
exits_with 65 "a token outside the vocabulary exits 65" tokshard -o v vocab.tok
like err 'vocab.tok.*byte offset.*300' "naming the input, offset and token"
printf 'hdr tgpt.flow\nflow source=a : 0/0102\n' | mkrec > flowhdr.tok
exits_with 65 "flow records instead of token records exit 65" tokshard -o fh flowhdr.tok
printf 'hdr tgpt.tok\ntok source=a : 257\ntok source=a : S 1 d0 x01 E\n' | mkrec > empty.tok
exits_with 0 "a record without a packet is not an error" tokshard -o e --split 1/0/0 empty.tok
like err '1 record without a packet' "but is counted (1 record, not 1 records)"
is "$(field e/train.shard flows)" 1 "and left out"

# --dump of bad shards
head -c 100 s/train.shard > short.shard
exits_with 65 "--dump of a cut shard exits 65" tokshard --dump short.shard
like err 'short.shard: cut short' "and says it is cut short"
exits_with 65 "--dump of a non-shard exits 65" tokshard --dump big.tok
like err 'not a tgpt shard' "and says it is no shard"
exits_with 66 "--dump of a missing file exits 66" tokshard --dump nosuch.shard

# ------------------------------------------------------------ the real pipeline
if command -v mkpcap >/dev/null && command -v pcap2flow >/dev/null && command -v flow2tok >/dev/null; then
	mkpcap bulk --mb 1 --flows 40 -w bulk.pcap
	mkpcap tcp -w tcp.pcap
	pcap2flow -q bulk.pcap | flow2tok -q -l bulk > bulk.tok
	pcap2flow -q tcp.pcap | flow2tok -q -l web > tcp.tok
	run sh -c 'cat bulk.tok tcp.tok | tokshard -o p --group flow --split 50/25/25 --context 3072 --long window'
	is "$RC" 0 "cat *.tok | tokshard: flow2tok's streams shard"
	is "$(tokshard --dump p/train.shard | grep -c '^label ')" 2 "with both labels"
	n=0
	for s in train val test; do n=$((n + $(flows p/$s.shard | awk '$2 > 3072 || $3 != 256' | wc -l))); done
	is "$n" 0 "every sequence starts with START and fits 3072 tokens"
else
	skip "mkpcap, pcap2flow and flow2tok are needed for the real pipeline"
fi

done_testing
