#!/usr/bin/env bash
# wsk serve --static DIR: files with the right Content-Type and exact bodies,
# HEAD without a body, 404 for missing files, 405 for other methods, nothing
# outside DIR however the path is spelled (.., %2e%2e, encoded slashes,
# symlinks out), and WebSocket upgrades on the same port still work.
source "$(dirname "$0")/lib.sh"

if ! command -v curl >/dev/null; then
    fail "curl is missing (scripts/deps.sh test must install it)"
    finish
fi

SITE=$TEST_TMP/site
WWW=$SITE/www
mkdir -p "$WWW/sub" "$SITE/secret"
echo "TOP SECRET" >"$SITE/secret/x"
cat >"$WWW/index.html" <<'EOF'
<!doctype html><html><head><title>wsk static</title><link rel="stylesheet" href="style.css"></head>
<body><h1>static</h1><script src="app.js"></script></body></html>
EOF
echo 'console.log("app");' >"$WWW/app.js"
echo 'body { color: #123; }' >"$WWW/style.css"
echo '{"ok": true, "n": [1, 2, 3]}' >"$WWW/data.json"
echo '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>' >"$WWW/logo.svg"
# A real 1x1 PNG, and bytes that are not UTF-8, for byte-exact bodies.
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82' >"$WWW/img.png"
head -c 1150 /dev/urandom >"$WWW/favicon.ico"
printf 'plain notes\n' >"$WWW/notes.txt"
echo '<p>in a subdirectory</p>' >"$WWW/sub/page.html"
ln -s /etc/passwd "$WWW/passwd-link"
ln -s ../secret "$WWW/outside-dir"

# http_is URL_PATH STATUS_REGEX [TYPE_REGEX] [CURL ARGS...]: the answer's status
# (and Content-Type) match.
http_is()
{
    local path=$1 status=$2 type=${3:-.*}
    shift 3 2>/dev/null || shift $#
    local got
    got=$(curl -s --path-as-is --max-time 10 -o "$TEST_TMP/body" \
        -w '%{http_code} %{content_type}' "$@" "http://127.0.0.1:$PORT$path")
    echo "${*:+$* }$path -> $got"
    [[ ${got%% *} =~ ^($status)$ ]] || { echo "status not /$status/"; return 1; }
    [[ ${got#* } =~ ^($type) ]] || { echo "Content-Type not /$type/"; return 1; }
}

# body_is URL_PATH FILE: GET returns exactly FILE's bytes, with a matching
# Content-Length.
body_is()
{
    local path=$1 file=$2 len
    len=$(curl -s --max-time 10 -o "$TEST_TMP/body" -D "$TEST_TMP/head" \
        -w '%{size_download}' "http://127.0.0.1:$PORT$path")
    if ! cmp "$TEST_TMP/body" "$file"; then
        echo "body of $path differs from $file ($len bytes received, $(stat -c %s "$file") expected)"
        return 1
    fi
    local clen
    clen=$(tr -d '\r' <"$TEST_TMP/head" | awk -F': *' 'tolower($1) == "content-length" { print $2 }')
    if [[ $clen != "$(stat -c %s "$file")" ]]; then
        echo "Content-Length '$clen', file has $(stat -c %s "$file") bytes"
        return 1
    fi
}

# head_ok URL_PATH FILE TYPE_REGEX: HEAD answers 200 with the right
# Content-Type and Content-Length and sends no body.
head_ok()
{
    local path=$1 file=$2 type=$3 resp head body clen ctype
    timeout 15 "$PY" "$PEERS/raw_client.py" http "$WS_URL" HEAD "$path" >"$TEST_TMP/resp" || return 1
    resp=$(cat "$TEST_TMP/resp"; echo x)
    resp=${resp%x}
    head=${resp%%$'\r\n\r\n'*}
    body=${resp#*$'\r\n\r\n'}
    echo "${head//$'\r'/}"
    [[ $head =~ ^HTTP/1\.1\ 200 ]] || { echo "status is not 200"; return 1; }
    clen=$(tr -d '\r' <<<"$head" | awk -F': *' 'tolower($1) == "content-length" { print $2 }')
    ctype=$(tr -d '\r' <<<"$head" | awk -F': *' 'tolower($1) == "content-type" { print $2 }')
    [[ $clen == "$(stat -c %s "$file")" ]] || { echo "Content-Length '$clen' != $(stat -c %s "$file")"; return 1; }
    [[ $ctype =~ ^($type) ]] || { echo "Content-Type '$ctype' not /$type/"; return 1; }
    [[ -z $body ]] || { echo "HEAD answer has a body of ${#body} bytes"; return 1; }
}

# not_served URL_PATH [STATUS_REGEX]: 403 or 404 (or STATUS_REGEX), and no
# secret in the answer.
not_served()
{
    http_is "$1" "${2:-403|404}" || return 1
    if grep -qaE 'TOP SECRET|root:' "$TEST_TMP/body"; then
        echo "the body leaks a file outside the root:"
        head -3 "$TEST_TMP/body"
        return 1
    fi
}

if start_server --echo --static "$WWW"; then
    echo "== content types"
    check "GET /index.html: 200 text/html" http_is /index.html 200 'text/html'
    check "GET /app.js: 200 javascript" http_is /app.js 200 '(text|application)/javascript'
    check "GET /style.css: 200 text/css" http_is /style.css 200 'text/css'
    check "GET /data.json: 200 application/json" http_is /data.json 200 'application/json'
    check "GET /logo.svg: 200 image/svg+xml" http_is /logo.svg 200 'image/svg\+xml'
    check "GET /img.png: 200 image/png" http_is /img.png 200 'image/png'
    check "GET /favicon.ico: 200 image/x-icon" http_is /favicon.ico 200 'image/(x-icon|vnd\.microsoft\.icon)'
    check "GET /notes.txt: 200 text/plain" http_is /notes.txt 200 'text/plain'
    check "GET /sub/page.html: 200 text/html" http_is /sub/page.html 200 'text/html'

    echo "== bodies"
    check "GET /img.png: exact bytes and Content-Length" body_is /img.png "$WWW/img.png"
    check "GET /favicon.ico: exact bytes and Content-Length" body_is /favicon.ico "$WWW/favicon.ico"
    check "GET /index.html: exact bytes and Content-Length" body_is /index.html "$WWW/index.html"
    check "HEAD /app.js: headers, no body" head_ok /app.js "$WWW/app.js" '(text|application)/javascript'
    check "HEAD /img.png: headers, no body" head_ok /img.png "$WWW/img.png" 'image/png'

    echo "== errors"
    check "GET /missing.html: 404" http_is /missing.html 404
    check "GET /sub/missing.css: 404" http_is /sub/missing.css 404
    check "POST /index.html: 405" http_is /index.html 405 '' -X POST -d x=1
    check "PUT /notes.txt: 405" http_is /notes.txt 405 '' -X PUT -d x
    check "DELETE /notes.txt: 405" http_is /notes.txt 405 '' -X DELETE
    check "the DELETE left the file alone" cmp <(printf 'plain notes\n') "$WWW/notes.txt"

    echo "== nothing outside the root"
    for path in /../secret/x /%2e%2e/secret/x /%2E%2E/secret/x /%2E%2E%2Fsecret/x /..%2fsecret/x \
        /..%2Fsecret%2Fx /sub/../../secret/x /sub/..%2f..%2fsecret/x /sub/%2e%2e/%2e%2e/secret/x \
        /.%2e/secret/x /%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd /../../../../etc/passwd \
        /passwd-link /outside-dir/x; do
        check "GET $path: 403/404, no leak" not_served "$path"
    done
    # A NUL byte is no path at all: 400 is as good as 403/404, but never the
    # file before it.
    check "GET /notes.txt%00.html: 400/403/404, not notes.txt" not_served /notes.txt%00.html '400|403|404'

    echo "== WebSocket on the same port"
    check "WebSocket upgrade at $WS_URL still echoes" "$PY" "$PEERS/py_client.py" "$WS_URL" text binary
    echo "== caching and ranges"
    seq 1 1000 >"$WWW/numbers.txt"
    base=http://127.0.0.1:$PORT
    head_of() { curl -s -o /dev/null -D - --max-time 5 "$@" | tr -d '\r'; }
    etag=$(head_of "$base/numbers.txt" | sed -n 's/^ETag: //Ip')
    check "200 carries ETag, Last-Modified and Accept-Ranges: bytes" bash -c '
        h=$(curl -s -o /dev/null -D - --max-time 5 "$0" | tr -d "\r")
        grep -Eq "^ETag: \"[0-9a-f]+-[0-9a-f]+\"$" <<<"$h" && grep -q "^Last-Modified: " <<<"$h" &&
        grep -q "^Accept-Ranges: bytes$" <<<"$h"' "$base/numbers.txt"
    check "If-None-Match with the ETag: 304, no body" bash -c '
        out=$(curl -s -w "%{http_code} %{size_download}" -H "If-None-Match: $1" --max-time 5 "$0")
        [[ $out == "304 0" ]]' "$base/numbers.txt" "$etag"
    check "If-None-Match with a weak W/ form and a list: 304" bash -c '
        [[ $(curl -s -o /dev/null -w "%{http_code}" -H "If-None-Match: \"x\", W/$1" \
            --max-time 5 "$0") == 304 ]]' "$base/numbers.txt" "$etag"
    check "If-None-Match with another tag: 200" bash -c '
        [[ $(curl -s -o /dev/null -w "%{http_code}" -H "If-None-Match: \"0-0\"" --max-time 5 \
            "$0") == 200 ]]' "$base/numbers.txt"
    check "Range: bytes=0-9: 206, Content-Range, the first 10 bytes" bash -c '
        out=$(curl -s -D "$1" -H "Range: bytes=0-9" --max-time 5 "$0")
        [[ $out == "$(head -c 10 "$2")" ]] && grep -q "^HTTP/1.1 206" "$1" &&
        grep -q "^Content-Range: bytes 0-9/3893" <(tr -d "\r" <"$1")' \
        "$base/numbers.txt" "$TEST_TMP/range.head" "$WWW/numbers.txt"
    check "Range: bytes=-6 and bytes=3890-: the last bytes" bash -c '
        [[ $(curl -s -H "Range: bytes=-6" --max-time 5 "$0" | od -An -c | tr -d " ") == "999\n1000\n" ||
           $(curl -s -H "Range: bytes=-6" --max-time 5 "$0") == "$(tail -c 6 "$1")" ]] &&
        [[ $(curl -s -H "Range: bytes=3890-" --max-time 5 "$0") == "$(tail -c 3 "$1")" ]]' \
        "$base/numbers.txt" "$WWW/numbers.txt"
    check "a range past the end: 416 with Content-Range: bytes */SIZE" bash -c '
        curl -s -o /dev/null -D "$1" -H "Range: bytes=5000-" --max-time 5 "$0"
        grep -q "^HTTP/1.1 416" "$1" && grep -q "^Content-Range: bytes \*/3893" <(tr -d "\r" <"$1")' \
        "$base/numbers.txt" "$TEST_TMP/range416.head"
    check "several ranges, or an If-Range that does not match: the whole file (200)" bash -c '
        a=$(curl -s -o /dev/null -w "%{http_code} %{size_download}" -H "Range: bytes=0-1,5-6" \
            --max-time 5 "$0")
        b=$(curl -s -o /dev/null -w "%{http_code} %{size_download}" -H "Range: bytes=10-" \
            -H "If-Range: \"old\"" --max-time 5 "$0")
        [[ $a == "200 3893" && $b == "200 3893" ]]' "$base/numbers.txt"
    check "curl -C - resumes a download byte for byte" bash -c '
        head -c 1000 "$1" >"$2"
        curl -s -C - -o "$2" --max-time 5 "$0" && cmp -s "$1" "$2"' \
        "$base/numbers.txt" "$WWW/numbers.txt" "$TEST_TMP/resumed.txt"
    printf 'x' >"$WWW/a.webmanifest"
    check "more types: .webmanifest, .mp4, .woff" bash -c '
        : >"$1/v.mp4"; : >"$1/f.woff"
        [[ $(curl -s -o /dev/null -w "%{content_type}" "$0/a.webmanifest") == application/manifest+json &&
           $(curl -s -o /dev/null -w "%{content_type}" "$0/v.mp4") == video/mp4 &&
           $(curl -s -o /dev/null -w "%{content_type}" "$0/f.woff") == font/woff ]]' "$base" "$WWW"
    mkdir -p "$WWW/noindex"
    check "a directory without index.html: 404" test "$(curl -s -o /dev/null -w '%{http_code}' \
        --max-time 5 "$base/noindex/")" = 404
    server_alive "server still running"
    stop_server
fi

echo "== --list-dirs"
check "--list-dirs without --static: usage error (2)" bash -c '
    "$0" serve --list-dirs 2>/dev/null; [[ $? == 2 ]]' "$WSK_BIN"
LIST=$TEST_TMP/list
mkdir -p "$LIST/empty" "$LIST/sub dir" "$LIST/.hidden-dir" "$LIST/withindex"
printf '12345' >"$LIST/five.txt"
printf 'x' >"$LIST/<b>&\"odd.html"
printf 'h' >"$LIST/.env"
printf 'i' >"$LIST/withindex/index.html"
ln -s /etc "$LIST/etc-link"
mkfifo "$LIST/a-fifo"
if start_server --echo --static "$LIST" --list-dirs; then
    base=http://127.0.0.1:$PORT
    curl -s --max-time 5 -o "$TEST_TMP/list.html" -w '%{http_code} %{content_type}' "$base/" \
        >"$TEST_TMP/list.status"
    check "/ without index.html: 200 text/html" grep -qx '200 text/html; charset=utf-8' \
        "$TEST_TMP/list.status"
    check "... lists files with sizes and directories with '/', sorted" "$PY" -c '
import re, sys
page = open(sys.argv[1]).read()
rows = re.findall(r"<tr><td><a href=\"([^\"]*)\">([^<]*)</a></td><td[^>]*>([^<]*)</td></tr>", page)
names = [r[1] for r in rows]
want = ["&lt;b&gt;&amp;&quot;odd.html", "empty/", "five.txt", "sub dir/", "withindex/"]
assert names == want, names
assert ("five.txt", "five.txt", "5") in rows, rows
assert ("sub%20dir/", "sub dir/", "") in rows, rows
assert ("%3Cb%3E%26%22odd.html", want[0], "1") in rows, rows
assert "<b>" not in page.replace("<body>", "")
print("ok:", names)' "$TEST_TMP/list.html"
    check "... dot-files, symlinks and FIFOs are not listed" bash -c '
        ! grep -Eq "hidden|\.env|etc-link|a-fifo" "$0"' "$TEST_TMP/list.html"
    check "a listed name with escapes is served by its link" bash -c '
        [[ $(curl -s --max-time 5 "$0/%3Cb%3E%26%22odd.html") == x ]]' "$base"
    check "a subdirectory: listed, with a link up" bash -c '
        curl -s --max-time 5 "$0/empty/" | grep -q "href=\"../\""' "$base"
    check "a directory with index.html serves the index, not a listing" bash -c '
        [[ $(curl -s --max-time 5 "$0/withindex/") == i ]]' "$base"
    check "without the slash: 301 to it" bash -c '
        [[ $(curl -s -o /dev/null -w "%{http_code} %{redirect_url}" --max-time 5 "$0/empty") == \
           "301 $0/empty/" ]]' "$base"
    check "HEAD: the length, no body" bash -c '
        curl -s -I --max-time 5 "$0/" | tr -d "\r" | grep -q "^Content-Length: [1-9]"' "$base"
    check "dot-directories and missing ones stay 404; .. stays 403" bash -c '
        [[ $(curl -s -o /dev/null -w "%{http_code}" --max-time 5 "$0/.hidden-dir/") == 404 &&
           $(curl -s -o /dev/null -w "%{http_code}" --max-time 5 "$0/nope/") == 404 &&
           $(curl -s --path-as-is -o /dev/null -w "%{http_code}" --max-time 5 "$0/../") == 403 ]]' \
        "$base"
    check "a symlinked directory is not listed through (404, as for files)" bash -c '
        code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 "$0/etc-link/")
        [[ $code == 403 || $code == 404 ]]' "$base"
    "$PY" -c 'import os, sys
for i in range(10005):
    open(os.path.join(sys.argv[1], "f%05d" % i), "w").close()' "$LIST/empty"
    check "a directory of 10,005 files: 10,000 listed, the rest counted" bash -c '
        curl -s --max-time 10 "$0/empty/" >"$1"
        [[ $(grep -c "<tr><td><a href=\"f" "$1") == 10000 ]] &&
            grep -q "5 more entries not shown" "$1"' "$base" "$TEST_TMP/big.html"
    server_alive "server still running"
    stop_server
fi

finish
