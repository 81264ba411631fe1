#!/usr/bin/env bash
# `make test`: the fault suite (tests/faults, marker "faults") in a pytest session of its own,
# beside the rest of the suite. Its cases spend most of their time waiting for killed workers,
# sessions timing out and brokers coming back, on a 3-broker cluster of their own, so the two
# sessions share this machine's cores well. The fault suite's report is printed after the
# other one; the exit status is non-zero when either failed. Interrupted, both are stopped
# (the background one by its PID).
set -u
python="$1"
shift
work=$(mktemp -d)
"$python" -m pytest -q -p no:cacheprovider --basetemp="$work/tmp" -m faults --durations=10 "$@" >"$work/faults.log" 2>&1 &
faults=$!
stop_faults() {
	kill -TERM "$faults" 2>/dev/null
	wait "$faults"
	rm -rf "$work"
	exit 130
}
trap stop_faults INT TERM
"$python" -m pytest -q -p no:cacheprovider -m "not faults" --durations=20 "$@"
rest=$?
wait "$faults"
fault=$?
trap - INT TERM
echo "--- the fault suite (tests/faults), run beside the rest ---"
cat "$work/faults.log"
rm -rf "$work"
[ "$rest" -eq 0 ] && [ "$fault" -eq 0 ]
