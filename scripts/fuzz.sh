#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS [TARGET...]] -- build the libFuzzer targets of
# tests/fuzz/ (build dir build-fuzz/, clang, ASan+UBSan) and run each one for
# SECONDS (default 60) starting from its seed corpus tests/fuzz/corpus/NAME/.
#
# The seeds are copied to a temporary directory first, so the inputs the
# fuzzer adds never touch the checkout. TARGETs default to all of them
# (fuzz_decimal fuzz_config fuzz_events fuzz_http). Extra libFuzzer options can be given
# in CREDITD_FUZZ_ARGS (e.g. "-jobs=4 -workers=4" or "-only_ascii=1").
#
# Exits non-zero if a target crashes, leaks, times out (5 s per input) or
# exceeds 2048 MB; the crash input is kept in build-fuzz/artifacts/ and the
# command to reproduce it is printed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CREDITD_ROOT"

seconds=${1:-60}
[ $# -gt 0 ] && shift
case $seconds in
'' | *[!0-9]*) die "usage: scripts/fuzz.sh [SECONDS [TARGET...]] (SECONDS: a whole number)" ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_decimal fuzz_config fuzz_events fuzz_http)

ensure_packages
command -v clang >/dev/null || die "clang not found (apt-get install clang libclang-rt-14-dev)"

dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
	rm -rf "${CREDITD_ROOT:?}/$dir"
	log "meson setup $dir (clang, -Dfuzz=true)"
	CC=clang meson setup "$dir" -Dfuzz=true -Dtests=false >/dev/null ||
		die "meson setup $dir failed (clang with libFuzzer: packages clang libclang-rt-14-dev)"
fi
log "building ${targets[*]}"
ninja -C "$dir" "${targets[@]/#/tests/fuzz/}" >/dev/null || die "building the fuzz targets failed"

work=$(mktemp -d "${TMPDIR:-/tmp}/creditd-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$CREDITD_ROOT/$dir/artifacts
mkdir -p "$artifacts"

# Sanitizer settings: stop at the first report; libFuzzer turns it into a
# crash artifact.
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:print_summary=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1

bad=0
for t in "${targets[@]}"; do
	name=${t#fuzz_}
	seeds=tests/fuzz/corpus/$name
	bin=$CREDITD_ROOT/$dir/tests/fuzz/$t
	[ -x "$bin" ] || die "no such fuzz target: $t"
	mkdir -p "$work/$t"
	[ -d "$seeds" ] && cp -rp "$seeds/." "$work/$t/"
	log "fuzzing $t for ${seconds}s ($(find "$work/$t" -type f | wc -l) seeds from $seeds)"
	rc=0
	# In $work: with -jobs, libFuzzer writes fuzz-N.log files to the cwd.
	# shellcheck disable=SC2086 # CREDITD_FUZZ_ARGS is a list of options
	(cd "$work" && "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
		-artifact_prefix="$artifacts/$t-" -print_final_stats=1 ${CREDITD_FUZZ_ARGS:-} \
		"$work/$t") >"$work/$t.log" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)
		log "$t: ok (${runs:-?} runs, corpus now $(find "$work/$t" -type f | wc -l) inputs)"
		continue
	fi
	bad=$((bad + 1))
	warn "$t failed (exit $rc); log tail:"
	grep -v '^#[0-9]' "$work/$t.log" | tail -n 60 >&2
	cp "$work/$t.log" "$artifacts/$t.log"
	input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/$t.log" | tail -n 1)
	if [ -n "$input" ]; then
		warn "$t: crash input: $input"
		warn "reproduce: $bin $input"
	else
		warn "$t: no crash input written; full log: $artifacts/$t.log"
	fi
done

if [ "$bad" -ne 0 ]; then
	warn "$bad of ${#targets[@]} fuzz targets failed"
	exit 1
fi
log "all ${#targets[@]} fuzz targets ran ${seconds}s without a finding"
