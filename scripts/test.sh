#!/usr/bin/env bash
# Installs what is missing and runs every test:
#   0. clang-format: every C file as .clang-format lays it out
#   1. gcc build, warnings as errors: unit and integration tests (real peers)
#   2. clang build, warnings as errors, without liburing (the io_uring
#      backend's fallback to epoll): unit tests
#   3. ASan+UBSan build: unit and integration tests
#   4. TSan build: the tests labelled "threads" (wsk serve --threads's too)
#   5. each libFuzzer target for WSK_FUZZ_SECONDS (default 40) seconds (a smoke
#      run: 12 targets; long campaigns are scripts/fuzz_campaign.sh)
# Set WSK_FUZZ_SECONDS=0 to skip fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build test

jobs=$(nproc)
fuzz_seconds=${WSK_FUZZ_SECONDS:-40}
status=0

step() { printf '\n=== %s\n' "$*"; }

step "clang-format"
unformatted=()
for f in $(git ls-files '*.c' '*.h' 2>/dev/null); do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done
if ((${#unformatted[@]})); then
    echo "clang-format would change: ${unformatted[*]}"
    status=1
else
    echo "all C sources formatted"
fi

step "gcc build (Release, -Werror)"
cmake -S . -B build/gcc -G Ninja -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Release -DWSK_WERROR=ON >/dev/null
cmake --build build/gcc
ctest --test-dir build/gcc --output-on-failure -j "$jobs" || status=1

step "clang build (-Werror, no liburing: io_uring falls back to epoll): unit tests"
cmake -S . -B build/clang -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DWSK_WERROR=ON \
    -DWSK_URING=OFF >/dev/null
cmake --build build/clang
ctest --test-dir build/clang --output-on-failure -j "$jobs" -L unit || status=1

step "ASan+UBSan build: unit and integration tests"
cmake -S . -B build/asan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DWSK_SANITIZE=ON -DWSK_WERROR=ON >/dev/null
cmake --build build/asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build/asan --output-on-failure -j "$jobs" -LE nosan || status=1

step "TSan build: tests labelled threads"
cmake -S . -B build/tsan -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWSK_SANITIZE=thread -DWSK_WERROR=ON >/dev/null
# Only those tests' programs (an integration test's: wsk): this stage should
# stay near a minute.
mapfile -t tsan_targets < <(ctest --test-dir build/tsan -N -L threads |
    sed -n 's|.*Test *#[0-9]*: [a-z]*/\([a-z_0-9]*\)$|\1|p' |
    sed -E '/^serve_(threads|metrics)_test$/s|.*|wsk|' | sort -u)
cmake --build build/tsan --target "${tsan_targets[@]}"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build/tsan --output-on-failure -j "$jobs" -L threads || status=1

if ((fuzz_seconds > 0)); then
    step "fuzzing: each target ${fuzz_seconds}s"
    cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DWSK_FUZZ=ON -DWSK_BUILD_TESTS=ON -DWSK_WERROR=ON >/dev/null
    cmake --build build/fuzz
    names=()
    for src in fuzz/*_fuzz.c; do names+=("$(basename "$src" .c)"); done
    mkdir -p build/fuzz/artifacts
    # As many at a time as there are cores.
    for ((i = 0; i < ${#names[@]}; i += jobs)); do
        pids=()
        for name in "${names[@]:i:jobs}"; do
            mkdir -p "build/fuzz/corpus-$name"
            (cd build/fuzz && exec ./"$name" -max_total_time="$fuzz_seconds" -timeout=10 \
                -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=artifacts/"$name"- \
                "corpus-$name" "../../fuzz/corpus/$name" >"fuzz-$name.log" 2>&1) &
            pids+=("$!")
        done
        for j in "${!pids[@]}"; do
            name=${names[i + j]}
            if wait "${pids[j]}"; then
                runs=$(grep -o 'number_of_executed_units: *[0-9]*' "build/fuzz/fuzz-$name.log" |
                    grep -o '[0-9]*$' || echo '?')
                echo "fuzz $name: ok, $runs runs"
            else
                echo "fuzz $name: FAILED"
                tail -40 "build/fuzz/fuzz-$name.log"
                status=1
            fi
        done
    done
fi

if ((status == 0)); then echo "ALL TESTS PASSED"; else echo "SOME TESTS FAILED"; fi
exit "$status"
