#!/usr/bin/env bash
# wsk http against tests/peers/http_server.py (Python stdlib), plain and over
# TLS with a certificate made here by the openssl command:
# - bodies framed by Content-Length, chunked (extensions, trailer) and the
#   end of the connection; binary bodies byte-exact (sha256), also through
#   a slow reader (back-pressure, bounded memory);
# - POST with --data TEXT, @FILE and @- (the server echoes what it got),
#   -X, custom headers, -i, -I; 404 exits 22;
# - -L: a chain of relative Locations, a loop, too many, 303 and 302 after
#   a POST become GET, 307 keeps it, http -> https;
# - failures in one stderr line: a body cut short, a malformed answer,
#   conflicting framing, a head too big, --max-time, a refused connection,
#   a name that does not resolve, an untrusted certificate;
# - https with --cacert and --insecure, and failing without;
# - the same bytes as curl, when curl is installed.
source "$(dirname "$0")/lib.sh"

CHECK_TIMEOUT=30
ROOT=$TEST_TMP/root
mkdir -p "$ROOT"
printf 'plain text\nsecond line\n' >"$ROOT/text.txt"
head -c 1500000 /dev/urandom >"$ROOT/random.bin"
# Every byte value, CR and LF among them, at the edges of a file.
/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 64)' >"$ROOT/bytes.bin"

if ! start_listener "$PY" "$PEERS/http_server.py" --root "$ROOT"; then
    fail "start http_server.py"
    finish
fi
BASE=http://127.0.0.1:$LISTENER_PORT

OUT=$TEST_TMP/http.out
ERR=$TEST_TMP/http.err

# http_expect EXPECTED_FILE ARGS...: wsk http ARGS exits 0 within 20 s,
# writes exactly EXPECTED_FILE to stdout and nothing to stderr.
http_expect()
{
    local want=$1 rv
    shift
    timeout -k 5 20 "$WSK_BIN" http "$@" >"$OUT" 2>"$ERR"
    rv=$?
    echo "wsk http $* exited $rv"
    if ((rv != 0)); then
        sed 's/^/  stderr: /' "$ERR" | head -5
        return 1
    fi
    if ! cmp "$want" "$OUT"; then
        echo "stdout differs: $(stat -c %s "$OUT") bytes, expected $(stat -c %s "$want")"
        od -c "$OUT" | head -5
        return 1
    fi
    if [[ -s $ERR ]]; then
        echo "expected nothing on stderr:"
        sed 's/^/  /' "$ERR" | head -5
        return 1
    fi
}

# http_text TEXT ARGS...: http_expect with the expected stdout given as text
# (through printf %b).
http_text()
{
    printf '%b' "$1" >"$TEST_TMP/want"
    shift
    http_expect "$TEST_TMP/want" "$@"
}

# http_fails STATUS PATTERN ARGS...: wsk http ARGS exits STATUS within 20 s
# with exactly one stderr line, matching the extended regex PATTERN (for a
# usage error, status 2, the line that points to --help may follow).
http_fails()
{
    local want=$1 pattern=$2 rv lines
    shift 2
    timeout -k 5 20 "$WSK_BIN" http "$@" </dev/null >"$OUT" 2>"$ERR"
    rv=$?
    ((want == 2)) && sed -i "/^Try 'wsk http --help'/d" "$ERR"
    lines=$(wc -l <"$ERR")
    echo "wsk http $* exited $rv; stderr ($lines lines):"
    sed 's/^/  /' "$ERR" | head -5
    if ((rv != want)); then
        echo "expected exit status $want"
        return 1
    fi
    if ((lines != 1)); then
        echo "expected exactly one line on stderr"
        return 1
    fi
    grep -Eq -- "$pattern" "$ERR" || {
        echo "stderr does not match /$pattern/"
        return 1
    }
}

sha()
{
    sha256sum | cut -d' ' -f1
}

echo "== bodies"
check "GET, Content-Length" http_expect "$ROOT/text.txt" "$BASE/file/text.txt"
check "GET, chunked with extensions and a trailer" \
    http_text 'Hello, chunked world!\n' "$BASE/chunked"
check "GET, read until the server closes" \
    http_text 'read until the server closes\nline two\n' "$BASE/eof"
check "binary, Content-Length: byte-exact" http_expect "$ROOT/random.bin" "$BASE/file/random.bin"
check "binary, chunked in 1 to 40000-byte chunks: byte-exact" \
    http_expect "$ROOT/random.bin" "$BASE/chunked-file/random.bin"
check "every byte value" http_expect "$ROOT/bytes.bin" "$BASE/file/bytes.bin"
check "sha256 through a pipe" bash -c '
    [[ $("$1" http "$2" | sha256sum) == $(sha256sum <"$3") ]]' _ \
    "$WSK_BIN" "$BASE/chunked-file/random.bin" "$ROOT/random.bin"

# A reader that starts late and reads slowly: the download waits for it
# (wsk_tcp_pause) instead of piling up in memory.
head -c 40000000 /dev/zero >"$ROOT/zeros.bin"
slow_reader()
{
    local rss
    rss=$( { /usr/bin/time -f '%M' "$WSK_BIN" http "$BASE/file/zeros.bin" 2>&3 |
        (sleep 1; /usr/bin/python3 -c '
import sys, time
n = 0
while True:
    b = sys.stdin.buffer.read(65536)
    if not b:
        break
    n += len(b)
    if n < 4000000:
        time.sleep(0.002)
print(n)' >"$TEST_TMP/slow.count"); } 3>&1 >/dev/null)
    echo "read $(cat "$TEST_TMP/slow.count") bytes; max RSS ${rss} KiB"
    [[ $(cat "$TEST_TMP/slow.count") == 40000000 ]] || return 1
    # 40 MB went through; the process never held more than a small part.
    local limit=30000
    is_sanitized && limit=200000
    ((rss < limit))
}
if [[ -x /usr/bin/time ]]; then
    check "a slow reader: all 40 MB, memory bounded" slow_reader
else
    echo "skip: /usr/bin/time is missing (memory bound not checked)"
fi
check "a reader that goes away: wsk http ends, one stderr line" bash -c '
    "$1" http "$2" 2>"$3" | head -c 10 >/dev/null
    [[ ${PIPESTATUS[0]} == 1 ]] && (($(wc -l <"$3") == 1)) && grep -q "stdout" "$3"' _ \
    "$WSK_BIN" "$BASE/file/random.bin" "$TEST_TMP/epipe.err"

echo "== requests"
check "POST --data TEXT: the server got it" http_text 'hello world' -d 'hello world' "$BASE/echo"
check "-i: POST, Content-Length sent" bash -c '
    "$1" http -i -d "hello world" "$2" >"$3" &&
    head -1 "$3" | grep -q "^HTTP/1.1 200 OK" && grep -q "^X-Echo-Method: POST" "$3" &&
    grep -q "^X-Echo-Length: 11" "$3" && grep -qx $'"'"'\r'"'"' "$3" &&
    [[ $(tail -c 11 "$3") == "hello world" ]]' _ "$WSK_BIN" "$BASE/echo" "$TEST_TMP/i.out"
check "POST --data @FILE (1.5 MB, streamed from the file): byte-exact" \
    http_expect "$ROOT/random.bin" --data @"$ROOT/random.bin" "$BASE/echo"
check "PUT --data @- from stdin" bash -c '
    printf "from stdin\n" | "$1" http -X PUT --data @- -i "$2" >"$3" &&
    grep -q "^X-Echo-Method: PUT" "$3" && [[ $(tail -c 11 "$3") == "from stdin" ]]' _ \
    "$WSK_BIN" "$BASE/echo" "$TEST_TMP/put.out"
check "an empty body: Content-Length: 0" bash -c '
    "$1" http -i -d "" "$2" | grep -q "^X-Echo-Length: 0"' _ "$WSK_BIN" "$BASE/echo"
check "-X DELETE, no body" bash -c '
    "$1" http -i -X DELETE "$2" | grep -q "^X-Echo-Method: DELETE"' _ "$WSK_BIN" "$BASE/echo"
check "custom headers reach the server" bash -c '
    "$1" http -H "X-One: 1" -H "X-Two:  two words " -A "agent/7" "$2" >"$3" &&
    grep -qx "X-One: 1" "$3" && grep -q "^X-Two: two words" "$3" &&
    grep -qx "User-Agent: agent/7" "$3" && grep -qx "Connection: close" "$3" &&
    grep -qx "Host: 127.0.0.1:$4" "$3"' _ "$WSK_BIN" "$BASE/headers" "$TEST_TMP/h.out" \
    "$LISTENER_PORT"
check "-H Host replaces wsk's own" bash -c '
    "$1" http -H "Host: virtual.example" "$2" | grep -qx "Host: virtual.example"' _ \
    "$WSK_BIN" "$BASE/headers"
check "-I: HEAD, the head only" bash -c '
    "$1" http -I "$2" >"$3" && head -1 "$3" | grep -q "^HTTP/1.1 200" &&
    grep -q "^Content-Length: 23" "$3" && [[ $(tail -c 4 "$3" | od -An -tx1) == " 0d 0a 0d 0a" ]]' _ \
    "$WSK_BIN" "$BASE/file/text.txt" "$TEST_TMP/head.out"
check "404: exit 22, the body still written, one stderr line" bash -c '
    "$1" http "$2" >"$3" 2>"$4"; [[ $? == 22 ]] && [[ $(cat "$3") == "status 404" ]] &&
    (($(wc -l <"$4") == 1)) && grep -q "404" "$4"' _ "$WSK_BIN" "$BASE/status/404" \
    "$TEST_TMP/404.out" "$TEST_TMP/404.err"
check "503: exit 22" http_fails 22 "answered 503" "$BASE/status/503"
check "204: exit 0, no body" http_text '' "$BASE/status/204"
check "100 and 103 before the answer are passed over" http_text 'final\n' "$BASE/interim"
check "-i shows them" bash -c '
    "$1" http -i "$2" | grep -c "^HTTP/1.1 1[0-9][0-9] " | grep -qx 2' _ "$WSK_BIN" "$BASE/interim"
check "a header with a line break is refused" \
    http_fails 2 "line break or control character" -H $'X-A: 1\r\nX-B: 2' "$BASE/echo"
check "a Content-Length header is refused" \
    http_fails 2 "framing" -H "Content-Length: 5" "$BASE/echo"
check "a non-http URL is refused" http_fails 2 "not an http:// or https:// URL" "ws://127.0.0.1/"

echo "== redirects"
check "without -L: the 302 itself, exit 0" bash -c '
    "$1" http -i "$2" | grep -qx $'"'"'Location: 2\r'"'"'' _ "$WSK_BIN" "$BASE/chain/3"
check "-L: three relative Locations" http_text 'end of chain\n' -L "$BASE/chain/3"
check "-L -i: every head, then the body" bash -c '
    "$1" http -L -i "$2" >"$3" && (($(grep -c "^HTTP/1.1 302" "$3") == 2)) &&
    (($(grep -c "^HTTP/1.1 200" "$3") == 1)) && [[ $(tail -1 "$3") == "end of chain" ]]' _ \
    "$WSK_BIN" "$BASE/chain/2" "$TEST_TMP/chain.out"
check "-L: too many (6 > 5)" http_fails 1 "too many redirects" -L "$BASE/chain/6"
check "-L --max-redirs 6: enough" http_text 'end of chain\n' -L --max-redirs 6 "$BASE/chain/6"
check "-L: a loop (/loop/a -> /loop/b -> ../loop/a)" \
    http_fails 1 "redirect loop: back to GET $BASE/loop/a" -L "$BASE/loop/a"
check "-L: 303 after POST continues as GET, without the body" bash -c '
    "$1" http -L -i -d data "$2" >"$3" && grep -q "^X-Echo-Method: GET" "$3" &&
    grep -q "^X-Echo-Length: 0" "$3"' _ "$WSK_BIN" "$BASE/see-other" "$TEST_TMP/303.out"
check "-L: 302 after POST continues as GET" bash -c '
    "$1" http -L -i -d data "$2" | grep -q "^X-Echo-Method: GET"' _ "$WSK_BIN" "$BASE/moved"
check "-L: 307 repeats the POST and its body" bash -c '
    "$1" http -L -i -d data "$2" >"$3" && grep -q "^X-Echo-Method: POST" "$3" &&
    [[ $(tail -c 4 "$3") == data ]]' _ "$WSK_BIN" "$BASE/temporary" "$TEST_TMP/307.out"
check "-L: 307 repeats a file body" \
    http_expect "$ROOT/random.bin" -L --data @"$ROOT/random.bin" "$BASE/temporary"
check "-L: a Location that is not http(s)" \
    http_fails 1 "not an http:// or https:// URL" -L "$BASE/to?ftp://127.0.0.1/x"

echo "== failures"
check "a body cut short (Content-Length)" \
    http_fails 1 "cut short: the connection closed after 100 bytes of 1000" "$BASE/truncated"
check "a chunked body cut short" http_fails 1 "cut short.*chunked" "$BASE/truncated-chunked"
check "not an HTTP answer" http_fails 1 "malformed answer.*not an HTTP/1.x response head" \
    "$BASE/garbage"
check "Content-Length and Transfer-Encoding together" \
    http_fails 1 "malformed answer.*conflicting" "$BASE/conflict"
check "a head over 64 KiB" http_fails 1 "head is over 64 KiB" "$BASE/big-head"
max_time()
{
    local t0=$SECONDS
    http_fails 1 "timed out after 1.0 s \(--max-time\) reading the body" --max-time 1 \
        "$BASE/slow" || return 1
    ((SECONDS - t0 <= 5))
}
check "--max-time 1 against a server that stalls" max_time
if hold_dead_port; then
    check "a refused connection" http_fails 1 "cannot connect to 127.0.0.1:$DEAD_PORT: .*refused" \
        "http://127.0.0.1:$DEAD_PORT/"
else
    fail "hold a dead port"
fi
check "a name that does not resolve" \
    http_fails 1 "cannot resolve no-such-host.invalid|no-such-host.invalid.*no answer" \
    --connect-timeout 15 "http://no-such-host.invalid/"

echo "== https"
PKI=$TEST_TMP/pki
mkdir -p "$PKI"
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=wsk http test CA" -keyout "$PKI/ca.key" -out "$PKI/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    >/dev/null 2>&1 &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$PKI/srv.key" -out "$PKI/srv.csr" >/dev/null 2>&1 &&
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' \
        >"$PKI/srv.ext" &&
    openssl x509 -req -in "$PKI/srv.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
        -CAcreateserial -days 2 -extfile "$PKI/srv.ext" -out "$PKI/srv.pem" >/dev/null 2>&1 &&
    start_listener "$PY" "$PEERS/http_server.py" --root "$ROOT" \
        --tls-cert "$PKI/srv.pem" --tls-key "$PKI/srv.key"; then
    TLS_PORT=$LISTENER_PORT
    HTTPS=https://localhost:$TLS_PORT
    check "--cacert: verified by name, byte-exact" \
        http_expect "$ROOT/random.bin" --cacert "$PKI/ca.pem" "$HTTPS/file/random.bin"
    check "--cacert: chunked" http_text 'Hello, chunked world!\n' \
        --cacert "$PKI/ca.pem" "$HTTPS/chunked"
    check "--cacert: POST @FILE" http_expect "$ROOT/random.bin" --cacert "$PKI/ca.pem" \
        --data @"$ROOT/random.bin" "$HTTPS/echo"
    check "without --cacert: refused, with a hint" http_fails 1 \
        "TLS with localhost:$TLS_PORT failed: certificate verify failed.*--cacert.*--insecure" \
        "$HTTPS/file/text.txt"
    check "--insecure: not verified, works" bash -c '
        "$1" http -q --insecure "$2" | cmp - "$3"' _ "$WSK_BIN" "$HTTPS/file/text.txt" \
        "$ROOT/text.txt"
    check "an address the certificate is not for" http_fails 1 \
        "TLS with 127.0.0.1:$TLS_PORT failed: IP address mismatch" \
        --cacert "$PKI/ca.pem" "https://127.0.0.1:$TLS_PORT/file/text.txt"
    check "an unreadable --cacert" http_fails 1 "cannot read CA file" \
        --cacert "$PKI/nope.pem" "$HTTPS/file/text.txt"
    check "-L: http -> https" http_text 'end of chain\n' -L --cacert "$PKI/ca.pem" \
        "$BASE/to?$HTTPS/chain/1"
else
    fail "make a certificate and start http_server.py with TLS"
fi

echo "== curl"
if command -v curl >/dev/null; then
    curl_same()
    {
        local a=$TEST_TMP/curl.out b=$TEST_TMP/wsk.out
        curl -s "$@" >"$a" || return 1
        "$WSK_BIN" http "$@" >"$b" || return 1
        cmp "$a" "$b"
    }
    check "the same bytes as curl: chunked file" curl_same "$BASE/chunked-file/random.bin"
    check "the same bytes as curl: POST --data-binary @FILE, -L 307" \
        curl_same -L --data-binary @"$ROOT/bytes.bin" "$BASE/temporary"
    check "the same bytes as curl: https --cacert" curl_same --cacert "$PKI/ca.pem" \
        "$HTTPS/file/bytes.bin"
else
    echo "skip: curl is not installed"
fi

check "--help names every option" bash -c '
    out=$("$1" http --help) || exit 1
    for o in --method --data --header --user-agent --include --head --location --max-redirs \
        --max-time --connect-timeout --cacert --insecure --backend --verbose --quiet; do
        grep -q -- "$o" <<<"$out" || { echo "missing $o"; exit 1; }
    done' _ "$WSK_BIN"

finish
