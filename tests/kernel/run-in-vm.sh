#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs inside the hmmvm guest (as /hmm/run-tests): every kernel test
# program, or the ones named, each printing TAP.  Their results are merged
# into one numbered TAP stream, written to fd 3 (the results port) when it
# is open, and echoed to the console.
cd /hmm || exit 1
if [ $# -gt 0 ]; then
	progs="$*"
else
	progs=$(ls tests/kernel/test_* 2>/dev/null | sort)
fi
[ -n "$progs" ] || { echo "run-tests: no test programs in /hmm/tests/kernel" >&2; exit 1; }

# fd 3 is the results port under tools/vm/hmmvm; stdout otherwise.
if ! { true >&3; } 2>/dev/null; then
	exec 3>&1
fi

# hmmgpu's parameters as loaded, to put the module back as it was when a
# test that reloads it was killed before it could (a time-out).
hmmgpu_params() {
	[ -d /sys/module/hmmgpu/parameters ] || return 1
	for f in /sys/module/hmmgpu/parameters/*; do
		printf '%s=%s ' "${f##*/}" "$(cat "$f")"
	done
}
orig_params=$(hmmgpu_params)

restore_hmmgpu() {
	[ -n "$orig_params" ] || return 0
	now=$(hmmgpu_params)
	[ "$now" = "$orig_params" ] && ! [ -d /sys/module/hmmgpu_testdma ] &&
		return 0
	echo "# run-tests: $1 left hmmgpu as '${now:-unloaded}'; reloading it" >&3
	rmmod hmmgpu 2>/dev/null
	rmmod hmmgpu_testdma 2>/dev/null
	# shellcheck disable=SC2086
	insmod "$HMMGPU_KO" $orig_params
}

n=0
failed=0
for p in $progs; do
	name=$(basename "$p")
	out=/tmp/$name.tap
	echo "run-tests: $p"
	{
		"$p"
		echo $? >/tmp/rc
	} 2>&1 | tee "$out"
	rc=$(cat /tmp/rc)
	bad=0
	while IFS= read -r line; do
		case $line in
		"ok "*|"not ok "*)
			n=$((n + 1))
			status=${line%% [0-9]*}
			rest=${line#"$status" }
			rest=${rest#* }
			echo "$status $n $name: $rest" >&3
			if [ "$status" = "not ok" ]; then
				failed=1
				bad=1
			fi
			;;
		"# "*)
			echo "$line" >&3
			;;
		esac
	done <"$out"
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ "$bad" = 0 ]; then
		n=$((n + 1))
		echo "not ok $n $name: exited with status $rc" >&3
		failed=1
	fi
	restore_hmmgpu "$name"
done
exit $failed
