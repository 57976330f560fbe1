#!/usr/bin/env bash
# scripts/test.sh -- install what is missing, build, and run the whole test
# suite twice: a normal build (build/) and an AddressSanitizer +
# UndefinedBehaviorSanitizer build (build-asan/). Unit tests are cmocka
# programs; integration tests start private PostgreSQL clusters and the real
# daemon (tests/integration/harness.py).
#
# Ends with one line "N passed, N failed" (both runs summed; a build that
# fails counts as one failure) and exits non-zero if anything failed.
# Extra arguments go to both `meson test` runs (e.g. --suite unit).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CREDITD_ROOT"

ensure_packages
ensure_service_user

passed=0
failed=0

# Adds the results of the last `meson test` in build dir $1 to the counters.
# testlog.json has one JSON object per test with "result" OK, FAIL, SKIP,
# TIMEOUT, ERROR, EXPECTEDFAIL or UNEXPECTEDPASS.
count_results() {
	local log=$1/meson-logs/testlog.json counts
	[ -f "$log" ] || return 1
	counts=$("$CREDITD_PYTHON" - "$log" <<-'PY'
		import json, sys
		ok = bad = 0
		with open(sys.argv[1], encoding="utf-8") as f:
		    for line in f:
		        line = line.strip()
		        if not line:
		            continue
		        r = json.loads(line).get("result")
		        if r in ("OK", "EXPECTEDFAIL"):
		            ok += 1
		        elif r != "SKIP":
		            bad += 1
		print(ok, bad)
	PY
	) || return 1
	passed=$((passed + ${counts% *}))
	failed=$((failed + ${counts#* }))
}

# run_suite DIR LABEL [meson test args...]
run_suite() {
	local dir=$1 label=$2 rc=0 before=$failed
	shift 2
	rm -f "$dir/meson-logs/testlog.json"
	log "meson test ($label)"
	meson test -C "$dir" --print-errorlogs "$@" || rc=$?
	if ! count_results "$dir"; then
		# No test log: meson did not get as far as running tests.
		[ "$rc" -eq 0 ] || failed=$((failed + 1))
	elif [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
		failed=$((failed + 1)) # meson failed without a failing test
	fi
}

if build_dir build; then
	run_suite build "plain" "$@"
else
	warn "build/ failed to build"
	failed=$((failed + 1))
fi

if build_dir build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
	ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:print_summary=1:detect_stack_use_after_return=1:strict_string_checks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1 \
		LSAN_OPTIONS=print_suppressions=0 \
		run_suite build-asan "ASan+UBSan" "$@"
else
	warn "build-asan/ failed to build"
	failed=$((failed + 1))
fi

# libFuzzer targets, 20 s each (scripts/fuzz.sh): one test in the totals.
if "$CREDITD_ROOT/scripts/fuzz.sh" 20; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
