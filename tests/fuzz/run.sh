#!/usr/bin/env bash
# tests/fuzz/run.sh [seconds] [harness ...] — build the libFuzzer harnesses (clang, ASan+UBSan)
# in build-fuzz/, replay tests/fuzz/regressions/<harness>/, then fuzz each harness for
# `seconds` (default $FUZZ_SECONDS, else 10) from its seed corpus: fixture files from
# tests/fixtures/ plus tests/fuzz/seeds/<harness>/, copied to a temporary directory so the
# repository is never written to. Exits non-zero, naming the harness and the saved crash input,
# if anything crashes, leaks, hits UB, trips an oracle or times out.
#
# Environment:
#   FUZZ_JOBS        harnesses run at once (default: nproc)
#   FUZZ_BUILD_DIR   build directory (default: build-fuzz)
#   FUZZ_CORPUS_DIR  keep the growing corpora here (one dir per harness) instead of a temp dir
#   FUZZ_NO_BUILD=1  use the existing binaries
# Crash inputs and logs go to $FUZZ_BUILD_DIR/fuzz-artifacts/<harness>/ (outside git).
# Reproduce one: build-fuzz/tests/fuzz/<harness> <crash file>
set -euo pipefail

secs=${FUZZ_SECONDS:-10}
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fuzzdir=$root/tests/fuzz
fixtures=$root/tests/fixtures
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
all=(fuzz_jscan fuzz_openai_request fuzz_sse fuzz_anthropic fuzz_gemini fuzz_openai_to_provider
     fuzz_config fuzz_gauth)
harnesses=("$@")
[[ ${#harnesses[@]} -gt 0 ]] || harnesses=("${all[@]}")

for h in "${harnesses[@]}"; do
    [[ " ${all[*]} " == *" $h "* ]] ||
        { echo "run.sh: unknown harness $h (have: ${all[*]})" >&2; exit 2; }
done

if [[ ${FUZZ_NO_BUILD:-0} != 1 ]]; then
    command -v clang >/dev/null ||
        { echo "run.sh: clang not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
    CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON \
        -DSLUICE_TESTS=OFF -DSLUICE_MIMALLOC=OFF >/dev/null
    cmake --build "$build" --target fuzzers -j"$jobs" >/dev/null ||
        { cmake --build "$build" --target fuzzers -j1 2>&1 | tail -40; exit 1; }
fi

# Seed files per harness (globs relative to tests/fixtures; missing ones are skipped).
seed_globs() {
    case $1 in
    fuzz_jscan) echo "*/*/*.json gauth/*.json" ;;
    fuzz_openai_request) echo "*/*/request.json */*/openai_request.json */*/response.json" ;;
    fuzz_sse) echo "*/*/*.sse" ;;
    fuzz_anthropic)
        echo "anthropic/*/upstream_response.json anthropic/*/upstream_stream.sse" \
             "anthropic/*/upstream_error.txt anthropic_ingress/*/request.json" \
             "anthropic_ingress/*/openai_response.json anthropic_ingress/*/openai_stream.sse" ;;
    fuzz_gemini)
        echo "gemini/*/upstream_response.json gemini/*/upstream_stream.sse gemini/*/request.json" \
             "vertex_gemini/*/upstream_response.json vertex_gemini/*/upstream_response.txt" \
             "vertex_gemini/*/upstream_stream.sse vertex_gemini/*/request.json" ;;
    fuzz_openai_to_provider)
        echo "anthropic/*/request.json gemini/*/request.json vertex_gemini/*/request.json" \
             "anthropic_ingress/*/openai_request.json" ;;
    fuzz_config) echo "" ;;
    fuzz_gauth) echo "gauth/*.json" ;;
    esac
}

# libFuzzer takes one -dict: the listed files are concatenated.
dicts_for() {
    case $1 in
    fuzz_sse) echo "sse.dict" ;;
    fuzz_anthropic | fuzz_gemini) echo "json.dict sse.dict" ;;
    fuzz_config) echo "yaml.dict" ;;
    fuzz_gauth) echo "json.dict proxy.dict" ;;
    *) echo "json.dict" ;;
    esac
}

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

prepare_corpus() { # harness dir
    local h=$1 dir=$2 g f globs=()
    mkdir -p "$dir"
    read -r -a globs <<<"$(seed_globs "$h")" # no pathname expansion here: cwd is not fixtures/
    shopt -s nullglob
    for g in "${globs[@]}"; do
        for f in "$fixtures"/$g; do
            local rel=${f#"$fixtures"/}
            cp "$f" "$dir/fx_${rel//\//_}"
        done
    done
    for f in "$fuzzdir/seeds/$h"/*; do
        cp "$f" "$dir/${f##*/}"
    done
    shopt -u nullglob
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
# known-lsan.supp holds leaks inside libfyaml itself (found by fuzz_config, not sluice's to fix);
# without it fuzz_config fails at random whenever the fuzzer writes a '' escape.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$fuzzdir/known-lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() { # harness → exit status; log in $art/log
    local h=$1 bin=$build/tests/fuzz/$1 art=$build/fuzz-artifacts/$1
    mkdir -p "$art"
    local log=$art/log
    : >"$log"
    local regs=()
    shopt -s nullglob
    regs=("$fuzzdir/regressions/$h"/*)
    shopt -u nullglob
    local bad=0 f passed=()
    for f in "${regs[@]}"; do # one at a time, so every failing reproducer is named
        if "$bin" -rss_limit_mb=2048 -timeout=10 "$f" >>"$log" 2>&1; then
            passed+=("$f")
        else
            echo "regression replay failed: $f" >>"$log"
            bad=1
        fi
    done
    local corpus
    if [[ -n ${FUZZ_CORPUS_DIR:-} ]]; then
        corpus=$FUZZ_CORPUS_DIR/$h
    else
        corpus=$work/$h
    fi
    prepare_corpus "$h" "$corpus"
    # fixed reproducers are good seeds; open ones would only stop the run at once
    for f in "${passed[@]}"; do cp "$f" "$corpus/reg_${f##*/}"; done
    local dict=() d
    for d in $(dicts_for "$h"); do cat "$fuzzdir/$d"; done >"$art/dict"
    [[ -s $art/dict ]] && dict=(-dict="$art/dict")
    "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
        -artifact_prefix="$art/" "${dict[@]}" "$corpus" >>"$log" 2>&1 || return
    return $bad
}

declare -A pids=()
failed=()
start_one() {
    local h=$1
    ( run_one "$h" ) &
    pids[$!]=$h
}
reap_one() {
    local pid rc=0
    wait -n -p pid || rc=$?
    local h=${pids[$pid]}
    unset "pids[$pid]"
    local log=$build/fuzz-artifacts/$h/log
    local stats
    stats=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1) || true
    if [[ $rc -ne 0 ]]; then
        failed+=("$h")
        echo "FAIL $h (exit $rc) — log: $log"
        grep -E '==FUZZ ORACLE==|runtime error|ERROR: [A-Z]|SUMMARY: [A-Z]' "$log" |
            head -6 | sed 's/^/    /' || true
        grep -E 'regression replay failed' "$log" | sed 's/^/    /' || true
        grep -E 'Test unit written to' "$log" | tail -1 | sed 's/^.*written to/    crash input:/' ||
            true
    else
        echo "ok   $h (${stats:-0} runs)"
    fi
}

echo "fuzzing ${#harnesses[@]} harness(es) for ${secs}s each, $jobs at a time"
for h in "${harnesses[@]}"; do
    while [[ ${#pids[@]} -ge $jobs ]]; do reap_one; done
    start_one "$h"
done
while [[ ${#pids[@]} -gt 0 ]]; do reap_one; done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all passed"
