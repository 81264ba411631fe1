#!/usr/bin/env bash
# `make test`: the tests marked "background" (the fault suite in tests/faults and the cluster
# runner's tests, which start clusters of their own, and the differential runs) in a pytest session
# of their own, with its own broker, beside the rest of the suite. They spend most of their time
# waiting for killed workers, sessions timing out and brokers coming back, so the two sessions
# share this machine's cores well. The
# background session's report is printed after the other one; the exit status is non-zero when
# either failed. Interrupted, both are stopped (the background one by its PID).
set -u
python="$1"
shift
work=$(mktemp -d)
"$python" -m pytest -q -p no:cacheprovider --basetemp="$work/tmp" -m background --durations=10 "$@" >"$work/faults.log" 2>&1 &
faults=$!
stop_faults() {
	kill -TERM "$faults" 2>/dev/null
	wait "$faults"
	rm -rf "$work"
	exit 130
}
trap stop_faults INT TERM
"$python" -m pytest -q -p no:cacheprovider -m "not background" --durations=20 "$@"
rest=$?
wait "$faults"
fault=$?
trap - INT TERM
echo "--- the background session (tests/faults, test_cluster.py, test_differential.py), run beside the rest ---"
cat "$work/faults.log"
if [ "$fault" -eq 0 ]; then
	rm -rf "$work"
else
	# The failed tests' workers' logs and data, for whoever looks into it.
	echo "--- the background session's files are kept in $work/tmp ---"
fi
[ "$rest" -eq 0 ] && [ "$fault" -eq 0 ]
