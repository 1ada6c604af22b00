#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run: scripts/install-deps.sh && scripts/test.sh).
# Run from anywhere; needs what scripts/install-deps.sh installs.  Stops at the
# first failing stage and prints a summary with each stage's duration.
#
# Stages (in this order; PUSHER_TEST_STAGES="build asan" etc. runs a subset):
#   build  Release-with-debug-info build in build/ with -Werror
#          (-DPUSHER_WERROR=ON); CTest: every unit test (parallel), then every
#          integration test (one at a time: they run real servers and timers).
#   asan   The same build and the same CTest suite (less the tests labelled
#          peers-only and packaging ones, see tests/CMakeLists.txt) with AddressSanitizer
#          + UndefinedBehaviorSanitizer (-DPUSHER_SANITIZE=ON, which uses
#          -fno-sanitize-recover=all) in build-asan/, leak detection on.
#          Integration waits are scaled (PUSHER_TEST_TIMEOUT_MULTIPLIER, 3 by
#          default here) because sanitized programs are slower.
#   tsan   ThreadSanitizer build (-DPUSHER_TSAN=ON) in build-tsan/; runs the
#          tests named *tsan* or labelled tsan (the threaded-mode tests).
#          Passes with a note only while no such test exists.
#   fuzz   clang build of the libFuzzer targets (-DPUSHER_FUZZ=ON, ASan+UBSan)
#          in build-fuzz/; each fuzz_<t> runs for PUSHER_FUZZ_SECONDS (60 by
#          default) over a work copy (build-fuzz/corpus-work/<t>/, outside
#          git) of its seed corpus fuzz/corpus/<t>/.  A crash, leak, timeout
#          or out-of-memory fails the stage; the reproducer is kept in
#          build-fuzz/artifacts/<t>/.
#
# Environment: PUSHER_TEST_STAGES, PUSHER_FUZZ_SECONDS, PUSHER_JOBS (build
# and unit-test parallelism, default nproc), PUSHER_TEST_TIMEOUT_MULTIPLIER,
# PUSHER_TEST_BUILD_DIR (default "build"; the other stages use it with the
# suffixes -asan, -tsan, -fuzz), PUSHER_TEST_EXCLUDE (a CTest -E regex of
# tests to leave out, for local runs only: CI runs everything).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

stages="${PUSHER_TEST_STAGES:-build asan tsan fuzz}"
jobs="${PUSHER_JOBS:-$(nproc)}"
fuzz_seconds="${PUSHER_FUZZ_SECONDS:-60}"
b="${PUSHER_TEST_BUILD_DIR:-build}"
summary=()
current=""
stage_t0=0
suite_t0=$SECONDS

note() { printf '\n==== [test.sh] %s\n' "$*"; }
finish_stage() {
  summary+=("$(printf '%-6s %-4s %4ds  %s' "$current" "$1" $((SECONDS - stage_t0)) "${2:-}")")
  current=""
}
print_summary() {
  echo
  echo "==== [test.sh] summary (total $((SECONDS - suite_t0))s)"
  local l; for l in "${summary[@]}"; do echo "  $l"; done
}
on_exit() {
  local rc=$?
  if [ -n "$current" ]; then
    summary+=("$(printf '%-6s %-4s %4ds  %s' "$current" FAIL $((SECONDS - stage_t0)) "see the output above")")
  fi
  print_summary
  if [ "$rc" -ne 0 ]; then echo "==== [test.sh] FAILED (status $rc)"; else echo "==== [test.sh] OK"; fi
  exit "$rc"
}
trap on_exit EXIT
begin() { current="$1"; stage_t0=$SECONDS; note "stage $1: $2"; }

configure_build() {   # DIR CMAKE_ARGS...
  local dir="$1"; shift
  cmake -S "$root" -B "$root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPUSHER_WERROR=ON "$@"
  cmake --build "$root/$dir" -j "$jobs"
}

# Every test: the non-integration tests in parallel, then the integration
# tests one at a time.
exclude=()
if [ -n "${PUSHER_TEST_EXCLUDE:-}" ]; then exclude=(-E "$PUSHER_TEST_EXCLUDE"); fi
run_ctest_all() {   # DIR [CTEST_ARGS for the integration tests...]
  local dir="$1"; shift
  (cd "$root/$dir" && ctest --output-on-failure --no-tests=ignore -j "$jobs" -LE integration "${exclude[@]}")
  (cd "$root/$dir" && ctest --output-on-failure --no-tests=ignore -L integration "$@" "${exclude[@]}")
}

ctest_count() {   # DIR CTEST_ARGS...: how many tests match
  local dir="$1"; shift
  (cd "$root/$dir" && ctest -N "$@" | sed -n 's/^Total Tests: //p')
}

for stage in $stages; do
  case "$stage" in
  build)
    begin build "-Werror build in $b/, all unit and integration tests"
    configure_build "$b"
    n="$(ctest_count "$b" "${exclude[@]}")"
    [ "$n" -gt 0 ] || { echo "no tests registered in $b/"; exit 1; }
    run_ctest_all "$b"
    finish_stage ok "$n tests"
    ;;
  asan)
    begin asan "ASan+UBSan build in $b-asan/, all unit and integration tests"
    configure_build "$b-asan" -DPUSHER_SANITIZE=ON
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    export PUSHER_TEST_TIMEOUT_MULTIPLIER="${PUSHER_TEST_TIMEOUT_MULTIPLIER:-3}"
    # peers-only tests run third-party peers against each other (no code of
    # ours), and packaging tests check package layout and installation with
    # code the other tests run here: the build stage runs them, this stage
    # need not.
    n="$(ctest_count "$b-asan" -LE 'peers-only|packaging' "${exclude[@]}")"
    run_ctest_all "$b-asan" -LE 'peers-only|packaging'
    unset ASAN_OPTIONS UBSAN_OPTIONS
    finish_stage ok "$n tests"
    ;;
  tsan)
    begin tsan "ThreadSanitizer build in $b-tsan/, the *tsan* tests"
    configure_build "$b-tsan" -DPUSHER_TSAN=ON
    by_name="$(ctest_count "$b-tsan" -R tsan)"
    by_label="$(ctest_count "$b-tsan" -L tsan -E tsan)"
    if [ "$((by_name + by_label))" -eq 0 ]; then
      echo "no test is named *tsan* or labelled tsan yet: nothing to run"
      finish_stage ok "no tsan tests exist yet"
    else
      # ignore_noninstrumented_modules: libuv (not instrumented) closes
      # descriptors with a raw close system call TSan cannot see, so a reused
      # descriptor number looks like a race; races in our code are still
      # reported (docs/lifetime.md).
      export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1}"
      if [ "$by_name" -gt 0 ]; then (cd "$b-tsan" && ctest --output-on-failure -R tsan); fi
      if [ "$by_label" -gt 0 ]; then (cd "$b-tsan" && ctest --output-on-failure -L tsan -E tsan); fi
      unset TSAN_OPTIONS
      finish_stage ok "$((by_name + by_label)) tests"
    fi
    ;;
  fuzz)
    begin fuzz "libFuzzer targets (clang, ASan+UBSan) in $b-fuzz/, ${fuzz_seconds}s each"
    shopt -s nullglob
    srcs=("$root"/fuzz/fuzz_*.c)
    shopt -u nullglob
    if [ "${#srcs[@]}" -eq 0 ]; then
      echo "no fuzz targets (fuzz/fuzz_*.c) exist yet: nothing to run"
      finish_stage ok "no fuzz targets exist yet"
      continue
    fi
    CC=clang configure_build "$b-fuzz" -DPUSHER_FUZZ=ON -DPUSHER_SANITIZE=ON \
      -DPUSHER_TESTS=OFF -DPUSHER_BENCH=OFF
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    ran=()
    for src in "${srcs[@]}"; do
      t="$(basename "$src" .c)"        # fuzz_frame
      short="${t#fuzz_}"               # frame
      bin="$root/$b-fuzz/fuzz/$t"
      [ -x "$bin" ] || { echo "fuzz target $t was not built ($bin)"; exit 1; }
      seed="$root/fuzz/corpus/$short"
      work="$root/$b-fuzz/corpus-work/$short"
      art="$root/$b-fuzz/artifacts/$short"
      rm -rf "$work"; mkdir -p "$work" "$art"
      if [ -d "$seed" ] && [ -n "$(ls -A "$seed")" ]; then
        cp -R "$seed/." "$work/"
        nseed="$(find "$seed" -type f | wc -l)"
      else
        echo "warning: no seed corpus in fuzz/corpus/$short/ for $t"
        nseed=0
      fi
      note "fuzz $t: ${fuzz_seconds}s over $nseed seed inputs"
      # -timeout: one input taking over 10 s is a bug (a hang); -rss_limit_mb
      # bounds memory; new inputs go to the work copy, never into git.
      flog="$root/$b-fuzz/$t.log"
      rc=0
      "$bin" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" "$work" >"$flog" 2>&1 || rc=$?
      tail -n 40 "$flog"
      [ "$rc" -eq 0 ] || { echo "fuzz target $t failed (status $rc); reproducer in $art/, log $flog"; exit 1; }
      ran+=("$t")
    done
    unset ASAN_OPTIONS UBSAN_OPTIONS
    finish_stage ok "${ran[*]}"
    ;;
  *)
    echo "unknown stage '$stage' (stages: build asan tsan fuzz)" >&2
    exit 2
    ;;
  esac
done
