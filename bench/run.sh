#!/usr/bin/env bash
# Compares WebSocket servers side by side with `wsk bench`.
#
#   bash bench/run.sh [--quick] [--runs N] [--only NAMES] [--scenarios LIST]
#                     [--build-dir DIR] [--no-build]
#
# Builds wsk in Release, then for each run (default 3), each scenario and each
# server (their order rotates from run to run) starts a fresh server pinned to
# CPU 0, puts the load on CPU 1 with `wsk bench --json`, reads the server's CPU
# time (utime + stime in /proc/PID/stat) before and after, and stops it. At the
# end it prints a table of medians, ratios against wsk and results per server
# CPU-second. Everything stays on 127.0.0.1, every load run is bounded by its
# duration and a timeout, and every server started is stopped on exit.
#
# Servers (a missing one is skipped with a note):
#   wsk    build/wsk serve --echo | --broadcast
#   raw    build/rawecho_bench: plain TCP echo, no WebSocket (scenarios a-c, as
#          `wsk bench --mode raw-echo`): the ceiling
#   lws    bench/lws_echo.c, compiled here when libwebsockets-dev is installed
#   node   bench/node_echo.mjs (ws from tests/peers/node_modules)
#   py     bench/py_echo.py (Debian python3-websockets)
#   uws    bench/uws/uws_echo PORT [--broadcast] [--tls CERT KEY]
#          [--compression off|shared|dedicated], only when you built one there
#          yourself: this script never fetches or builds it. Compression:
#          uWebSockets' shared compressor and decompressor
#   uwsd   the same binary with its dedicated compressor (4 KiB window) and
#          decompressor: scenarios h1 and h2 only
#   wsks   wsk serve --deflate-shared (no context takeover, the thread's
#          compressor): scenarios h1 and h2 only
#   wsku   wsk serve --backend io_uring (completion I/O; falls back to epoll,
#          with a line on stderr, where the kernel refuses io_uring)
#
# Scenarios:
#   a  echo, 100 connections, 16 B text, 1 in flight
#   b  echo, 100 connections, 16 B text, 32 in flight
#   c  echo, 10 connections, 64 KiB binary, 4 in flight
#   d  connect + handshake + close, 50 concurrent
#   e  10,000 idle connections: server RSS per connection
#   f  fanout: 1 sender at 100 msg/s to 1,000 receivers on a broadcast server
#   g1 wss://: a over TLS (every server gets the same P-256 certificate, made
#      here; each connection does a full handshake)
#   g2 wss://: c over TLS
#   g3 wss://: d over TLS
#   g4 wss://: 1,000 idle connections, server RSS per connection
#   h1 permessage-deflate: echo, 100 connections, a 282 B JSON chat message
#      (wsk bench --payload chat --deflate), 1 in flight
#   h2 the same with 1,000 connections: server RSS per connection as well
#
# Options:
#   --quick          one run, short durations (2-3 s)
#   --runs N         runs per scenario and server (default 3)
#   --only NAMES     servers to run, comma-separated
#                    (wsk,raw,lws,node,py,uws,uwsd,wsks,wsku; wsku is
#                    wsk serve --backend io_uring)
#   --scenarios L    scenarios to run, comma-separated (default
#                    a,b,c,d,e,f,g1,g2,g3,g4,h1,h2)
#   --build-dir DIR  where to build (default build-bench)
#   --no-build       use the binaries already in the build directory
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
RUNS=3
QUICK=0
ONLY=wsk,raw,lws,node,py,uws,uwsd,wsks
SCENARIOS=a,b,c,d,e,f,g1,g2,g3,g4,h1,h2
DO_BUILD=1
PY=/usr/bin/python3
NODE=$(command -v node || true)

usage()
{
    sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case $1 in
    --quick) QUICK=1; RUNS=1 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    --only) ONLY=${2:?--only needs server names}; shift ;;
    --scenarios) SCENARIOS=${2:?--scenarios needs a list}; shift ;;
    --build-dir) BUILD=${2:?--build-dir needs a directory}; shift ;;
    --no-build) DO_BUILD=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --runs '$RUNS': expected a positive number" >&2; exit 2; }
BUILD=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)

if ((QUICK)); then
    DUR_ECHO=2 DUR_CONNECT=2 DUR_IDLE=2 DUR_FANOUT=3
else
    DUR_ECHO=5 DUR_CONNECT=5 DUR_IDLE=5 DUR_FANOUT=5
fi
IDLE_CONNS=10000
TLS_IDLE_CONNS=1000
DEFLATE_MANY=1000
FANOUT_RECEIVERS=1000
FANOUT_RATE=100

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsk-bench.XXXXXX")
SERVER_PID=
BENCH_PID=
cleanup()
{
    [[ -n $BENCH_PID ]] && kill -TERM "$BENCH_PID" 2>/dev/null && wait "$BENCH_PID" 2>/dev/null
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note() { echo "run.sh: $*" >&2; }

# ---- build ------------------------------------------------------------------
if ((DO_BUILD)); then
    note "building wsk (Release) in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWSK_WERROR=ON \
        >"$TMP/cmake.log" 2>&1 &&
        cmake --build "$BUILD" --target wsk rawecho_bench >>"$TMP/cmake.log" 2>&1 ||
        { cat "$TMP/cmake.log" >&2; note "build failed"; exit 1; }
fi
WSK=$BUILD/wsk
[[ -x $WSK ]] || { note "$WSK is missing (drop --no-build)"; exit 1; }

if pkg-config --exists libwebsockets 2>/dev/null; then
    if [[ ! -x $BUILD/lws_echo || $ROOT/bench/lws_echo.c -nt $BUILD/lws_echo ]]; then
        # shellcheck disable=SC2046
        cc -O2 -o "$BUILD/lws_echo" "$ROOT/bench/lws_echo.c" \
            $(pkg-config --cflags --libs libwebsockets) 2>"$TMP/lws.log" ||
            { note "lws_echo did not compile:"; cat "$TMP/lws.log" >&2; }
    fi
fi

# ---- servers --------------------------------------------------------------------
# server_cmd NAME MODE: the command line (MODE echo or broadcast), or nothing
# when that server is not available (the reason goes to $TMP/why.NAME).
# FLAVOR: plain, tls (wss:// with $CERT and $KEY) or deflate (permessage-deflate
# accepted). A server that cannot do the flavor gives nothing.
server_cmd()
{
    local name=$1 mode=$2 flavor=${3:-plain} bflag= tflag=
    [[ $mode == broadcast ]] && bflag=--broadcast
    if [[ $flavor != plain ]]; then
        case $name in
        raw | lws) return 0 ;;
        esac
    fi
    [[ ($name == uwsd || $name == wsks) && $flavor != deflate ]] && return 0
    case $name in
    wsk | wsks | wsku)
        [[ $flavor == tls ]] && tflag="--tls-cert $CERT --tls-key $KEY"
        [[ $flavor == deflate ]] && tflag=--deflate
        [[ $name == wsks ]] && tflag="--deflate --deflate-shared"
        [[ $name == wsku ]] && tflag="$tflag --backend io_uring"
        echo "$WSK serve --$mode --listen 127.0.0.1:0 -q $tflag" ;;
    uws | uwsd)
        [[ $flavor == tls ]] && tflag="--tls $CERT $KEY"
        [[ $flavor == deflate ]] && tflag="--compression $([[ $name == uws ]] && echo shared || echo dedicated)"
        if [[ -x $ROOT/bench/uws/uws_echo ]]; then echo "$ROOT/bench/uws/uws_echo 0 $bflag $tflag"; else
            echo "no bench/uws/uws_echo (optional, never built by this script)" >"$TMP/why.$name"; fi ;;
    node)
        [[ $flavor == tls ]] && tflag="--tls $CERT $KEY"
        [[ $flavor == deflate ]] && tflag=--deflate
        if [[ -n $NODE && -f $ROOT/tests/peers/node_modules/ws/wrapper.mjs ]]; then
            echo "$NODE $ROOT/bench/node_echo.mjs 0 $bflag $tflag"
        else
            echo "node or tests/peers/node_modules/ws is missing (scripts/deps.sh bench)" >"$TMP/why.node"
        fi ;;
    py)
        [[ $flavor == tls ]] && tflag="--tls $CERT $KEY"
        if [[ -x $PY ]] && $PY -c 'import websockets' 2>/dev/null; then
            echo "$PY $ROOT/bench/py_echo.py 0 $bflag $tflag"
        else
            echo "/usr/bin/python3 with websockets is missing (scripts/deps.sh bench)" >"$TMP/why.py"
        fi ;;
    raw)
        [[ $mode == echo ]] || return 0
        if [[ -x $BUILD/rawecho_bench ]]; then echo "$BUILD/rawecho_bench 0"; else
            echo "rawecho_bench was not built" >"$TMP/why.raw"; fi ;;
    lws)
        if [[ -x $BUILD/lws_echo ]]; then echo "$BUILD/lws_echo 0 $bflag"; else
            echo "libwebsockets-dev is not installed (scripts/deps.sh bench)" >"$TMP/why.lws"; fi ;;
    esac
}

NCPU=$(nproc)
if ((NCPU >= 2)); then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
else
    PIN_SERVER=()
    PIN_LOAD=()
    note "one CPU only: server and load are not pinned"
fi

# start_server NAME MODE FLAVOR: sets SERVER_PID and PORT, or returns 1.
start_server()
{
    local cmd
    cmd=$(server_cmd "$1" "$2" "$3")
    [[ -n $cmd ]] || return 1
    : >"$TMP/server.out"
    # taskset execs the server, so the PID is the server's own.
    # shellcheck disable=SC2086
    "${PIN_SERVER[@]}" $cmd >"$TMP/server.out" 2>"$TMP/server.err" &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 150; i++)); do
        PORT=$(sed -n 's/.*listening on \(https\{0,1\}:\/\/[^ ]*:\)\{0,1\}\([0-9][0-9]*\).*/\2/p' \
            "$TMP/server.out" | head -1)
        [[ -n $PORT ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    note "$1 ($2) did not start: $(tail -3 "$TMP/server.err" | tr '\n' ' ')"
    stop_server
    return 1
}

stop_server()
{
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- scenarios ----------------------------------------------------------------------
# scenario_args LETTER: wsk bench options; scenario_mode LETTER: echo or broadcast.
scenario_args()
{
    case $1 in
    a) echo "-c 100 -s 16 -w 1 -d $DUR_ECHO" ;;
    b) echo "-c 100 -s 16 -w 32 -d $DUR_ECHO" ;;
    c) echo "-c 10 -s 64k -w 4 --binary -d $DUR_ECHO" ;;
    d) echo "--mode connect -c 50 -d $DUR_CONNECT" ;;
    e) echo "--mode idle -c $IDLE_CONNS -d $DUR_IDLE" ;;
    f) echo "--mode fanout -c $FANOUT_RECEIVERS --rate $FANOUT_RATE -d $DUR_FANOUT" ;;
    g1) echo "-c 100 -s 16 -w 1 -d $DUR_ECHO --cacert $CERT" ;;
    g2) echo "-c 10 -s 64k -w 4 --binary -d $DUR_ECHO --cacert $CERT" ;;
    g3) echo "--mode connect -c 50 -d $DUR_CONNECT --cacert $CERT" ;;
    g4) echo "--mode idle -c $TLS_IDLE_CONNS -d $DUR_IDLE --cacert $CERT" ;;
    h1) echo "-c 100 -w 1 --payload chat --deflate -d $DUR_ECHO" ;;
    h2) echo "-c $DEFLATE_MANY -w 1 --payload chat --deflate -d $DUR_ECHO" ;;
    esac
}
scenario_mode() { [[ $1 == f ]] && echo broadcast || echo echo; }
scenario_flavor()
{
    case $1 in
    g*) echo tls ;;
    h*) echo deflate ;;
    *) echo plain ;;
    esac
}
# Scenarios whose result includes the server's RSS per connection.
is_rss_scenario() { [[ $1 == e || $1 == g4 || $1 == h2 ]]; }

IFS=, read -r -a SERVERS <<<"$ONLY"
IFS=, read -r -a SCEN <<<"$SCENARIOS"
for s in "${SCEN[@]}"; do
    [[ $s =~ ^([a-f]|g[1-4]|h[12])$ ]] || { note "unknown scenario '$s' (a-f, g1-g4, h1, h2)"; exit 2; }
done
for s in "${SERVERS[@]}"; do
    [[ $s =~ ^(wsk|raw|lws|node|py|uws|uwsd|wsks|wsku)$ ]] || { note "unknown server '$s'"; exit 2; }
done

# Enough descriptors for 10,000 connections on each side; servers inherit it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < IDLE_CONNS + 100)) && [[ ,$SCENARIOS, == *,e,* ]]; then
    note "open-file limit $(ulimit -n) is below $((IDLE_CONNS + 100)): scenario e will fail"
fi

# One certificate for every TLS server: ECDSA P-256, what a server set up
# today would use (a handshake signs with it once).
CERT=$TMP/cert.pem
KEY=$TMP/key.pem
if [[ ,$SCENARIOS, == *,g* ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$KEY" -out "$CERT" >"$TMP/openssl.log" 2>&1 ||
        { cat "$TMP/openssl.log" >&2; note "openssl could not make a certificate"; exit 1; }
fi

RESULTS=$BUILD/bench-results/$(date +%Y%m%d-%H%M%S).jsonl
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
note "results in $RESULTS; load average at start: $LOAD_START"

# run_one RUN SCENARIO SERVER
run_one()
{
    local run=$1 sc=$2 srv=$3 mode flavor target extra=
    mode=$(scenario_mode "$sc")
    flavor=$(scenario_flavor "$sc")
    if [[ $srv == raw && ! $sc =~ ^[abc]$ ]]; then return 0; fi
    start_server "$srv" "$mode" "$flavor" || return 0
    target=ws://127.0.0.1:$PORT/
    [[ $flavor == tls ]] && target=wss://127.0.0.1:$PORT/
    if [[ $srv == raw ]]; then
        target=tcp://127.0.0.1:$PORT
        extra="--mode raw-echo"
    fi
    local rss0 rss_max cpu0 cpu1 status dur
    sleep 0.3 # let interpreters finish starting up before the baseline
    rss0=$(rss_kb "$SERVER_PID")
    rss_max=$rss0
    cpu0=$(cpu_ticks "$SERVER_PID")
    dur=$(scenario_args "$sc" | sed 's/.*-d \([0-9]*\).*/\1/')
    # shellcheck disable=SC2046,SC2086
    timeout -k 5 $((dur + 90)) "${PIN_LOAD[@]}" "$WSK" bench "$target" $(scenario_args "$sc") \
        $extra --json -q >"$TMP/bench.json" 2>"$TMP/bench.err" &
    BENCH_PID=$!
    while kill -0 "$BENCH_PID" 2>/dev/null; do
        if is_rss_scenario "$sc"; then
            local r
            r=$(rss_kb "$SERVER_PID")
            ((r > rss_max)) && rss_max=$r
        fi
        sleep 0.2
    done
    wait "$BENCH_PID"
    status=$?
    BENCH_PID=
    cpu1=$(cpu_ticks "$SERVER_PID")
    stop_server
    local json
    json=$(head -1 "$TMP/bench.json")
    [[ $json == \{* ]] || json='{"ok":false,"first_error":"wsk bench gave no result (status '$status')"}'
    $PY - "$json" "$run" "$sc" "$srv" "$status" "$(((cpu1 - cpu0)))" "$CLK_TCK" "$rss0" "$rss_max" \
        "$(tr '\n' ' ' <"$TMP/bench.err" | cut -c1-300)" >>"$RESULTS" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
run, sc, srv, status, ticks, tck, rss0, rssmax, err = sys.argv[2:]
r.update(run=int(run), scenario=sc, server=srv, exit_status=int(status),
         server_cpu_s=int(ticks) / int(tck), rss_before_kb=int(rss0), rss_max_kb=int(rssmax))
if err.strip():
    r["stderr"] = err.strip()
print(json.dumps(r))
EOF
    tail -1 "$RESULTS" | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
key = {"a": "msg_per_s", "b": "msg_per_s", "c": "msg_per_s", "d": "handshakes_per_s",
       "e": "answered", "f": "deliveries_per_s", "g1": "msg_per_s", "g2": "msg_per_s",
       "g3": "handshakes_per_s", "g4": "answered", "h1": "msg_per_s", "h2": "msg_per_s"}[r["scenario"]]
v = r.get(key)
verdict = "ok" if r.get("ok") else "FAILED: %s" % (r.get("reason") or r.get("first_error"))
print("run %d %s %-5s %s %s  server cpu %.2f s  %s" % (r["run"], r["scenario"], r["server"], key,
      "-" if v is None else v, r["server_cpu_s"], verdict))
' >&2
}

SKIPPED=()
for srv in "${SERVERS[@]}"; do
    if [[ -z $(server_cmd "$srv" echo plain) && -z $(server_cmd "$srv" echo deflate) ]]; then
        SKIPPED+=("$srv: $(cat "$TMP/why.$srv" 2>/dev/null)")
    fi
done
for line in "${SKIPPED[@]}"; do note "skipping $line"; done

for ((run = 1; run <= RUNS; run++)); do
    # Rotate the order of the servers from run to run, so none always goes
    # first (warm caches, a quiet machine) or last.
    n=${#SERVERS[@]}
    order=()
    for ((i = 0; i < n; i++)); do order+=("${SERVERS[$(((i + run - 1) % n))]}"); done
    for sc in "${SCEN[@]}"; do
        for srv in "${order[@]}"; do
            [[ -n $(server_cmd "$srv" "$(scenario_mode "$sc")" "$(scenario_flavor "$sc")") ]] || continue
            run_one "$run" "$sc" "$srv"
        done
    done
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
$PY - "$RESULTS" "$LOAD_START" "$LOAD_END" "$NCPU" "$QUICK" "${SKIPPED[@]}" <<'EOF'
import json, statistics, sys

path, load_start, load_end, ncpu, quick = sys.argv[1:6]
skipped = sys.argv[6:]
rows = [json.loads(l) for l in open(path) if l.strip()]

SCEN = {
    "a": ("echo 100 conn, 16 B text, 1 in flight", "msg_per_s", "msg/s"),
    "b": ("echo 100 conn, 16 B text, 32 in flight", "msg_per_s", "msg/s"),
    "c": ("echo 10 conn, 64 KiB binary, 4 in flight", "msg_per_s", "msg/s"),
    "d": ("connect + handshake + close, 50 concurrent", "handshakes_per_s", "hs/s"),
    "e": ("10,000 idle connections", "rss_per_conn_kb", "KiB/conn"),
    "f": ("fanout 1 -> 1,000 receivers at 100 msg/s", "deliveries_per_s", "deliv/s"),
    "g1": ("wss echo 100 conn, 16 B text, 1 in flight", "msg_per_s", "msg/s"),
    "g2": ("wss echo 10 conn, 64 KiB binary, 4 in flight", "msg_per_s", "msg/s"),
    "g3": ("wss connect + TLS + handshake + close, 50 concurrent", "handshakes_per_s", "hs/s"),
    "g4": ("wss 1,000 idle connections", "rss_per_conn_kb", "KiB/conn"),
    "h1": ("deflate echo 100 conn, 282 B JSON chat", "msg_per_s", "msg/s"),
    "h2": ("deflate echo 1,000 conn, 282 B JSON chat", "msg_per_s", "msg/s"),
}
DONE = {"a": "messages", "b": "messages", "c": "messages", "d": "handshakes", "e": None,
        "f": "deliveries", "g1": "messages", "g2": "messages", "g3": "handshakes", "g4": None,
        "h1": "messages", "h2": "messages"}
RSS = ("e", "g4", "h2")
ORDER = ["wsk", "wsks", "wsku", "raw", "lws", "node", "py", "uws", "uwsd"]

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def fmt(v, digits=0):
    if v is None:
        return "-"
    if abs(v) >= 100 or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"

def lat(v):
    if v is None:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} us"

for r in rows:
    if r.get("scenario") in RSS:
        n = r.get("opened") or 0
        r["rss_per_conn_kb"] = (r["rss_max_kb"] - r["rss_before_kb"]) / n if n else None
    if r.get("wire_bytes") is not None and r.get("messages"):
        r["wire_share"] = r["wire_bytes"] / (r["messages"] * r["size"])
    done = DONE[r["scenario"]]
    cpu = r.get("server_cpu_s") or 0
    r["per_cpu_s"] = (r.get(done) or 0) / cpu if done and cpu > 0 else None

print()
print(f"wsk bench/run.sh: {'quick, ' if quick == '1' else ''}medians of "
      f"{max((r['run'] for r in rows), default=0)} run(s); server on CPU 0, load on CPU 1 "
      f"({ncpu} CPUs); load average {load_start} at start, {load_end} at end")
print()
print("| scenario | server | result | vs wsk | p50 | p99 | server CPU s | per server CPU-s | runs ok |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
notes = []
for sc, (title, key, unit) in SCEN.items():
    srows = [r for r in rows if r["scenario"] == sc]
    if not srows:
        continue
    by = {}
    for r in srows:
        by.setdefault(r["server"], []).append(r)
    base = None
    if "wsk" in by:
        ok = [r for r in by["wsk"] if r.get("ok")] or by["wsk"]
        base = med(r.get(key) for r in ok)
    for srv in sorted(by, key=lambda s: ORDER.index(s) if s in ORDER else 99):
        runs = by[srv]
        ok = [r for r in runs if r.get("ok")]
        use = ok or runs
        v = med(r.get(key) for r in use)
        lat_key = "latency_us"
        p50 = med((r.get(lat_key) or {}).get("p50") for r in use)
        p99 = med((r.get(lat_key) or {}).get("p99") for r in use)
        cpu = med(r.get("server_cpu_s") for r in use)
        pcs = med(r.get("per_cpu_s") for r in use)
        ratio = f"{v / base:.2f}x" if v is not None and base else "-"
        if sc in ("e", "g4"):
            res = f"{fmt(v, 1)} {unit}" if v is not None else "-"
        else:
            res = f"{fmt(v)} {unit}" if v is not None else "-"
        if sc == "h2" and use:
            rss = med(r.get("rss_per_conn_kb") for r in use)
            res += f", {fmt(rss, 1)} KiB/conn" if rss is not None else ""
        if sc in ("h1", "h2") and use:
            ws = med(r.get("wire_share") for r in use)
            res += f", {ws * 100:.0f}% on the wire" if ws is not None else ""
        if sc in ("c", "g2") and use:
            mb = med(r.get("mb_per_s") for r in use)
            res += f" ({fmt(mb)} MB/s)"
        if sc == "f":
            miss = sum(r.get("missing") or 0 for r in runs)
            dup = sum(r.get("duplicates") or 0 for r in runs)
            if miss or dup:
                res += f", {miss} missing, {dup} dup"
        idle = sc in ("e", "g4")
        print(f"| {sc}: {title} | {srv} | {res} | {ratio} | {lat(p50) if not idle else '-'} | "
              f"{lat(p99) if not idle else '-'} | {fmt(cpu, 2)} | {fmt(pcs)} | {len(ok)}/{len(runs)} |")
        for r in runs:
            if not r.get("ok"):
                notes.append(f"{sc} {srv} run {r['run']}: {r.get('reason') or r.get('first_error') or 'see ' + path}")
print()
print("result: median over the runs that passed every check (all runs when none did);")
print("vs wsk: result / wsk's result (e, g4: RSS ratio, lower is leaner); latency: p50/p99")
print("of the runs (fanout: send to delivery; connect: TCP connect to 101);")
print("server CPU s: utime+stime of the server process during the whole run, opening and")
print("closing included; per server CPU-s: messages, handshakes or deliveries per second of it.")
print("h1, h2: on the wire = compressed payload bytes the server sent / payload bytes; KiB/conn:")
print("(max server RSS during the run - RSS before) / connections.")
for s in skipped:
    print(f"skipped {s}")
for n in notes:
    print(f"FAILED {n}")
EOF
