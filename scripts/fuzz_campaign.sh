#!/usr/bin/env bash
# A fuzzing campaign: runs libFuzzer targets for a while, then grows the
# committed corpus by the inputs that add coverage.
#
#   scripts/fuzz_campaign.sh [--jobs N] [--cpu | --top-up] SECONDS [TARGET...]
#
# Builds the libFuzzer targets (build/fuzz, clang, -DWSK_FUZZ=ON) and runs
# every target in fuzz/ (or the named ones) for SECONDS each, N at a time
# (default 1); with --cpu, until each has used SECONDS of CPU time (user+sys:
# a niced run on a busy machine gets less CPU than wall time), in runs of at
# most 10 minutes; with --top-up, until the target's CPU time over every
# campaign (the ledger, below) reaches SECONDS, so a campaign cut short can be
# continued where it stopped. Each target keeps a working corpus in
# build/fuzz-campaign/corpus-NAME that survives between campaigns; it starts
# from that and fuzz/corpus/NAME, and writes new inputs only to the former.
# Afterwards `-merge=1` copies into fuzz/corpus/NAME the working inputs that
# add coverage to it, so the committed corpus grows by what matters only.
#
# Every run of at most 10 minutes appends "DATE TARGET CPU_S EXECS" to
# fuzz/ledger, which is committed with the corpus: build/ does not outlive a
# checkout, and the CPU time a target has had is part of its record.
#
# Prints per target: executions, final coverage (libFuzzer's cov: and ft:),
# committed corpus size before and after, working corpus size, CPU seconds
# (user+sys; a niced run gets less than its wall time) in this campaign and
# in the ledger, and crashes (crash-, leak-, timeout-, oom- artifacts in
# build/fuzz-campaign/artifacts). A timeout that the input does not repeat
# when replayed alone (a niced fuzzer starved by other work) is moved to
# artifacts/unrepeated/ and not counted; slow-unit- files are not crashes.
# Exits 1 if any target crashed or failed, 2 on bad usage.
#
# For a long run in the background on a shared machine:
#   nice -n 19 scripts/fuzz_campaign.sh 3600 > fuzz-campaign.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
    exit 2
}

jobs=1
cpu_budget=0
top_up=0
while (($#)); do
    case $1 in
    --cpu) cpu_budget=1; shift ;;
    --top-up) cpu_budget=1; top_up=1; shift ;;
    --jobs) jobs=${2:-}; shift 2 || usage ;;
    --jobs=*) jobs=${1#--jobs=}; shift ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
done
(($# >= 1)) || usage
seconds=$1
shift
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || usage
[[ $jobs =~ ^[0-9]+$ ]] && ((jobs > 0)) || usage

all=()
for src in fuzz/*_fuzz.c; do all+=("$(basename "$src" .c)"); done
if (($#)); then
    targets=("$@")
    for t in "${targets[@]}"; do
        [[ -f fuzz/$t.c ]] || { echo "unknown target $t (have: ${all[*]})" >&2; exit 2; }
    done
else
    targets=("${all[@]}")
fi

echo "=== building ${targets[*]}"
cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWSK_FUZZ=ON -DWSK_BUILD_TESTS=ON -DWSK_WERROR=ON >/dev/null
cmake --build build/fuzz -j "$jobs" --target "${targets[@]}"

work=build/fuzz-campaign
mkdir -p "$work/artifacts/unrepeated" "$work/logs"
ledger=fuzz/ledger
touch "$ledger"

# ledger_cpu NAME: CPU seconds NAME has had over every campaign.
ledger_cpu() { awk -v t="$1" '$2 == t { s += $3 } END { printf "%d", s }' "$ledger"; }
fuzz_bin=$PWD/build/fuzz

count_files() { find "$1" -maxdepth 1 -type f | wc -l; }

# Fuzzes one target, then merges; leaves its numbers in $work/logs/NAME.result.
campaign() {
    local name=$1 committed=fuzz/corpus/$1 corpus=$work/corpus-$1 log=$work/logs/$1.log
    local before after rc=0 mrc=0
    mkdir -p "$committed" "$corpus"
    rm -f "$work/artifacts/$name-"*
    before=$(count_files "$committed")
    # CPU seconds (user+sys) as well as wall: a niced run on a busy machine
    # gets less CPU than its wall time. With --cpu, runs follow each other
    # until the CPU time reaches the budget.
    local TIMEFORMAT='%U %S' cpu_total=0 execs_total=0 run_s part part_execs had=0
    ((top_up)) && had=$(ledger_cpu "$name")
    : >"$log"
    while :; do
        run_s=$seconds
        if ((cpu_budget)); then
            ((top_up && had + cpu_total >= seconds)) && break
            run_s=$((seconds - had - cpu_total))
            ((run_s > 600)) && run_s=600
            ((run_s < 10)) && run_s=10
        fi
        { time "$fuzz_bin/$name" -max_total_time="$run_s" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-" \
            "$corpus" "$committed" >"$log.part" 2>&1 || rc=$?; } 2>"$work/logs/$name.time"
        cat "$log.part" >>"$log"
        part=$(awk '{ printf "%d", $1 + $2 }' "$work/logs/$name.time" 2>/dev/null || echo 0)
        cpu_total=$((cpu_total + part))
        part_execs=$(grep -o 'number_of_executed_units: *[0-9]*' "$log.part" | grep -o '[0-9]*$' | tail -1)
        execs_total=$((execs_total + ${part_execs:-0}))
        echo "$(date -u +%FT%TZ) $name $part ${part_execs:-0}" >>"$ledger"
        # A fuzzer starved by other work (niced, or stopped with SIGSTOP
        # while something is measured) may report a timeout that the input
        # does not repeat alone: set aside, not counted, and fuzzing goes on.
        if ((rc == 70)); then # libFuzzer's exit status for a timeout
            local a repeated=0
            for a in "$work/artifacts/$name-timeout-"*; do
                [[ -e $a ]] || continue
                if "$fuzz_bin/$name" -timeout=10 -rss_limit_mb=2048 "$a" >/dev/null 2>&1; then
                    mv "$a" "$work/artifacts/unrepeated/"
                else
                    repeated=1
                fi
            done
            ((repeated)) || rc=0
        fi
        ((cpu_budget && rc == 0 && had + cpu_total < seconds)) || break
    done
    rm -f "$log.part" "$work/artifacts/$name-slow-unit-"*
    # Only inputs that add coverage to the committed corpus go into it.
    "$fuzz_bin/$name" -merge=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/artifacts/$name-" \
        "$committed" "$corpus" >"$work/logs/$name.merge.log" 2>&1 || mrc=$?
    after=$(count_files "$committed")
    local execs=$execs_total cov ft crashes cpu=$cpu_total
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    crashes=$(find "$work/artifacts" -maxdepth 1 -type f -name "$name-*" | wc -l)
    printf '%s %s %s %s %s %s %s %s %s %s %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
        "$before" "$after" "$(count_files "$corpus")" "$crashes" "$rc/$mrc" "${cpu:-?}" \
        "$(ledger_cpu "$name")" >"$work/logs/$name.result"
}

echo "=== fuzzing ${#targets[@]} target(s) for ${seconds}s$( ((cpu_budget)) && echo " of CPU") each, $jobs at a time"
running=0
for name in "${targets[@]}"; do
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
    echo "start $name"
    campaign "$name" &
    running=$((running + 1))
done
wait || true

echo
status=0
printf '%-20s %12s %7s %8s %17s %8s %8s %8s %8s  %s\n' target execs cov ft "corpus before>after" working \
    crashes "cpu s" "ledger s" status
for name in "${targets[@]}"; do
    result=$work/logs/$name.result
    if [[ ! -f $result ]]; then
        printf '%-20s  no result (see %s)\n' "$name" "$work/logs/$name.log"
        status=1
        continue
    fi
    read -r _ execs cov ft before after working crashes rcs cpu total <"$result"
    verdict=ok
    if ((crashes > 0)) || [[ $rcs != 0/0 ]]; then
        verdict="FAILED (fuzz/merge exit $rcs)"
        status=1
    fi
    printf '%-20s %12s %7s %8s %8s > %-8s %8s %8s %8s %8s  %s\n' "$name" "$execs" "$cov" "$ft" \
        "$before" "$after" "$working" "$crashes" "$cpu" "$total" "$verdict"
    rm -f "$result"
done
if ((status)); then
    echo
    for name in "${targets[@]}"; do
        for a in "$work/artifacts/$name-"*; do
            [[ -e $a ]] || continue
            echo "artifact: $a (replay: build/fuzz/$name $a)"
        done
    done
    echo "logs: $work/logs/"
fi
exit "$status"
