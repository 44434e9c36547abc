#!/usr/bin/env bash
# Regenerates docs/report.png, the README's picture of a real report: a scripted target
# (tests/helpers/vm_child) starts two threads, then leaks 1 MiB every 250 ms after 4 s, while
# vmsnap records it with per-region figures; `vmsnap mark` labels the moment the leak starts
# and a snapshot after it. Headless Chromium draws the report at 1280 pixels wide.
# usage: scripts/report-screenshot.sh [BUILD_DIR]    (default build; built with the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cmake -S . -B "$build" -DVMSNAP_TESTS=ON >/dev/null
cmake --build "$build" -j2 >/dev/null
work=$(mktemp -d)
trap 'exec 3>&- 4<&-; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
db=$work/leak.db

mkfifo "$work/in" "$work/out"
"$build/tests/vm_child" <"$work/in" >"$work/out" &
exec 3>"$work/in" 4<"$work/out"
say() { echo "$*" >&3; read -r reply <&4; echo "$reply"; }
pid=$(say pid | cut -d' ' -f2)
say threads 2 >/dev/null
"$build/vmsnap" -d "$db" record -p "$pid" -i 100ms -t 12s --detail smaps 2>/dev/null &
rec=$!
sleep 1
say leak 1048576 250 3000 >/dev/null
sleep 3
"$build/vmsnap" -d "$db" mark --label leak-start >/dev/null
sleep 4
"$build/vmsnap" -d "$db" mark >/dev/null
wait "$rec"
say leak 0 >/dev/null
"$build/vmsnap" -d "$db" report -o "$work/report.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2900 \
  --screenshot="$work/report.png" "file://$work/report.html" 2>/dev/null
mv "$work/report.png" docs/report.png
echo "wrote docs/report.png"
