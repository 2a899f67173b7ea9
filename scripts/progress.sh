# SPDX-License-Identifier: GPL-2.0
# Long commands with their output in a log file and a progress line on the
# console; sourced, not run (scripts/build-kernel.sh). Set before use:
#   PROGRESS_TAG  the prefix of the console lines, e.g. "kernel"
#   PROGRESS_LOG  the log file the commands' output goes to

# logged CMD...: runs CMD with its output appended to PROGRESS_LOG; on
# failure prints the log's last lines and exits with CMD's status.
logged() {
	local rc=0
	"$@" >>"$PROGRESS_LOG" 2>&1 || rc=$?
	[ "$rc" = 0 ] || log_failure "$rc" "$*"
}

log_failure() { # STATUS WHAT
	printf '[%s] failed (exit %s): %s\n' "$PROGRESS_TAG" "$1" "$2" >&2
	printf '[%s] the last 40 lines of %s:\n' "$PROGRESS_TAG" "$PROGRESS_LOG" >&2
	tail -n 40 "$PROGRESS_LOG" >&2
	exit "$1"
}

# with_progress WHAT TOTAL COUNT-FUNCTION CMD...: runs CMD like `logged`
# while a progress line counts: "WHAT: N/TOTAL (P %), M:SS" where N is what
# COUNT-FUNCTION prints (every 2 s). On a terminal (stderr) the line updates
# in place; otherwise a line is printed every 10 % and at least every 2
# minutes. TOTAL is an estimate: past it, the line says "finishing".
with_progress() {
	local what=$1 total=$2 count=$3 rc=0 mon
	shift 3
	progress_monitor "$what" "$total" "$count" &
	mon=$!
	"$@" >>"$PROGRESS_LOG" 2>&1 || rc=$?
	kill "$mon" 2>/dev/null || true
	wait "$mon" 2>/dev/null || true
	[ ! -t 2 ] || printf '\n' >&2
	[ "$rc" = 0 ] || log_failure "$rc" "$*"
}

# progress_monitor WHAT TOTAL COUNT-FUNCTION: the progress loop of
# with_progress; ends when killed or when its parent shell is gone.
progress_monitor() {
	local what=$1 total=$2 count=$3 start=$SECONDS n pct el line step last_step=-1 last_t=$SECONDS
	local parent=$$ tty=0
	[ ! -t 2 ] || tty=1
	trap 'exit 0' TERM
	while kill -0 "$parent" 2>/dev/null; do
		n=$("$count")
		el=$((SECONDS - start))
		if [ "$n" -lt "$total" ]; then
			pct=$((100 * n / total))
			line=$(printf '%s: %d/%d (%d %%), %d:%02d' "$what" "$n" "$total" "$pct" $((el / 60)) $((el % 60)))
		else	# past the estimate: the last steps
			pct=99
			line=$(printf '%s: %d (finishing), %d:%02d' "$what" "$n" $((el / 60)) $((el % 60)))
		fi
		if [ "$tty" = 1 ]; then
			printf '\r[%s] %s\033[K' "$PROGRESS_TAG" "$line" >&2
		else
			step=$((pct / 10))
			if [ "$step" != "$last_step" ] || [ $((SECONDS - last_t)) -ge 120 ]; then
				printf '[%s] %s\n' "$PROGRESS_TAG" "$line" >&2
				last_step=$step last_t=$SECONDS
			fi
		fi
		sleep "${PROGRESS_INTERVAL:-2}" &
		wait $! || true
	done
}
