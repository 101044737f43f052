# Shared helpers for the integration tests. Each *_test.sh sources this file.
#
# CTest runs each test as `bash tests/integration/<name>_test.sh` with WSK_BIN,
# WSK_SOURCE_DIR and WSK_BUILD_DIR set. Run one by hand the same way:
#   WSK_BIN=build/wsk bash tests/integration/static_test.sh
#
# The rules these helpers enforce, because CI is a busy 2-core machine:
# - servers listen on loopback port 0, and readiness is the first stdout line,
#   never a sleep;
# - every wait has a timeout;
# - every process a test starts is stopped when the script exits, however it
#   exits (the EXIT trap below).

set -uo pipefail

WSK_SOURCE_DIR=${WSK_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WSK_BUILD_DIR=${WSK_BUILD_DIR:-$WSK_SOURCE_DIR/build}
WSK_BIN=${WSK_BIN:-$WSK_BUILD_DIR/wsk}
PEERS=$WSK_SOURCE_DIR/tests/peers
# Debian's python3 has python3-websockets; a python3 earlier on PATH may not.
PY=/usr/bin/python3
NODE=$(command -v node || echo /usr/bin/node)
# How long a server may take to print its listening line. Generous, because
# sanitizer builds start slowly on a loaded machine.
READY_TIMEOUT=${READY_TIMEOUT:-15}

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsk-it.XXXXXX")
PASSED=0
FAILED=0
FINISHED=0
BG_PIDS=()       # every background process a test started, stopped at exit
LISTENER_SEQ=0

_cleanup()
{
    local status=$?
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${BG_PIDS[@]}"; do
        _wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if ((FAILED)); then
        local f
        for f in "$TEST_TMP"/listener.*.err; do
            [[ -s $f ]] || continue
            echo "--- last lines of the stderr of: $(cat "${f%.err}.cmd")"
            tail -15 "$f" | sed 's/^/    /'
        done
    fi
    if ((!FINISHED)); then
        echo "FAIL: the script stopped before it finished (status $status)"
        FAILED=$((FAILED + 1))
        echo "$PASSED passed, $FAILED failed"
        status=1
    fi
    rm -rf "$TEST_TMP"
    exit "$status"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -x $WSK_BIN ]]; then
    echo "WSK_BIN '$WSK_BIN' is not an executable"
    FINISHED=1
    echo "0 passed, 1 failed"
    exit 1
fi

# True when the binary was built with AddressSanitizer; memory bounds and
# timings get more slack then.
is_sanitized()
{
    grep -q __asan_init "$WSK_BIN" 2>/dev/null
}

# _wait_gone PID SECONDS: waits until PID has exited. Polls, because bash
# cannot wait for a child with a timeout.
_wait_gone()
{
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        # A zombie has exited; only its status remains to collect.
        [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.05
    done
    return 0
}

track_pid()
{
    BG_PIDS+=("$1")
}

untrack_pid()
{
    local pid kept=()
    for pid in "${BG_PIDS[@]}"; do
        [[ $pid == "$1" ]] || kept+=("$pid")
    done
    BG_PIDS=("${kept[@]}")
}

# start_listener CMD...: starts a server program in the background and waits
# (up to READY_TIMEOUT seconds) for its first stdout line, which must contain
# ws://HOST:PORT/... or wss://HOST:PORT/... (or tcp:// or udp://) Sets LISTENER_PID, LISTENER_PORT,
# LISTENER_URL (the ws:// or wss:// URL from that line), LISTENER_LINE, LISTENER_OUT (a file that collects the
# rest of its stdout) and LISTENER_ERR (its stderr). Returns non-zero, with the
# reason on stdout, if the line does not come.
start_listener()
{
    LISTENER_SEQ=$((LISTENER_SEQ + 1))
    local base=$TEST_TMP/listener.$LISTENER_SEQ
    local fifo=$base.fifo fd line
    LISTENER_OUT=$base.out
    LISTENER_ERR=$base.err
    LISTENER_PID=
    LISTENER_PORT=
    LISTENER_URL=
    LISTENER_LINE=
    mkfifo "$fifo"
    printf '%s\n' "$*" >"$base.cmd"
    # Default SIGINT/SIGQUIT, as at a terminal: bash makes background jobs
    # ignore them, and a signalfd-based server would then never see SIGINT.
    env --default-signal=INT,QUIT "$@" >"$fifo" 2>"$LISTENER_ERR" &
    LISTENER_PID=$!
    track_pid "$LISTENER_PID"
    # Opening for read and write never blocks, even if the program dies before
    # it opens its end.
    exec {fd}<>"$fifo"
    # Read in short slices so that a program that exits at once (a rejected
    # option, say) fails the start now rather than after the whole timeout. A
    # timed-out read keeps what it got of the line in $part.
    local part acc= deadline=$((SECONDS + READY_TIMEOUT))
    # The URL ends at a space, comma or parenthesis: "(WebSocket URL, MODE)".
    # A TLS server's line says https:// and wss://; the first ws:// or wss://
    # URL is the one. Raw listeners' lines say tcp:// or udp://, no path.
    local url_re='((wss?|tcp|udp)://[^ ,()]*:([0-9]+)(/[^ ,()]*)?)'
    while ! IFS= read -r -t 0.2 -u "$fd" part; do
        acc+=$part
        # On a loaded machine bash's timed read has been seen to swallow the
        # newline with a timed-out piece (CI: the whole line in $acc, then
        # no further line for 15 s). Every listening line ends with ')':
        # take a complete one without its newline.
        if [[ $acc == *')' && $acc =~ $url_re ]]; then
            part=
            break
        fi
        if ! kill -0 "$LISTENER_PID" 2>/dev/null || ((SECONDS >= deadline)); then
            exec {fd}<&-
            if kill -0 "$LISTENER_PID" 2>/dev/null; then
                echo "no listening line from '$*' within ${READY_TIMEOUT}s; stderr:"
            else
                wait "$LISTENER_PID"
                echo "'$*' exited with status $? before its listening line; stderr:"
                untrack_pid "$LISTENER_PID"
            fi
            [[ -n $acc ]] && echo "    (stdout so far: '$acc')"
            sed 's/^/    /' "$LISTENER_ERR" | head -20
            return 1
        fi
    done
    line=$acc$part
    LISTENER_LINE=$line
    # Keep draining stdout so that a chatty server never blocks on a full pipe.
    cat <&"$fd" >"$LISTENER_OUT" &
    track_pid "$!"
    exec {fd}<&-
    if [[ $line =~ $url_re ]]; then
        LISTENER_URL=${BASH_REMATCH[1]}
        LISTENER_PORT=${BASH_REMATCH[3]}
        return 0
    fi
    echo "first stdout line of '$*' has no ws://, wss://, tcp:// or udp:// URL: '$line'"
    return 1
}

# start_server ARGS...: runs `wsk serve --listen 127.0.0.1:0 ARGS...` (no
# --listen is added if ARGS has one) and waits for its listening line. Sets
# SERVER_PID, PORT, WS_URL (the ws:// or wss:// URL the server printed), SERVER_LINE,
# SERVER_OUT, SERVER_ERR. On failure it counts a failed check and returns 1.
start_server()
{
    local args=("$@") a listen=(--listen 127.0.0.1:0)
    for a in "${args[@]}"; do
        [[ $a == --listen || $a == --listen=* ]] && listen=()
    done
    if ! start_listener "$WSK_BIN" serve "${listen[@]}" "${args[@]}"; then
        fail "start wsk serve ${listen[*]} ${args[*]}"
        SERVER_PID=$LISTENER_PID
        return 1
    fi
    SERVER_PID=$LISTENER_PID
    PORT=$LISTENER_PORT
    WS_URL=$LISTENER_URL
    SERVER_LINE=$LISTENER_LINE
    SERVER_OUT=$LISTENER_OUT
    SERVER_ERR=$LISTENER_ERR
    echo "started: wsk serve ${listen[*]} ${args[*]} -> $SERVER_LINE"
    return 0
}

# start_bg OUT CMD...: runs CMD in the background with stdout and stderr to
# the file OUT. Sets BG_PID; the process is stopped at exit if still running.
start_bg()
{
    local out=$1
    shift
    "$@" >"$out" 2>&1 &
    BG_PID=$!
    track_pid "$BG_PID"
}

# wait_pid PID SECONDS: waits for a background process to exit by itself and
# sets WAIT_STATUS; kills it and returns 1 if it takes longer.
wait_pid()
{
    local pid=$1
    if ! _wait_gone "$pid" "$2"; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        WAIT_STATUS=$?
        untrack_pid "$pid"
        echo "process $pid still running after $2 s; killed"
        return 1
    fi
    wait "$pid" 2>/dev/null
    WAIT_STATUS=$?
    untrack_pid "$pid"
}

# stop_pid PID [SECONDS]: SIGTERM, wait up to SECONDS (default 5), then
# SIGKILL. Sets STOP_STATUS to the exit status and STOP_MS to how long it took
# in milliseconds. Returns 1 if SIGKILL was needed.
stop_pid()
{
    local pid=$1 limit=${2:-5} rv=0 t0
    t0=$(date +%s%N)
    kill -TERM "$pid" 2>/dev/null
    if ! _wait_gone "$pid" "$limit"; then
        kill -KILL "$pid" 2>/dev/null
        rv=1
    fi
    wait "$pid" 2>/dev/null
    STOP_STATUS=$?
    STOP_MS=$((($(date +%s%N) - t0) / 1000000))
    untrack_pid "$pid"
    return "$rv"
}

# stop_server [PID]: stops the server (default SERVER_PID).
stop_server()
{
    local pid=${1:-${SERVER_PID:-}}
    [[ -n $pid ]] || return 0
    stop_pid "$pid" 10
}

pass()
{
    PASSED=$((PASSED + 1))
    echo "PASS: $1"
}

fail()
{
    FAILED=$((FAILED + 1))
    echo "FAIL: $1"
}

# check NAME CMD...: runs CMD, counts a pass if it exits 0 and a failure
# otherwise, printing its output indented on failure. An external command is
# run under `timeout` (CHECK_TIMEOUT seconds, default 60); a shell function is
# run as is and must bound its own waits. With CHECK_VERBOSE set, the output
# is printed on success too.
check()
{
    local name=$1 out=$TEST_TMP/check.out rv
    shift
    if declare -F "$1" >/dev/null; then
        "$@" >"$out" 2>&1
        rv=$?
    else
        timeout -k 5 "${CHECK_TIMEOUT:-60}" "$@" >"$out" 2>&1
        rv=$?
    fi
    if ((rv == 0)); then
        pass "$name"
        [[ -n ${CHECK_VERBOSE:-} ]] && sed 's/^/    /' "$out" | head -40
    else
        fail "$name (exit $rv)"
        ((rv == 124)) && echo "    (timed out after ${CHECK_TIMEOUT:-60}s)"
        sed 's/^/    /' "$out" | head -40
    fi
    return "$rv"
}

# server_alive NAME: a check that the server process is still running.
server_alive()
{
    check "$1" kill -0 "$SERVER_PID"
}

# finish: prints the summary line and exits non-zero on any failure.
finish()
{
    FINISHED=1
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
    exit $?
}

# A free loopback port nobody listens on: held bound (not listening) by a
# helper for the whole test, so connecting to it is refused and no other test
# can take it meanwhile. Sets DEAD_PORT.
hold_dead_port()
{
    start_listener "$PY" "$PEERS/raw_client.py" hold-port || return 1
    DEAD_PORT=$LISTENER_PORT
}

# wait_for_line FILE REGEX [SECONDS]: waits (default 10 s) until a line of
# FILE matches the extended regex REGEX. The file is written by a background
# process, so this polls.
wait_for_line()
{
    local file=$1 regex=$2 deadline=$((SECONDS + ${3:-10}))
    until grep -Eq -- "$regex" "$file" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "no line matching /$regex/ in $file within ${3:-10}s; it has:"
            sed 's/^/  /' "$file" | tail -10
            return 1
        fi
        sleep 0.05
    done
}

# connect_expect STDIN EXPECTED ARGS...: runs `wsk connect ARGS...` with
# stdin STDIN (both STDIN and EXPECTED go through printf %b) and checks that it
# exits 0 within 20 s and prints exactly EXPECTED on stdout. For use with check.
connect_expect()
{
    local in=$1
    shift
    printf '%b' "$in" >"$TEST_TMP/connect.in"
    connect_expect_stdin "$TEST_TMP/connect.in" "$@"
}

# connect_expect_stdin FILE EXPECTED ARGS...: the same with stdin from FILE.
connect_expect_stdin()
{
    local in=$1 want=$2 rv
    shift 2
    local out=$TEST_TMP/connect.out err=$TEST_TMP/connect.err
    printf '%b' "$want" >"$TEST_TMP/connect.want"
    timeout -k 5 20 "$WSK_BIN" connect "$@" <"$in" >"$out" 2>"$err"
    rv=$?
    echo "wsk connect $* exited $rv"
    ((rv == 124 || rv == 137)) && echo "(it did not exit within 20 s)"
    if ! cmp -s "$out" "$TEST_TMP/connect.want"; then
        echo "stdout differs from what was expected:"
        echo "--- expected ($(stat -c %s "$TEST_TMP/connect.want") bytes)"
        od -c "$TEST_TMP/connect.want" | head -8
        echo "--- got ($(stat -c %s "$out") bytes)"
        od -c "$out" | head -8
        ((rv == 0)) && rv=1
    fi
    if ((rv != 0)); then
        echo "stderr:"
        head -5 "$err"
    fi
    return "$rv"
}

# connect_fails PATTERN ARGS...: runs `wsk connect ARGS...` with empty stdin
# and checks that it exits non-zero within 20 s having printed exactly one line
# on stderr that matches the extended regex PATTERN (case-insensitive).
connect_fails()
{
    local pattern=$1 rv lines
    shift
    local err=$TEST_TMP/connect.err
    timeout -k 5 20 "$WSK_BIN" connect "$@" </dev/null >"$TEST_TMP/connect.out" 2>"$err"
    rv=$?
    lines=$(wc -l <"$err")
    echo "wsk connect $* exited $rv; stderr ($lines lines):"
    sed 's/^/  /' "$err" | head -5
    if ((rv == 0)); then
        echo "expected a non-zero exit"
        return 1
    fi
    if ((rv == 124 || rv == 137)); then
        echo "wsk connect did not exit within 20 s"
        return 1
    fi
    if ((lines != 1)); then
        echo "expected exactly one line on stderr"
        return 1
    fi
    if ! grep -Eqi -- "$pattern" "$err"; then
        echo "stderr does not match /$pattern/i"
        return 1
    fi
}

REDIS_PORT=
REDIS_PID=

# start_redis [PORT]: a redis-server of our own (a free port unless given),
# without persistence; waits (10 s) for PING.
start_redis()
{
    local port=${1:-} i
    if [[ -z $port ]]; then
        hold_dead_port || return 1
        port=$DEAD_PORT
        stop_pid "$LISTENER_PID" # frees the port for redis-server
    fi
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        >"$TEST_TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    track_pid "$REDIS_PID"
    REDIS_PORT=$port
    for ((i = 0; i < 200; i++)); do
        [[ $(redis-cli -p "$port" PING 2>/dev/null) == PONG ]] && return 0
        sleep 0.05
    done
    echo "redis-server on port $port did not answer PING"
    return 1
}
