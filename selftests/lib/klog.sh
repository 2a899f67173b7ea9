# SPDX-License-Identifier: GPL-2.0
#
# Kernel log marks: a test writes a unique line to /dev/kmsg (kmark) and
# then looks only at what the kernel logged after it. A line count would
# break once the ring buffer is full (old lines leave as new ones come).
# No process where a builtin does (a process costs 0.1-0.4 s under TCG).
# Sourcing this file defines functions only. Needs `die` (ktap.sh).
#
#   kmark                   write a mark
#   klog                    KLOG = the log after the last mark; KLOG_LOST=1
#                           when the mark has left the buffer (KLOG is then
#                           the whole buffer)
#   assert_klog REGEX       a line since the mark matches REGEX
#   assert_no_kernel_report no oops, BUG, WARNING, KASAN, lockdep, ...
#                           (tools/kernel-report-patterns) since the mark
#
# A suite may add a hint to the lost-mark failure of assert_klog in
# KLOG_LOST_HINT (the name of a function printing one line).

kmark() {
	KMARK="$(basename "$0" .sh)-selftest mark $BASHPID-$RANDOM$RANDOM"
	KMARK_T=$SECONDS
	echo "$KMARK" >/dev/kmsg
}

klog() {
	local -a lines
	local i IFS=$'\n'
	# Line by line from the end (${l##*"$KMARK"} on the whole log costs
	# O(log size x log since the mark): seconds on a big log under TCG).
	mapfile -t lines < <(dmesg)
	for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
		[[ "${lines[i]}" != *"${KMARK:-}"* ]] || break
	done
	KLOG_LOST=0
	[ "$i" -ge 0 ] || KLOG_LOST=1
	KLOG="${lines[*]:i+1}"
}

assert_klog() {
	klog
	if [ "$KLOG_LOST" = 1 ]; then
		[ "$(type -t "${KLOG_LOST_HINT:-}")" != function ] || "$KLOG_LOST_HINT" >&2
		die "kernel log mark lost: $KMARK"
	fi
	[[ "$KLOG" =~ $1 ]] || { echo "$KLOG" | tail -n 8 >&2; die "kernel log has no line matching: $1"; }
}

# klog_report_re: sets REPORT_RE from tools/kernel-report-patterns.
klog_report_re() {
	[ -n "${REPORT_RE:-}" ] || REPORT_RE=$(<"$TOP/tools/kernel-report-patterns")
}

assert_no_kernel_report() {
	klog_report_re
	klog
	if [[ "$KLOG" =~ $REPORT_RE ]]; then
		echo "$KLOG" | grep -E -A20 "$REPORT_RE" | head -n 60 >&2
		die "kernel report in the log"
	fi
}
