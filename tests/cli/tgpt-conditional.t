#!/usr/bin/env bash
# tgpt-conditional.t: class-conditional generation. A tiny model pre-trained
# with --conditional on two classes that differ clearly (mkpcap's DNS-like
# UDP exchanges labelled dns, its TCP session labelled tcp) generates UDP
# flows for --label dns and TCP flows for --label tcp (proportions asserted
# with a margin, seeded), records that carry the label but not its token and
# that tok2pcap reads; without --label the labels follow the training
# frequencies or the prompts'. The checkpoint says conditional 1 and holds
# the map (--info); the options and checkpoints it must refuse; a resumed
# run stays conditional; unlabelled flows get the "" label; bench's
# vocabulary of 300 already holds the label tokens.
. "$TGPT_TOP/tests/lib.sh"

need_tools tgpt-infer tgpt-train tokshard pcap2flow flow2tok tok2pcap mkpcap mpdump

# The IP protocol byte of each record's first packet (token 33: START, link
# type, 8 time tokens, 14 bytes of Ethernet, then byte 9 of the IPv4
# header) as two hex digits, one line per record; "" when it is shorter.
protos() {
	mpdump < "$1" | grep -o '"tokens":"0x[0-9a-f]*' |
		awk '{ h = substr($0, 13); print substr(h, 1 + 4 * 33, 2) }'
}
# How many records of a stream have protocol $2 (hex) / label $2.
nproto() { protos "$1" | grep -cx "$2"; }
nlabel() { mpdump < "$1" | grep -c "\"label\":\"$2\""; }

# ------------------------------------------------------------ data
# dns: the three DNS-like UDP flows of mkpcap udp; tcp: mkpcap's TCP session
# (its first 510 tokens, the context); ipv6: two flows without a label.
mkpcap udp --seed 1 -w udp.pcap && pcap2flow -q udp.pcap | flow2tok -q -l dns > dns.tok &&
mkpcap tcp --seed 1 -w tcp.pcap && pcap2flow -q tcp.pcap | flow2tok -q -l tcp > tcp.tok &&
mkpcap ipv6 --seed 1 -w v6.pcap && pcap2flow -q v6.pcap | flow2tok -q > v6.tok ||
	{ echo "Bail out! mkpcap | pcap2flow | flow2tok"; exit 1; }
cat dns.tok tcp.tok > two.tok
tokshard -q -o sh --split 1/0/0 --group flow --context 1024 two.tok 2>/dev/null &&
tokshard -q -o sh3 --split 1/0/0 --group flow --context 1024 two.tok v6.tok 2>/dev/null &&
tokshard -q -o nolab --split 1/0/0 --group flow --context 1024 v6.tok 2>/dev/null ||
	{ echo "Bail out! tokshard"; exit 1; }

# tiny, 300 steps on the four flows (loss about 0.03: learned nearly by
# heart). Measured with training seeds 1-4 and 40 flows of generation seed
# 7 (raw sampling, 200 tokens): 70-98% of the --label dns flows UDP,
# 80-95% of the --label tcp flows TCP, at most 1 of 40 of the other
# protocol. Under the grammar, flows of 300 tokens (a TCP handshake needs
# about 210; the grammar makes no TCP flow whose handshake cannot fit):
# 40 of 40 each with seed 1.
exits_with 0 "tgpt-train --conditional trains" tgpt-train --conditional --preset tiny \
	--context 512 -j 1 --steps 300 --lr 1e-2 --min-lr 1e-2 --seed 1 -o c.ckpt sh
like err 'class-conditional on 2 labels \(1 token each\)' "the summary says so"
[ -s c.ckpt ] || { echo "Bail out! no conditional model"; exit 1; }

# ------------------------------------------------------------ the checkpoint
exits_with 0 "--info reads it" tgpt-train --info c.ckpt
like out '^conditional 1$' "the model section says conditional 1"
like out '^vocab 263$' "the vocabulary grew by the two labels and the unlabelled one: 263"
like out '^label 0 260 3 dns$' "dns is token 260, 3 training flows"
like out '^label 1 261 1 tcp$' "tcp is token 261, 1 flow"
like out '^label 2 262 0 $' "the flows without a label have 262 (none here)"
ok "no window_tokens, which only a classifier has" bash -c "! grep -q window_tokens out"

# ------------------------------------------------------------ generate --label
for L in dns tcp; do
	exits_with 0 "generate --label $L: 40 flows" tgpt-infer generate --label $L -n 40 -j 1 \
		--max-tokens 300 --seed 7 c.ckpt
	mv out $L.gen
	is "$(nlabel $L.gen $L)" 40 "every record carries the label $L"
	like err "^labels: $L 40$" "the summary counts them"
done
udp_in_dns=$(nproto dns.gen 11) tcp_in_dns=$(nproto dns.gen 06)
tcp_in_tcp=$(nproto tcp.gen 06) udp_in_tcp=$(nproto tcp.gen 11)
echo "# --label dns: $udp_in_dns UDP, $tcp_in_dns TCP; --label tcp: $tcp_in_tcp TCP, $udp_in_tcp UDP (of 40)"
ok "--label dns: at least 60% UDP flows ($udp_in_dns of 40)" test "$udp_in_dns" -ge 24
ok "--label dns: at most 10% TCP flows ($tcp_in_dns)" test "$tcp_in_dns" -le 4
ok "--label tcp: at least 60% TCP flows ($tcp_in_tcp of 40)" test "$tcp_in_tcp" -ge 24
ok "--label tcp: at most 10% UDP flows ($udp_in_tcp)" test "$udp_in_tcp" -le 4
# (or is END alone: a flow whose one packet failed at --max-tokens and went)
ok "the label token is not written: every record starts with START" bash -c \
	"mpdump < dns.gen | tail -n +2 | grep -v '\"tokens\":\"0x0001' | \
	grep -v '\"tokens\":\"0x0101\"' | grep -c . | grep -qx 0"
ok "and holds no id past the tokenizer's 260" bash -c \
	"mpdump < tcp.gen | grep -o '\"tokens\":\"0x[0-9a-f]*' | cut -c13- | fold -w4 | grep -v '^..0[01]$' | grep -c . | grep -qx 0"
for L in dns tcp; do
	exits_with 0 "tok2pcap writes the $L flows as a pcap" tok2pcap -q -w $L.pcap $L.gen
	exits_with 0 "which pcap2flow reads back" pcap2flow -q $L.pcap
	ok "with packets in it" test "$(stat -c %s $L.pcap)" -gt 100
done
exits_with 0 "--raw --label tcp: free sampling takes labels too" tgpt-infer generate --raw \
	--label tcp -n 5 -j 1 --max-tokens 300 --seed 7 c.ckpt
is "$(nlabel out tcp)" 5 "every record carries the label"
exits_with 0 "the same seed gives the same bytes" tgpt-infer generate --label dns -n 40 -j 2 \
	--streams 3 --max-tokens 300 --seed 7 c.ckpt
ok "for any thread and stream count" cmp out dns.gen

# Without --label: each flow's label drawn by the training frequencies (3:1).
exits_with 0 "generate without --label" tgpt-infer generate -n 40 -j 1 --max-tokens 200 \
	--seed 7 c.ckpt
mv out drawn.gen
d=$(nlabel drawn.gen dns) t=$(nlabel drawn.gen tcp)
echo "# drawn: $d dns, $t tcp"
is "$((d + t))" 40 "labels every flow"
ok "about 3 dns for 1 tcp ($d, $t)" test "$d" -ge 22 -a "$t" -ge 4
like err "^labels: dns $d, tcp $t$" "the summary counts them"
# Prompts: a record's label is its flow's; --label keeps the records of it.
exits_with 0 "--prompt without --label" tgpt-infer generate -j 1 --prompt two.tok \
	--max-tokens 200 c.ckpt
is "$(nlabel out dns) $(nlabel out tcp)" "3 1" "the flows take the labels of their prompts"
exits_with 0 "--prompt with --label tcp" tgpt-infer generate -j 1 -n 3 --label tcp \
	--prompt two.tok --max-tokens 200 c.ckpt
is "$(nlabel out tcp)" 3 "three tcp flows"
first_tcp=$(mpdump < tcp.tok | sed -n 2p | grep -o '"tokens":"0x[0-9a-f]*' | cut -c13-100)
is "$(mpdump < out | tail -n +2 | grep -o '"tokens":"0x[0-9a-f]*' | cut -c13-100 | sort -u)" \
	"$first_tcp" "each primed with the tcp record, the dns ones skipped"
exits_with 65 "no prompt record of the label: exit 65" tgpt-infer generate -j 1 --label tcp \
	--prompt dns.tok c.ckpt
like err 'no token records to prompt with but those of other labels than tcp' "saying so"

# ------------------------------------------------------------ refused
exits_with 64 "an unknown --label exits 64" tgpt-infer generate --label udp c.ckpt
like err '--label udp: not a label of c.ckpt \(dns, tcp\)' "naming the known labels"
exits_with 64 "--label '' (the unlabelled flows' entry) is no label" \
	tgpt-infer generate --label '' c.ckpt
tgpt-train -q --preset tiny --context 512 -j 1 --steps 2 -o plain.ckpt sh 2>/dev/null
exits_with 64 "--label on a model that is not conditional exits 64" \
	tgpt-infer generate --label dns plain.ckpt
like err 'plain.ckpt is not class-conditional' "saying so"
# (a model of 2 steps may get no packet through the checks: exit 65 then,
# the record written all the same)
run tgpt-infer generate -n 1 -j 1 --max-tokens 100 plain.ckpt
[ "$RC" = 0 ] || { [ "$RC" = 65 ] && grep -q 'holds a packet' err; }
t_result $? "the old kind of checkpoint still generates without --label"
ok "with no label" bash -c "! mpdump < out | grep -q '\"label\"'"
exits_with 65 "classify refuses a conditional model" tgpt-infer classify -j 1 c.ckpt sh/train.shard
like err 'not a classifier but a class-conditional generator' "saying what it is"
exits_with 64 "--conditional --labels exits 64" tgpt-train --conditional --labels -o x.ckpt sh
exits_with 64 "--conditional --random-data exits 64" tgpt-train --conditional --random-data
exits_with 65 "--conditional on shards without labels exits 65" \
	tgpt-train -q --conditional --preset tiny --steps 1 -o x.ckpt nolab
like err 'no labelled flows' "saying so"
exits_with 64 "--finetune of a conditional model without --conditional exits 64" \
	tgpt-train -q --finetune c.ckpt --steps 1 -o x.ckpt sh
like err 'a class-conditional model: go on with --conditional' "saying how to go on"
exits_with 64 "--resume of a plain run with --conditional exits 64" \
	tgpt-train -q --resume plain.ckpt --conditional --steps 3 -o x.ckpt sh

# ------------------------------------------------------------ runs
exits_with 0 "--resume of a conditional run" tgpt-train -q --resume c.ckpt --steps 305 \
	-o r.ckpt sh
exits_with 0 "--info reads r.ckpt" tgpt-train --info r.ckpt
like out '^conditional 1$' "stays conditional"
like out '^step 305$' "and went on to step 305"
exits_with 0 "--finetune --conditional goes on with the same labels" tgpt-train -q \
	--finetune c.ckpt --conditional -j 1 --steps 2 -o f.ckpt sh
exits_with 0 "--finetune --labels turns it into a classifier" tgpt-train -q --finetune c.ckpt \
	--labels --window-tokens 64 -j 1 --steps 2 -o clf.ckpt sh
exits_with 0 "--info reads clf.ckpt" tgpt-train --info clf.ckpt
ok "which is not conditional" bash -c "! grep -q '^conditional' out"
exits_with 0 "unlabelled flows train under the \"\" label" tgpt-train -q --conditional \
	--preset tiny --context 512 -j 1 --steps 2 -o u.ckpt sh3
exits_with 0 "--info reads u.ckpt" tgpt-train --info u.ckpt
like out '^label 2 262 2 $' "its two flows counted"
exits_with 0 "bench's vocabulary of 300 holds the label tokens" tgpt-train -q --conditional \
	--preset bench --layers 1 --width 16 --emb 16 --heads 1 --head-dim 16 --ff 16 \
	--context 256 -j 1 --steps 1 -o b.ckpt sh
exits_with 0 "--info reads b.ckpt" tgpt-train --info b.ckpt
like out '^vocab 300$' "and keeps it"

done_testing
