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

# The device tests, run a second time on the platform personality when
# the module was loaded with PCI devices (tools/vm/hmmvm --personality
# pci): device 0 is the PCI one during the first pass.
PLATFORM_PASS="test_device test_migrate test_oversub test_view"

n=0
failed=0
# run_prog PROGRAM NAME: runs it and merges its TAP as NAME
run_prog() {
	p=$1
	name=$2
	out=/tmp/$name.tap
	echo "run-tests: $p ($name)"
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
}

for p in $progs; do
	run_prog "$p" "$(basename "$p")"
done

pci=$(cat /sys/module/hmmgpu/parameters/pci 2>/dev/null)
again=
for p in $progs; do
	case " $PLATFORM_PASS " in
	*" $(basename "$p") "*) again="$again $p" ;;
	esac
done
if [ -n "$pci" ] && [ -n "$again" ]; then
	# the same parameters without pci: platform devices only
	orig_params=$(echo "$orig_params" | sed 's/pci=[^ ]* //')
	echo "# run-tests: again on the platform personality ($orig_params)" >&3
	rmmod hmmgpu
	# shellcheck disable=SC2086
	if insmod "$HMMGPU_KO" $orig_params; then
		for p in $again; do
			run_prog "$p" "$(basename "$p")[platform]"
		done
	else
		n=$((n + 1))
		echo "not ok $n run-tests: reloading hmmgpu without pci" >&3
		failed=1
	fi
fi
exit $failed
