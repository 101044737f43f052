#!/usr/bin/env bash
# wsk serve --exec (what websocketd is used for): a program per connection,
# lines both ways, --binary, the CGI environment (and no HTTP_PROXY from a
# client's Proxy header), exit codes as close codes, EOF then SIGTERM then
# SIGKILL after the client leaves, --max-procs, no fd leaks and no zombies
# over 1,000 connections, a client that does not read, SIGTERM.
source "$(dirname "$0")/lib.sh"

EX=("$PY" "$PEERS/exec_peer.py")

# fds SERVER_PID: the number of open fds of the server.
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# zombies PID: children of PID that are zombies.
zombies() { ps --ppid "$1" -o stat= 2>/dev/null | grep -c '^Z'; }

echo "== lines both ways, the environment, exit codes"
if start_server --exec 'echo "addr=$REMOTE_ADDR port=$REMOTE_PORT path=$PATH_INFO q=$QUERY_STRING uri=$REQUEST_URI ua=$HTTP_USER_AGENT proxy=${HTTP_PROXY:-none}"
        while read -r l; do echo "got: $l"; [ "$l" = quit ] && exit 3; done'; then
    BASE=${WS_URL%/}
    check "each line of the program is a message, each message a line of its stdin" bash -c '
        out=$("$0" "$1" talk "$2/chat/room?x=1&y=%20" "hello" "wörld" "quit"); echo "$out"
        grep -Eqx "text: addr=127\.0\.0\.1 port=[0-9]+ path=/chat/room q=x=1&y=%20 uri=/chat/room\?x=1&y=%20 ua=exec-peer/1 proxy=none" <<<"$out" &&
        grep -qx "text: got: hello" <<<"$out" && grep -qx "text: got: wörld" <<<"$out" &&
        grep -qx "text: got: quit" <<<"$out"' "${EX[0]}" "${EX[1]}" "$BASE"
    check "a program that exits 3 closes the connection with 1011 and says why" bash -c '
        "$0" "$1" talk "$2/" quit | tee /dev/stderr | grep -qx "close: 1011 exited with status 3"' \
        "${EX[0]}" "${EX[1]}" "$BASE"
    stop_server
    check "SIGTERM: exit 0" test "$STOP_STATUS" -eq 0
fi
if start_server --exec 'echo one; printf "two\r\nno newline"'; then
    check "exit 0 closes with 1000, after the last line (CR dropped, no newline needed)" bash -c '
        out=$("$0" "$1" quiet "$2"); echo "$out"
        [[ $out == $(printf "text: one\ntext: two\ntext: no newline\nclose: 1000 ") ]]' \
        "${EX[0]}" "${EX[1]}" "$WS_URL"
    stop_server
fi
if start_server --exec 'printf "\377\376\n"; echo to-stderr >&2'; then
    check "a line that is not UTF-8 is a binary message" bash -c '
        "$0" "$1" quiet "$2" | grep -qx "binary: fffe"' "${EX[0]}" "${EX[1]}" "$WS_URL"
    check "the program's stderr is the server's" wait_for_line "$SERVER_ERR" '^to-stderr$' 10
    stop_server
fi

echo "== --binary"
if start_server --exec cat --binary; then
    check "--binary: 1 MiB of random bytes through cat come back identical" \
        "${EX[@]}" bytes "$WS_URL" 1048576
    stop_server
fi

echo "== the client leaves: EOF, then SIGTERM, then SIGKILL"
PIDFILE=$TEST_TMP/prog.pid
if start_server --exec-grace 0.3 --exec "echo \$\$ >$PIDFILE; trap '' TERM; echo ready; while :; do sleep 0.1; done"; then
    check "a program that ignores EOF and SIGTERM gets SIGKILL, within 2 s of the close" bash -c '
        "$0" "$1" quiet "$2" & p=$!
        for _ in $(seq 100); do [[ -s $3 ]] && break; sleep 0.05; done
        prog=$(cat "$3"); echo "program $prog"; kill -0 "$prog" || exit 1
        kill $p; wait $p 2>/dev/null
        for _ in $(seq 60); do kill -0 "$prog" 2>/dev/null || { echo gone; exit 0; }; sleep 0.05; done
        echo "still running"; exit 1' "${EX[0]}" "${EX[1]}" "$WS_URL" "$PIDFILE"
    check "the server logged the SIGKILL" wait_for_line "$SERVER_ERR" 'ignored SIGTERM; SIGKILL' 10
    check "no zombie is left" bash -c 'sleep 0.3; z=$(ps --ppid "$0" -o stat= | grep -c "^Z"); echo "$z zombies"; ((z == 0))' "$SERVER_PID"
    stop_server
fi

echo "== --max-procs"
if start_server --max-procs 2 --exec 'echo hi; cat'; then
    check "a third connection while two programs run is closed with 1013" bash -c '
        out=$("$0" "$1" hold "$2" 3); echo "$out"
        [[ $(grep -c "^open" <<<"$out") == 2 && $(grep -c "^close 1013" <<<"$out") == 1 ]]' \
        "${EX[0]}" "${EX[1]}" "$WS_URL"
    stop_server
fi

echo "== 1,000 connections in sequence: no fd leak, no zombie, nothing inherited"
if start_server --exec 'ls -l /proc/self/fd | grep -Ec "socket:|anon_inode:"'; then
    check "the program inherits none of the server's sockets, epoll or signalfd" bash -c '
        "$0" "$1" quiet "$2" | tee /dev/stderr | grep -qx "text: 0"' "${EX[0]}" "${EX[1]}" "$WS_URL"
    stop_server
fi
# One process per connection (a shell builtin): process creation costs
# several ms here, and the test is about what is left behind.
if start_server --exec 'echo hi'; then
    before=$(fds "$SERVER_PID")
    CHECK_TIMEOUT=300 CHECK_VERBOSE=1 check "1,000 connections, each with its program" \
        "${EX[@]}" seq "$WS_URL" 1000
    check "the server's fds are back to where they were ($before)" bash -c '
        for _ in $(seq 100); do n=$(find /proc/$0/fd -mindepth 1 -maxdepth 1 | wc -l)
            ((n <= $1)) && { echo "$n fds"; exit 0; }; sleep 0.05; done; echo "$n fds, were $1"; exit 1' \
        "$SERVER_PID" "$before"
    check "no zombie children" bash -c 'z=$(ps --ppid "$0" -o stat= | grep -c "^Z"); echo "$z zombies"; ((z == 0))' "$SERVER_PID"
    stop_server
    check "SIGTERM: exit 0" test "$STOP_STATUS" -eq 0
fi

echo "== a client that does not read a chatty program"
if start_server --max-queue 256k --exec 'exec yes "a line of output from a program that never stops"'; then
    start_bg "$TEST_TMP/noread.out" "${EX[@]}" noread "$WS_URL" 3
    check "connected" wait_for_line "$TEST_TMP/noread.out" '^connected' 20
    check "after 3 s the server holds a bounded amount (RSS < 64 MiB)" bash -c '
        for _ in $(seq 100); do grep -q done "$1" && break; sleep 0.05; done
        rss=$(awk "/VmRSS/ {print \$2}" /proc/$0/status); echo "server RSS ${rss} kB"; ((rss < 65536))' \
        "$SERVER_PID" "$TEST_TMP/noread.out"
    stop_server
    check "SIGTERM with a program blocked on output: exit 0" test "$STOP_STATUS" -eq 0
fi

echo "== SIGTERM with programs running"
if start_server --exec 'echo hi; cat'; then
    start_bg "$TEST_TMP/hold.out" "${EX[@]}" talk "$WS_URL"
    check "a client is connected" wait_for_line "$TEST_TMP/hold.out" '^text: hi' 20
    stop_server
    check "exit 0, within the drain" test "$STOP_STATUS" -eq 0
    check "the client saw 1001" bash -c 'for _ in $(seq 100); do grep -q "^close: 1001" "$0" && exit 0; sleep 0.05; done; cat "$0"; exit 1' \
        "$TEST_TMP/hold.out"
fi

echo "== options"
check "--exec with --echo is refused" bash -c '
    err=$("$0" serve --exec cat --echo 2>&1); rv=$?; echo "$rv: $err"; ((rv == 2)) && [[ $err == *"exclude each other"* ]]' "$WSK_BIN"
check "--exec with a tcp:// listener is refused" bash -c '
    err=$("$0" serve --exec cat --listen tcp://127.0.0.1:0 2>&1); rv=$?; echo "$rv: $err"; ((rv == 2))' "$WSK_BIN"
check "--binary without --exec is refused" bash -c '
    err=$("$0" serve --binary 2>&1); rv=$?; echo "$rv: $err"; ((rv == 2))' "$WSK_BIN"
check "--help documents --exec, --max-procs and --exec-grace" bash -c '
    h=$("$0" serve --help); [[ $h == *"--exec COMMAND"* && $h == *"--max-procs N"* && $h == *"--exec-grace"* ]]' "$WSK_BIN"

finish
