#!/bin/sh
# Fails when the shared library exports a symbol without the wsk_ prefix.
set -eu
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^wsk_' || true)
count=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/' | grep -c '^' || true)
if [ -n "$bad" ]; then
    echo "exported symbols without the wsk_ prefix:"
    echo "$bad"
    exit 1
fi
if [ "$count" -lt 1 ]; then
    echo "no exported symbols found in $lib"
    exit 1
fi
echo "$count exported symbols, all prefixed wsk_"
