#!/usr/bin/env bash
# demo.t: `make demo`, the README's first command after `make deps`, builds
# everything examples/demo.sh runs before it runs it: on a fresh clone
# nothing else has been built (`make check` builds the test helpers, but a
# newcomer runs the demo first). Checked on make's dry run, which plans
# every build from nothing (-B); the demo itself runs in CI (.ci/run).
. "$TGPT_TOP/tests/lib.sh"
need_tools make
unset MAKEFLAGS MFLAGS MAKELEVEL

demo=$TGPT_TOP/examples/demo.sh
# The programs demo.sh calls by name: every word of it (comments aside)
# that names one of the project's tools or test helpers (make's TOOLS and
# TEST_HELPERS).
words=$(sed 's/#.*//' "$demo" | grep -oE '[A-Za-z0-9_-]+' | sort -u)
make -C "$TGPT_TOP" -pn demo 2>/dev/null | grep -E '^(TOOLS|TEST_HELPERS) :?=' > vars
programs=$(sed 's/^[A-Z_]* :*= //' vars | tr ' ' '\n' | sed 's|.*/||' | grep . | sort -u)
used=$(comm -12 <(echo "$words") <(echo "$programs"))
[ -n "$used" ]; t_result $? "demo.sh calls tools and helpers ($(echo $used))"

make -C "$TGPT_TOP" -nB demo > plan 2>&1
like plan 'examples/demo.sh' "make -nB demo runs examples/demo.sh"
# Where a program is linked in the plan, by its name after -o.
sed -n 's/.* -o \([^ ]*\) .*/\1/p' plan | sed 's|.*/||' | sort -u > built
for p in $used; do
	grep -qx "$p" built; t_result $? "make demo builds $p before demo.sh runs it"
done
# The plan builds them before it runs the script.
last_build=$(grep -n ' -o [^ ]* ' plan | tail -1 | cut -d: -f1)
run_at=$(grep -n 'examples/demo.sh' plan | tail -1 | cut -d: -f1)
[ -n "$last_build" ] && [ -n "$run_at" ] && [ "$last_build" -lt "$run_at" ]
t_result $? "... all of them before the script"

# CI meets the demo as a newcomer does: on its clean clone, before the tests.
ci=$TGPT_TOP/.ci/run
demo_line=$(grep -n 'make[^#]* demo' "$ci" | head -1 | cut -d: -f1)
check_line=$(grep -n 'make[^#]* check' "$ci" | head -1 | cut -d: -f1)
[ -n "$demo_line" ] && [ -n "$check_line" ] && [ "$demo_line" -lt "$check_line" ]
t_result $? ".ci/run runs make demo before make check"

done_testing
