#!/usr/bin/env bash
# `cmake --install` of the build tree under test into a temporary prefix, then
# two tiny consumers built against that prefix only, as a user would build
# them, each run against a `wsk serve --echo` started from the prefix:
# - examples/consumer/echo_client.c with `cc $(pkg-config --cflags --libs wsk)`,
#   and with libwsk.a and `pkg-config --static --libs`;
# - examples/consumer/, a CMake project: find_package(wsk) and wsk::wsk (and
#   wsk::wsk_static).
# Also: what is installed, one version everywhere (project(), wsk version,
# version.h, wsk.pc, the SONAME, wskConfigVersion.cmake), and the README's
# library example being examples/consumer/echo_client.c.
#
# The prefix is installed to one directory and used from another: nothing
# installed may depend on where it was installed.
source "$(dirname "$0")/lib.sh"

if is_sanitized; then
    # A consumer built without -fsanitize cannot link a sanitized libwsk.
    echo "a sanitizer build: nothing to check (CTest label nosan)"
    finish
fi

CC=${CC:-cc}
STAGE=$TEST_TMP/stage
PREFIX=$TEST_TMP/prefix
EXAMPLE=$WSK_SOURCE_DIR/examples/consumer/echo_client.c
VERSION=$(sed -n 's/^project(wsk VERSION \([0-9.]*\).*/\1/p' "$WSK_SOURCE_DIR/CMakeLists.txt")
MAJOR=${VERSION%%.*}
MINOR=${VERSION#*.}
MINOR=${MINOR%%.*}
if ((MAJOR == 0)); then SONAME=libwsk.so.$MAJOR.$MINOR; else SONAME=libwsk.so.$MAJOR; fi

echo "== cmake --install $WSK_BUILD_DIR (version $VERSION)"
if ! check "cmake --install --prefix STAGE" cmake --install "$WSK_BUILD_DIR" --prefix "$STAGE"; then
    finish
fi
mv "$STAGE" "$PREFIX"

installed_files()
{
    local f missing=()
    for f in bin/wsk lib/libwsk.a lib/libwsk.so "lib/$SONAME" "lib/libwsk.so.$VERSION" \
        include/wsk.h include/wsk/version.h lib/pkgconfig/wsk.pc \
        lib/cmake/wsk/wskConfig.cmake lib/cmake/wsk/wskConfigVersion.cmake \
        lib/cmake/wsk/wskTargets.cmake share/man/man1/wsk.1 \
        share/bash-completion/completions/wsk share/zsh/site-functions/_wsk; do
        [[ -e $PREFIX/$f ]] || missing+=("$f")
    done
    for f in "$WSK_SOURCE_DIR"/include/wsk/*.h; do
        [[ -e $PREFIX/include/wsk/${f##*/} ]] || missing+=("include/wsk/${f##*/}")
    done
    ((${#missing[@]} == 0)) || { echo "missing: ${missing[*]}"; return 1; }
    [[ ! -e $PREFIX/include/wsk/version.h.in ]] || { echo "version.h.in installed"; return 1; }
}
check "everything is installed" installed_files
# shellcheck disable=SC2016
check "no installed file names the directory it was installed to" \
    bash -c '! grep -rlI -- "$1" "$2"' _ "$STAGE" "$PREFIX"

export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
echo "== one version: $VERSION"
check "wsk version" bash -c "[[ \$('$PREFIX/bin/wsk' version) == 'wsk $VERSION' ]]"
check "wsk/version.h" grep -qx "#define WSK_VERSION_STRING \"$VERSION\"" \
    "$PREFIX/include/wsk/version.h"
check "pkg-config --modversion wsk" bash -c "[[ \$(pkg-config --modversion wsk) == '$VERSION' ]]"
check "SONAME $SONAME" bash -c \
    "readelf -d '$PREFIX/lib/libwsk.so' | grep -q 'Library soname: \[$SONAME\]'"
# find_package(wsk X.Y): while 0.x only the same minor is compatible.
cat >"$TEST_TMP/config_version.cmake" <<EOF
include("$PREFIX/lib/cmake/wsk/wskConfigVersion.cmake")
message("\${PACKAGE_VERSION} \${PACKAGE_VERSION_COMPATIBLE}")
EOF
# compatible WANTED ANSWER: find_package(wsk WANTED) gets ANSWER (TRUE or FALSE).
compatible()
{
    local out
    out=$(cmake -DPACKAGE_FIND_VERSION="$1" -DPACKAGE_FIND_VERSION_MAJOR="${1%%.*}" \
        -DPACKAGE_FIND_VERSION_MINOR="${1#*.}" -P "$TEST_TMP/config_version.cmake" 2>&1)
    echo "find_package(wsk $1): $out"
    [[ $out == "$VERSION $2" ]]
}
check "find_package(wsk $MAJOR.$MINOR) takes $VERSION" compatible "$MAJOR.$MINOR" TRUE
if ((MAJOR == 0)); then
    check "find_package(wsk 0.$((MINOR + 1))) does not" compatible "0.$((MINOR + 1))" FALSE
fi

readme_example()
{
    awk '/^<!-- examples\/consumer\/echo_client.c/ { on = 1; next }
         on && /^```c$/ { code = 1; next }
         code && /^```$/ { exit }
         code { print }' "$WSK_SOURCE_DIR/README.md" >"$TEST_TMP/readme_example.c"
    diff -u "$EXAMPLE" "$TEST_TMP/readme_example.c"
}
check "the README's library example is examples/consumer/echo_client.c" readme_example

# echo_runs NAME PROGRAM [ENV...]: runs PROGRAM URL MESSAGE and checks that it
# printed the message back and exited 0.
echo_runs()
{
    local name=$1 prog=$2
    local msg="hello from $name, $$"
    shift 2
    local out
    out=$(env "$@" timeout 20 "$prog" "$WS_URL" "$msg")
    local rv=$?
    echo "exit $rv, stdout: $out"
    ((rv == 0)) && [[ $out == "$msg" ]]
}

if ! start_listener "$PREFIX/bin/wsk" serve --echo --listen 127.0.0.1:0; then
    fail "start the installed wsk serve --echo"
    finish
fi
WS_URL=$LISTENER_URL
echo "installed wsk serve --echo on $WS_URL"

echo "== pkg-config"
CFLAGS_STRICT=(-std=c17 -Wall -Wextra -Wpedantic -Werror)
# shellcheck disable=SC2046
if check "cc \$(pkg-config --cflags --libs wsk)" \
    "$CC" "${CFLAGS_STRICT[@]}" -o "$TEST_TMP/echo_pc" "$EXAMPLE" $(pkg-config --cflags --libs wsk); then
    check "it loads $PREFIX/lib/$SONAME" bash -c \
        "LD_LIBRARY_PATH='$PREFIX/lib' ldd '$TEST_TMP/echo_pc' | grep -q '$SONAME => $PREFIX/lib/$SONAME'"
    check "it gets its echo" echo_runs pkg-config "$TEST_TMP/echo_pc" LD_LIBRARY_PATH="$PREFIX/lib"
fi
# The static library with what `pkg-config --static` adds (Requires.private,
# Libs.private): -l:libwsk.a, since -lwsk would take the .so.
static_libs=$(pkg-config --static --libs wsk | sed 's/-lwsk\b/-l:libwsk.a/')
# shellcheck disable=SC2046,SC2086
if check "cc \$(pkg-config --static ...) with libwsk.a" \
    "$CC" "${CFLAGS_STRICT[@]}" -o "$TEST_TMP/echo_pc_static" "$EXAMPLE" \
    $(pkg-config --cflags --static wsk) $static_libs; then
    check "it does not need libwsk.so" bash -c "! readelf -d '$TEST_TMP/echo_pc_static' | grep -q 'libwsk'"
    check "it gets its echo" echo_runs pkg-config-static "$TEST_TMP/echo_pc_static"
fi

echo "== CMake: find_package(wsk)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if check "configure examples/consumer with CMAKE_PREFIX_PATH=PREFIX" \
    cmake -S "$WSK_SOURCE_DIR/examples/consumer" -B "$TEST_TMP/consumer" "${generator[@]}" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="${CFLAGS_STRICT[*]}"; then
    check "it found PREFIX's wsk" grep -qx "wsk_DIR:PATH=$PREFIX/lib/cmake/wsk" \
        "$TEST_TMP/consumer/CMakeCache.txt"
    if check "build it" cmake --build "$TEST_TMP/consumer"; then
        check "echo_client (wsk::wsk) loads $PREFIX/lib/$SONAME" bash -c \
            "ldd '$TEST_TMP/consumer/echo_client' | grep -q '$SONAME => $PREFIX/lib/$SONAME'"
        check "echo_client (wsk::wsk) gets its echo" \
            echo_runs cmake "$TEST_TMP/consumer/echo_client"
        check "echo_client_static (wsk::wsk_static) does not need libwsk.so" bash -c \
            "! readelf -d '$TEST_TMP/consumer/echo_client_static' | grep -q 'libwsk'"
        check "echo_client_static (wsk::wsk_static) gets its echo" \
            echo_runs cmake-static "$TEST_TMP/consumer/echo_client_static"
    fi
fi

check "the server is still running" kill -0 "$LISTENER_PID"
stop_pid "$LISTENER_PID"
finish
