# lib.bash: what the benchmark scripts share (sourced by bench/train.sh and
# bench/infer.sh): waiting for a quiet machine, ratios and the goal verdicts.
# (named .bash, not .sh: `make bench` runs every bench/*.sh)
#   QUIET_WAIT: seconds wait_quiet waits at most (default 60)

# Percent of the machine's CPU time that was busy over one second.
cpu_busy() {
	local a b
	a=$(head -1 /proc/stat)
	sleep 1
	b=$(head -1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {
		na = split(a, x); split(b, y); tot = 0
		for (i = 2; i <= 9 && i <= na; i++) tot += y[i] - x[i]
		idle = (y[5] - x[5]) + (y[6] - x[6])
		printf "%.0f\n", (tot > 0) ? 100 * (1 - idle / tot) : 0 }'
}

# Waits up to QUIET_WAIT seconds for the other processes to leave the CPUs
# (under 25 % busy); prints the last busy percent seen.
wait_quiet() {
	local busy waited=0
	busy=$(cpu_busy)
	while [ "$busy" -ge 25 ] && [ "$waited" -lt "${QUIET_WAIT:-60}" ]; do
		sleep 4
		waited=$((waited + 5))
		busy=$(cpu_busy)
	done
	echo "$busy"
}

# A / B to two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# "met" or "NOT met": VALUE OP GOAL with OP ge or le.
verdict() {
	awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {
		ok = (op == "ge") ? (v + 0 >= g + 0) : (v + 0 <= g + 0); print (ok ? "met" : "NOT met") }'
}
