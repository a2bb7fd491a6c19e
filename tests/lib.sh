# lib.sh: TAP for the shell tests of the tools (sourced by tests/cli/*.t).
# Each test runs commands in a fresh temporary directory and checks exit
# status, stdout and stderr; done_testing prints the plan and sets the status.
set -u
T_COUNT=0
T_FAILED=0
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tgpt-test.XXXXXX")
trap 'rm -rf "$T_DIR"' EXIT
cd "$T_DIR" || exit 1

t_result() { # ok? description
	T_COUNT=$((T_COUNT + 1))
	if [ "$1" = 0 ]; then echo "ok $T_COUNT - $2"
	else echo "not ok $T_COUNT - $2"; T_FAILED=$((T_FAILED + 1)); fi
}
# ok DESCRIPTION COMMAND...: passes when the command exits 0
ok() { local d=$1; shift; "$@" >/dev/null 2>&1; t_result $? "$d"; }
# run COMMAND...: runs it, keeping stdout in $T_DIR/out, stderr in $T_DIR/err, status in $RC
run() { "$@" >"$T_DIR/out" 2>"$T_DIR/err"; RC=$?; }
# exits_with CODE DESCRIPTION COMMAND...
exits_with() {
	local want=$1 d=$2; shift 2; run "$@"
	[ "$RC" = "$want" ]; t_result $? "$d"
	[ "$RC" = "$want" ] || { echo "#   exit $RC, want $want"; sed 's/^/#   stderr: /' "$T_DIR/err" | head -5; }
}
# is GOT WANT DESCRIPTION
is() {
	[ "$1" = "$2" ]; t_result $? "$3"
	[ "$1" = "$2" ] || printf '#   got  "%s"\n#   want "%s"\n' "$1" "$2"
}
# like FILE REGEX DESCRIPTION: a line of FILE matches the extended regex
like() { grep -Eq -- "$2" "$1"; t_result $? "$3"; grep -Eq -- "$2" "$1" || { echo "#   no line of $1 matches /$2/"; head -5 "$1" | sed 's/^/#   /'; }; }
skip() { T_COUNT=$((T_COUNT + 1)); echo "ok $T_COUNT # skip $1"; }
# need_tools TOOL...: the whole test is skipped (plan 1..0) unless every TOOL is on PATH
need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "1..0 # skip $t is needed"; exit 0; }
	done
}
done_testing() { echo "1..$T_COUNT"; [ "$T_FAILED" = 0 ]; exit $?; }
# Runs a command with stdout on a pseudo-terminal (script(1)), for tty checks.
on_tty() { script -qec "$*" /dev/null; }
