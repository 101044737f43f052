#!/usr/bin/env bash
# wss:// and https:// with certificates made here, in a scratch directory, by
# the openssl command: two CAs, server certificates for localhost and
# 127.0.0.1, one for other.example, one that has expired.
# - wsk serve --tls-cert/--tls-key against Python websockets, Node ws, curl
#   and wsk connect; static files over https; what is refused (an untrusted
#   CA, a hostname mismatch, plain HTTP on the TLS port, a stalled TLS
#   handshake); startup errors in one line;
# - wsk connect against a Python websockets TLS server: --cacert, --insecure;
# - SIGHUP swaps the certificate without dropping open connections, and a
#   failed reload keeps the old one.
source "$(dirname "$0")/lib.sh"

if ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then
    fail "openssl or curl is missing (scripts/deps.sh test installs them)"
    finish
fi

PKI=$TEST_TMP/pki
mkdir -p "$PKI"

# make_ca NAME: a self-signed CA, NAME.pem and NAME.key.
make_ca()
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
        -subj "/CN=wsk test $1" -keyout "$PKI/$1.key" -out "$PKI/$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# make_cert NAME CA SUBJECT_ALT_NAMES: a server certificate signed by CA.
make_cert()
{
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$PKI/$1.key" -out "$PKI/$1.csr" &&
        printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
            "$3" >"$PKI/$1.ext" &&
        openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.pem" -CAkey "$PKI/$2.key" \
            -CAcreateserial -days 3 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
}

# make_expired_cert NAME CA SUBJECT_ALT_NAMES: valid for one day in 2020.
# `openssl x509 -req` cannot date a certificate in the past (OpenSSL 3.0 has
# no -not_after), but `openssl ca` takes -startdate and -enddate.
make_expired_cert()
{
    local db=$PKI/ca-db
    mkdir -p "$db" && : >"$db/index.txt" && echo 01 >"$db/serial" &&
        cat >"$db/ca.cnf" <<EOF &&
[ca]
default_ca = test_ca
[test_ca]
database = $db/index.txt
serial = $db/serial
new_certs_dir = $db
default_md = sha256
policy = any_name
copy_extensions = copy
unique_subject = no
[any_name]
commonName = supplied
EOF
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
            -addext "subjectAltName=$3" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" &&
        openssl ca -batch -config "$db/ca.cnf" -cert "$PKI/$2.pem" -keyfile "$PKI/$2.key" \
            -startdate 20200101000000Z -enddate 20200102000000Z -in "$PKI/$1.csr" \
            -out "$PKI/$1.pem"
}

echo "== certificates (openssl $(openssl version | cut -d' ' -f2))"
check "CA A, CA B, and server certificates for localhost + 127.0.0.1 signed by each, and one for other.example" \
    bash -c "$(declare -f make_ca make_cert); PKI='$PKI'
        make_ca ca-a && make_ca ca-b &&
        make_cert srv-a ca-a DNS:localhost,IP:127.0.0.1 &&
        make_cert srv-b ca-b DNS:localhost,IP:127.0.0.1 &&
        make_cert other ca-a DNS:other.example" || finish
HAS_EXPIRED=1
if ! (PKI=$PKI make_expired_cert expired ca-a DNS:localhost,IP:127.0.0.1) >"$TEST_TMP/expired.log" 2>&1; then
    HAS_EXPIRED=0
    echo "NOTE: openssl ca could not make an expired certificate; that case is skipped:"
    sed 's/^/    /' "$TEST_TMP/expired.log" | tail -5
fi

# serve_fails STATUS PATTERN ARGS...: `wsk serve ARGS` exits STATUS within
# 10 s, prints nothing on stdout and, as its first stderr line,
# "wsk serve: ..." matching PATTERN (case-insensitive); with STATUS 1 that is
# its only line.
serve_fails()
{
    local want=$1 pattern=$2 rv lines
    shift 2
    local out=$TEST_TMP/serve.out err=$TEST_TMP/serve.err
    timeout -k 5 10 "$WSK_BIN" serve --listen 127.0.0.1:0 "$@" >"$out" 2>"$err"
    rv=$?
    lines=$(wc -l <"$err")
    echo "wsk serve $* exited $rv; stderr ($lines lines):"
    sed 's/^/  /' "$err" | head -5
    ((rv == want)) || { echo "expected exit status $want"; return 1; }
    [[ ! -s $out ]] || { echo "stdout is not empty: $(head -2 "$out")"; return 1; }
    if ((want == 1 && lines != 1)); then
        echo "expected exactly one line on stderr"
        return 1
    fi
    head -1 "$err" | grep -Eqi -- "^wsk serve: ($pattern)" || { echo "stderr does not match /$pattern/i"; return 1; }
}

echo "== wsk serve: certificates that cannot be used"
check "missing certificate file: exit 1, one line naming the file" \
    serve_fails 1 "cannot read certificate .*nope\.pem.*no such file" \
    --tls-cert "$PKI/nope.pem" --tls-key "$PKI/srv-a.key"
check "missing key file: exit 1, one line naming the file" \
    serve_fails 1 "cannot read private key .*nope\.key.*no such file" \
    --tls-cert "$PKI/srv-a.pem" --tls-key "$PKI/nope.key"
check "key of another certificate: exit 1, one line saying they do not match" \
    serve_fails 1 "private key .*srv-b\.key does not match the certificate .*srv-a\.pem" \
    --tls-cert "$PKI/srv-a.pem" --tls-key "$PKI/srv-b.key"
check "a key where the certificate should be: exit 1, one line" \
    serve_fails 1 "cannot read certificate .*srv-a\.key" \
    --tls-cert "$PKI/srv-a.key" --tls-key "$PKI/srv-a.key"
if ((HAS_EXPIRED)); then
    check "expired certificate: exit 1, one line saying it has expired" \
        serve_fails 1 "certificate .*expired\.pem has expired" \
        --tls-cert "$PKI/expired.pem" --tls-key "$PKI/expired.key"
fi
check "--tls-cert without --tls-key: usage error (exit 2)" \
    serve_fails 2 "--tls-cert needs --tls-key" --tls-cert "$PKI/srv-a.pem"

echo "== wsk serve --echo --tls-cert srv-a (CA A)"
if start_server --echo -v --max-message 4M --tls-cert "$PKI/srv-a.pem" --tls-key "$PKI/srv-a.key"; then
    check "the listening line says https:// and wss://" \
        grep -Eq "^wsk serve: listening on https://127\.0\.0\.1:$PORT/ \(WebSocket wss://127\.0\.0\.1:$PORT/, echo\)$" \
        <<<"$SERVER_LINE"
    WSS=wss://localhost:$PORT/
    check "python websockets, CA A: text, binary, 1 MiB binary and text, byte-exact" \
        "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-a.pem" "$WSS" text binary big-binary big-text close
    check "python websockets over wss://127.0.0.1 (IP subjectAltName)" \
        "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-a.pem" "wss://127.0.0.1:$PORT/" text
    if [[ -d $PEERS/node_modules/ws ]]; then
        check "node ws with ca: CA A: text, binary, 1 MiB binary, fragmented" \
            "$NODE" "$PEERS/node_client.mjs" --ca "$PKI/ca-a.pem" "$WSS" text binary big-binary fragmented-text close
    else
        fail "tests/peers/node_modules is missing: run scripts/deps.sh test"
    fi
    check "wsk connect --cacert CA A: round trip" \
        connect_expect 'over tls ✓\nsecond\n' 'over tls ✓\nsecond\n' --cacert "$PKI/ca-a.pem" "$WSS"
    check "wsk connect without --cacert (system CAs): refused, one line saying why" \
        connect_fails "cannot connect to wss://localhost:$PORT/: TLS error: certificate verify failed" "$WSS"
    check "wsk connect --cacert CA B: refused, one line saying why" \
        connect_fails "TLS error: certificate verify failed" --cacert "$PKI/ca-b.pem" "$WSS"
    check "wsk connect --cacert with a missing file: one line naming it" \
        connect_fails "cannot read CA file .*nope\.pem" --cacert "$PKI/nope.pem" "$WSS"
    insecure_works()
    {
        local err=$TEST_TMP/insecure.err
        local want="wsk connect: warning: --insecure: the server's certificate is not verified; anyone on the path can read and change this connection"
        printf 'unverified\n' | timeout -k 5 20 "$WSK_BIN" connect --insecure "$WSS" \
            >"$TEST_TMP/insecure.out" 2>"$err" || { echo "exit $?"; cat "$err"; return 1; }
        echo "stdout: $(cat "$TEST_TMP/insecure.out")"
        echo "stderr: $(cat "$err")"
        [[ $(cat "$TEST_TMP/insecure.out") == unverified ]] || { echo "wrong stdout"; return 1; }
        [[ $(cat "$err") == "$want" ]] || { echo "stderr is not exactly the warning"; return 1; }
    }
    check "wsk connect --insecure (no CA trusts srv-a here): works, warns in one line" insecure_works
    check "curl --cacert CA A https://localhost:PORT/: the chat page" \
        bash -c "curl -sS --max-time 10 --cacert '$PKI/ca-a.pem' -o '$TEST_TMP/page' -w '%{http_code} %{content_type}\n' \
            https://localhost:$PORT/ | tee /dev/stderr | grep -q '^200 text/html' && grep -q '<html' '$TEST_TMP/page'"
    check "curl without the CA: refused" \
        bash -c "! curl -sS --max-time 10 -o /dev/null https://localhost:$PORT/"
    check "a plain WebSocket upgrade to the TLS port: 400, then closed" \
        "$PY" "$PEERS/raw_client.py" plain-to-tls "ws://127.0.0.1:$PORT/"
    check "curl http:// to the TLS port gets a readable 400, as nginx answers" \
        bash -c "[[ \$(curl -s --max-time 10 -o '$TEST_TMP/plain' -w '%{http_code}' http://127.0.0.1:$PORT/) == 400 ]] &&
                 grep -q 'plain HTTP sent to a TLS port' '$TEST_TMP/plain'"
    check "the TLS port still serves wss:// after the plain request" \
        bash -c "curl -sS --max-time 10 --cacert '$PKI/ca-a.pem' -o /dev/null https://localhost:$PORT/"
    check "the server logged permessage-deflate for a wss client (-v)" \
        grep -q "open /, extensions permessage-deflate" "$SERVER_ERR"
    server_alive "server still running"
    stop_server
    check "server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
fi

echo "== wsk serve --static over https"
WWW=$TEST_TMP/www
mkdir -p "$WWW"
echo '<!doctype html><title>tls static</title>' >"$WWW/index.html"
head -c 300000 /dev/urandom >"$WWW/blob.bin"
if start_server --echo --static "$WWW" --tls-cert "$PKI/srv-a.pem" --tls-key "$PKI/srv-a.key"; then
    https_body()
    {
        curl -sS --max-time 10 --cacert "$PKI/ca-a.pem" -o "$TEST_TMP/body" "https://localhost:$PORT$1" &&
            cmp "$TEST_TMP/body" "$2"
    }
    check "GET /index.html: exact bytes" https_body /index.html "$WWW/index.html"
    check "GET /blob.bin (300 KB, random): exact bytes" https_body /blob.bin "$WWW/blob.bin"
    check "GET /missing: 404" \
        bash -c "[[ \$(curl -s --max-time 10 --cacert '$PKI/ca-a.pem' -o /dev/null -w '%{http_code}' \
            https://localhost:$PORT/missing) == 404 ]]"
    check "wss upgrade on the same port still echoes" \
        "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-a.pem" "wss://localhost:$PORT/" text
    stop_server
fi

echo "== hostname mismatch: wsk serve with a certificate for other.example"
if start_server --echo --tls-cert "$PKI/other.pem" --tls-key "$PKI/other.key"; then
    check "wsk connect --cacert CA A wss://localhost: refused, one line naming both names" \
        connect_fails "TLS error: hostname mismatch: certificate is for other\.example, not localhost" \
        --cacert "$PKI/ca-a.pem" "wss://localhost:$PORT/"
    check "wsk connect --cacert CA A wss://127.0.0.1: refused, one line about the address" \
        connect_fails "TLS error: .*(mismatch|127\.0\.0\.1)" --cacert "$PKI/ca-a.pem" "wss://127.0.0.1:$PORT/"
    check "curl refuses it too (the certificate is wrong, not wsk)" \
        bash -c "! curl -sS --max-time 10 --cacert '$PKI/ca-a.pem' -o /dev/null https://localhost:$PORT/"
    server_alive "server still running"
    stop_server
fi

echo "== --handshake-timeout 1 over TLS"
if start_server --echo --handshake-timeout 1 --tls-cert "$PKI/srv-a.pem" --tls-key "$PKI/srv-a.key"; then
    check "a client that connects and sends nothing is dropped after 1-3 s" \
        "$PY" "$PEERS/raw_client.py" idle "ws://127.0.0.1:$PORT/" 0.8 3.5
    check "a client that stops in the middle of its ClientHello is dropped after 1-3 s" \
        "$PY" "$PEERS/raw_client.py" tls-stall "ws://127.0.0.1:$PORT/" 0.8 3.5
    check "a wss client idle for 2 s after the handshake is not dropped" \
        "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-a.pem" "wss://localhost:$PORT/" linger
    stop_server
fi

echo "== wsk connect -> python websockets over TLS (srv-a, CA A)"
if start_listener "$PY" "$PEERS/py_echo_server.py" --tls-cert "$PKI/srv-a.pem" --tls-key "$PKI/srv-a.key"; then
    PY_PORT=$LISTENER_PORT
    check "the python server's line says wss://" grep -q "wss://127.0.0.1:$PY_PORT/" <<<"$LISTENER_LINE"
    check "wsk connect --cacert CA A wss://localhost: lines come back" \
        connect_expect 'a\nb\n' 'a\nb\n' --cacert "$PKI/ca-a.pem" "wss://localhost:$PY_PORT/"
    check "wsk connect --cacert CA A wss://127.0.0.1: lines come back" \
        connect_expect 'c\n' 'c\n' --cacert "$PKI/ca-a.pem" "wss://127.0.0.1:$PY_PORT/"
    check "wsk connect --binary over TLS: binary frames" \
        connect_expect 'abc\n' 'binary 3 616263\n' --binary --cacert "$PKI/ca-a.pem" "wss://localhost:$PY_PORT/describe"
    check "wsk connect --cacert CA B: refused, one line saying why" \
        connect_fails "TLS error: certificate verify failed" --cacert "$PKI/ca-b.pem" "wss://localhost:$PY_PORT/"
    check "wsk connect ws:// to the TLS port: fails, one line" \
        connect_fails "cannot connect|closed|reset|lost|handshake" "ws://127.0.0.1:$PY_PORT/"
fi

echo "== SIGHUP: reload the certificate"
LIVE=$TEST_TMP/live
mkdir -p "$LIVE"
# install NAME KEY_NAME: puts a certificate and a key in place the way a
# renewal does: write aside, then rename over.
install_cert()
{
    cp "$PKI/$1.pem" "$LIVE/cert.pem.new" && mv -f "$LIVE/cert.pem.new" "$LIVE/cert.pem" &&
        cp "$PKI/$2.key" "$LIVE/key.pem.new" && mv -f "$LIVE/key.pem.new" "$LIVE/key.pem"
}
install_cert srv-a srv-a
if start_server --echo -v --tls-cert "$LIVE/cert.pem" --tls-key "$LIVE/key.pem"; then
    WSS=wss://localhost:$PORT/
    HOLD_OUT=$TEST_TMP/hold.out
    start_bg "$HOLD_OUT" "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-a.pem" \
        --wait-file "$TEST_TMP/go" "$WSS" wait
    HOLDER=$BG_PID
    check "a client trusting only CA A is connected" wait_for_line "$HOLD_OUT" '^waiting' 20
    install_cert srv-b srv-b
    kill -HUP "$SERVER_PID"
    check "SIGHUP: the server logs 'TLS certificate and key reloaded'" \
        wait_for_line "$SERVER_ERR" 'wsk serve: SIGHUP: TLS certificate and key reloaded$' 10
    touch "$TEST_TMP/go"
    held_on()
    {
        wait_pid "$HOLDER" 30 || return 1
        cat "$HOLD_OUT"
        ((WAIT_STATUS == 0)) && grep -q "echoed text of .*'after waiting" "$HOLD_OUT"
    }
    check "the connection opened before the reload still echoes" held_on
    check "a new client trusting only CA B connects" \
        "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-b.pem" "$WSS" text
    check "a new client trusting only CA A is refused" \
        connect_fails "TLS error: certificate verify failed" --cacert "$PKI/ca-a.pem" "$WSS"

    # A renewal gone wrong: the key does not match the certificate.
    install_cert srv-b srv-a
    kill -HUP "$SERVER_PID"
    check "SIGHUP with a mismatched key: one error line, the old certificate stays" \
        wait_for_line "$SERVER_ERR" 'wsk serve: SIGHUP: cannot reload the TLS certificate and key, still using the old ones: private key .* does not match' 10
    server_alive "server still running after the failed reload"
    check "new clients still get certificate B" \
        "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-b.pem" "$WSS" text
    rm -f "$LIVE/cert.pem"
    kill -HUP "$SERVER_PID"
    check "SIGHUP with the certificate file gone: one error line naming it" \
        wait_for_line "$SERVER_ERR" 'wsk serve: SIGHUP: cannot reload the TLS certificate and key, still using the old ones: cannot read certificate .*cert\.pem' 10
    check "new clients still get certificate B" \
        "$PY" "$PEERS/py_client.py" --cafile "$PKI/ca-b.pem" "$WSS" text
    stop_server
    check "server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
fi

echo "== wsk connect --cert/--key: a client certificate"
check "a client certificate for 'alice' signed by CA B (extendedKeyUsage clientAuth)" bash -c '
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=alice \
        -keyout "$0/alice.key" -out "$0/alice.csr" 2>/dev/null &&
    printf "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n" >"$0/alice.ext" &&
    openssl x509 -req -in "$0/alice.csr" -CA "$0/ca-b.pem" -CAkey "$0/ca-b.key" -CAcreateserial \
        -days 3 -extfile "$0/alice.ext" -out "$0/alice.pem" 2>/dev/null' "$PKI" || finish
if start_listener "$PY" "$PEERS/py_echo_server.py" --tls-cert "$PKI/srv-a.pem" \
    --tls-key "$PKI/srv-a.key" --client-ca "$PKI/ca-b.pem"; then
    MTLS=wss://127.0.0.1:$LISTENER_PORT
    check "--cert/--key: the server that requires one sees 'alice', and echoes" \
        connect_expect 'hi\n' 'alice\nhi\n' --cacert "$PKI/ca-a.pem" --cert "$PKI/alice.pem" \
        --key "$PKI/alice.key" "$MTLS/whoami"
    check "without a client certificate: refused, one line suggesting --cert and --key" \
        connect_fails 'client certificate: --cert and --key' --cacert "$PKI/ca-a.pem" \
        "$MTLS/whoami"
    check "--cert without --key: a usage error" bash -c '
        out=$("$0" connect --cert "$1" "$2" </dev/null 2>&1); rv=$?
        [[ $rv == 2 && $out == *"--cert needs --key"* ]]' "$WSK_BIN" "$PKI/alice.pem" "$MTLS/"
    check "a key that does not match: one line saying so, exit 1" \
        connect_fails 'does not match' --cacert "$PKI/ca-a.pem" --cert "$PKI/alice.pem" \
        --key "$PKI/srv-a.key" "$MTLS/whoami"
    stop_pid "$LISTENER_PID"
fi

finish
