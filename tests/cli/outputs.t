#!/usr/bin/env bash
# outputs.t: what every tool that writes files does with its output path
# (common/cli.c's atomic_open): through a symbolic link it writes the file
# the link leads to and keeps the link; /dev/stdout (or a link of our own to
# /proc/self/fd/1) is the standard output as it is, not a path to replace;
# a FIFO and /dev/null are written in place; and a failed run never replaces
# an existing output: the old file (or none) stays, the message says which,
# and what it read before the error is kept in FILE.partial.
. "$TGPT_TOP/tests/lib.sh"

mkpcap tcp -w tcp.pcap
mkpcap cut -w cut.pcap
# three flows: a stream cut in the last still has two
mkpcap udp -w udp.pcap
pcap2flow --all udp.pcap > udp.flows
flow2tok udp.flows > udp.tok
head -c $(($(stat -c %s udp.flows) - 20)) udp.flows > cut.flows
head -c $(($(stat -c %s udp.tok) - 20)) udp.tok > cut.tok
printf 'no capture, no stream: garbage' > garbage

# no_leftovers: no temporary file anywhere below the test directory
no_leftovers() { ! find . -name '*.tmp.*' | grep -q .; t_result $? "$1: no temporary file left"; }

# cases NAME OPT GOOD PARTIAL WHAT: TOOL OPT PATH INPUT, where GOOD is an input
# the tool reads to the end, PARTIAL one damaged after some records (WHAT
# of them are kept in PATH.partial) and garbage one it cannot read at all.
cases() {
	local name=$1 opt=$2 good=$3 partial=$4 what=$5 tool=${1%% *}
	tool=$tool${name#* }; tool=${tool%% *} # the command too (tgpt-infer classify)
	mkdir "$tool" && cd "$tool" || return
	local t="$name $opt"
	ln -s ../"$good" in.good; ln -s ../"$partial" in.partial; ln -s ../garbage in.garbage
	$name "$opt" ref.out in.good 2>/dev/null
	ok "$t: a reference output" test -s ref.out

	# a symbolic link to a file, relative, in another directory
	mkdir d && echo old > d/real.out && ln -s ../d/real.out link.out && mkdir e && mv link.out e/
	exits_with 0 "$t LINK: exits 0" $name "$opt" e/link.out in.good
	ok "$t LINK: the link is still a link" test -L e/link.out
	ok "$t LINK: the file it leads to holds the output" cmp d/real.out ref.out
	# a link that leads nowhere yet: its target is made
	ln -s new.out dangling.out
	exits_with 0 "$t DANGLING-LINK: exits 0" $name "$opt" dangling.out in.good
	ok "$t DANGLING-LINK: still a link" test -L dangling.out
	ok "$t DANGLING-LINK: its target made" cmp new.out ref.out

	# the standard output, a file: first through a link of our own (a tool
	# that replaced it would only replace our link), then /dev/stdout
	ln -s /proc/self/fd/1 fd1
	exits_with 0 "$t /proc/self/fd/1 with stdout a file: exits 0" sh -c "$name '$opt' fd1 in.good > via-fd1.out"
	ok "$t /proc/self/fd/1: the link is still a link" test -L fd1
	ok "$t /proc/self/fd/1: the output went to stdout" cmp via-fd1.out ref.out
	if [ -L fd1 ] && cmp -s via-fd1.out ref.out; then
		exits_with 0 "$t /dev/stdout with stdout a file: exits 0" sh -c "$name '$opt' /dev/stdout in.good > via-stdout.out"
		ok "$t /dev/stdout: the output went to stdout" cmp via-stdout.out ref.out
		ok "$t /dev/stdout: still a link" test -L /dev/stdout
		# stdout opened for appending: written after what it holds
		echo before > app.out
		sh -c "$name '$opt' /dev/stdout in.good >> app.out" 2>/dev/null
		is "$(head -c 7 app.out)" before "$t /dev/stdout appending: what stdout held stays"
		is "$(stat -c %s app.out)" $(($(stat -c %s ref.out) + 7)) "$t /dev/stdout appending: the output after it"
	else
		skip "$t /dev/stdout: not tried, the tool replaced a link to /proc/self/fd/1"
	fi

	# a FIFO and /dev/null are written in place
	mkfifo fifo
	timeout 20 cat fifo > via-fifo.out & local reader=$!
	exits_with 0 "$t FIFO: exits 0" timeout 20 $name "$opt" fifo in.good
	wait "$reader"
	ok "$t FIFO: still a FIFO" test -p fifo
	ok "$t FIFO: the output came through it" cmp via-fifo.out ref.out
	exits_with 0 "$t /dev/null: exits 0" $name "$opt" /dev/null in.good
	ok "$t /dev/null: still a character device" test -c /dev/null

	# a failed run over an existing output, and without one
	cp ref.out keep.out
	run $name "$opt" keep.out in.garbage
	[ "$RC" != 0 ]; t_result $? "$t OLD garbage: fails"
	ok "$t OLD garbage: the old output is kept" cmp keep.out ref.out
	like "$T_DIR/err" "keep.out: not replaced, the old file is kept" "$t OLD garbage: says so"
	ok "$t OLD garbage: no partial output" test ! -e keep.out.partial
	run $name "$opt" none.out in.garbage
	ok "$t NONE garbage: no file is made" test ! -e none.out
	like "$T_DIR/err" "none.out: not written" "$t NONE garbage: says so"
	# damaged after some records: they go to .partial, beside the old file
	$name "$opt" - in.partial > partial-stdout.out 2>/dev/null
	run $name "$opt" keep.out in.partial
	is "$RC" 65 "$t OLD damaged: exits 65"
	ok "$t OLD damaged: the old output is kept" cmp keep.out ref.out
	ok "$t OLD damaged: what was read is in keep.out.partial" cmp keep.out.partial partial-stdout.out
	like "$T_DIR/err" "keep.out: not replaced, the old file is kept; what was written before the error \([0-9]+ $what\) is in keep.out.partial" \
		"$t OLD damaged: says where"
	cp ref.out d/real2.out && ln -s d/real2.out link2.out
	run $name "$opt" link2.out in.garbage
	ok "$t OLD through a link, garbage: the link stays" test -L link2.out
	ok "$t OLD through a link, garbage: the old file is kept" cmp d/real2.out ref.out
	no_leftovers "$t"
	cd ..
}

cases pcap2flow -o tcp.pcap cut.pcap 'flows?'
cases flow2tok -o udp.flows cut.flows 'token records'
cases tok2pcap -w udp.tok cut.tok packets

# tok2pcap --split: each capture it writes is kept the same way
tok2pcap --split part udp.tok
cp part-1.pcap ref-1.pcap
run tok2pcap --split part cut.tok
is "$RC" 65 "--split, damaged: exits 65"
ok "--split, damaged: the old capture is kept" cmp part-1.pcap ref-1.pcap
ok "--split, damaged: the packets read before are beside it" test -s part-1.pcap.partial
like "$T_DIR/err" "part-1.pcap: not replaced, the old file is kept" "--split, damaged: says so"

# ------------------------------------------------------------ the model's tools
if command -v tgpt-train >/dev/null && command -v tgpt-infer >/dev/null && command -v tokshard >/dev/null; then
	{ pcap2flow tcp.pcap | flow2tok -l web; flow2tok -l dns udp.flows; } 2>/dev/null |
		tokshard -q -o sh --split 1/0/0 --context 512 -
	tgpt-train -q --preset tiny --context 512 -j 1 --steps 2 -o model.ckpt sh 2>/dev/null
	tgpt-train -q --finetune model.ckpt --labels -j 1 --steps 2 -o clf.ckpt sh 2>/dev/null
	ok "a classifier to test with" test -s clf.ckpt
	# classify: predictions of the flows read, a damaged stream's before the damage
	cases "tgpt-infer classify -j 1 ../clf.ckpt" -o udp.tok cut.tok predictions
	# tgpt-train's checkpoint, through a link; a failed run over it
	mkdir ck && echo old > ck/real.ckpt && ln -s ck/real.ckpt link.ckpt
	exits_with 0 "tgpt-train -o LINK" tgpt-train -q --preset tiny --context 512 -j 1 --steps 1 -o link.ckpt sh
	ok "tgpt-train -o LINK: the link is still a link" test -L link.ckpt
	ok "tgpt-train -o LINK: the checkpoint is where it leads" tgpt-train --info ck/real.ckpt
	cp model.ckpt keep.ckpt
	mkdir bad && printf 'garbage' > bad/train.shard
	run tgpt-train -q --preset tiny --context 512 -j 1 --steps 1 -o keep.ckpt bad
	[ "$RC" != 0 ]; t_result $? "tgpt-train on a damaged shard fails"
	ok "... the old checkpoint is kept" cmp keep.ckpt model.ckpt
	no_leftovers "tgpt-train"
else
	skip "tgpt-train, tgpt-infer or tokshard not built"
fi

done_testing
