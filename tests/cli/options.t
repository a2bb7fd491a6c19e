#!/usr/bin/env bash
# options.t: what every tool says about an option it does not know or one
# given without its value: one line with the tool's own name (not argv[0]
# as typed, a path) naming the option, the synopsis, and where to read
# more; exit 64.
. "$TGPT_TOP/tests/lib.sh"

# TOOL [COMMAND] OPTION-WITH-A-VALUE (short)
while read -r tool cmd valued; do
	[ -n "$valued" ] || { valued=$cmd; cmd=; }
	bin=$(command -v "$tool") || { skip "$tool not built"; continue; }
	if [ -n "$cmd" ]; then
		# a tool of commands: the option after its command
		sub() { "$tool" "$cmd" "$@"; }
		bin=sub
	fi
	exits_with 64 "$tool --frobnicate exits 64" "$bin" --frobnicate
	is "$(head -1 err)" "$tool: unknown option '--frobnicate'" "$tool: the message names the tool and the option"
	is "$(grep -c "$(command -v "$tool")" err)" 0 "$tool: not the path it was run by"
	is "$(wc -l < err)" 3 "$tool: one message, the synopsis and where to read more"
	like err "^Try '$tool --help' for more\.$" "$tool: ... which ends the message"
	exits_with 64 "$tool --frobnicate=1 exits 64" "$bin" --frobnicate=1
	is "$(head -1 err)" "$tool: unknown option '--frobnicate'" "$tool: a long option's value is not part of its name"
	exits_with 64 "$tool -Z exits 64" "$bin" -Z
	is "$(head -1 err)" "$tool: unknown option '-Z'" "$tool: an unknown short option"
	exits_with 64 "$tool $valued without its value exits 64" "$bin" "$valued"
	is "$(head -1 err)" "$tool: option '$valued' needs a value" "$tool: a missing value is named"
done <<'LIST'
pcap2flow -o
flow2tok -o
tok2pcap -w
jsdiv -t
tokshard -o
realism-eval -t
tgpt-train -o
tgpt-infer classify -o
tgpt-infer generate -n
LIST

done_testing
