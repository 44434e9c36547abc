#!/usr/bin/env bash
# A database recorded on Windows opens, lists, shows and diffs on Linux, and vice versa; saved
# Linux maps text imports on Windows.
#   tests/win/cross-db.sh LINUX_BUILD WINDOWS_BUILD
# Needs the Windows tests to have run first (they leave WINDOWS_BUILD/testdata/win.db).
set -uo pipefail
LIN=$(realpath "$1")
WIN=$(realpath "$2")
export WINEDEBUG=-all
passed=0
failed=0
check() { # check NAME EXPECTED_STATUS COMMAND...
  local name=$1 want=$2
  shift 2
  local out status
  out=$("$@" 2>&1)
  status=$?
  if [ "$status" = "$want" ]; then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAILED: $name (exit $status, wanted $want): $out"
    failed=$((failed + 1))
  fi
}
contains() { # contains NAME TEXT COMMAND...
  local name=$1 text=$2
  shift 2
  local out
  out=$("$@" 2>&1)
  if grep -qF -- "$text" <<<"$out"; then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAILED: $name (no '$text')"
    failed=$((failed + 1))
  fi
}

WDB="$WIN/testdata/win.db"
check "Linux lists a Windows database" 0 "$LIN/vmsnap" -d "$WDB" list
contains "its target is a Windows process" '"os":"windows"' "$LIN/vmsnap" -d "$WDB" -j list
check "Linux shows a Windows snapshot" 0 "$LIN/vmsnap" -d "$WDB" show b
contains "Windows fields come through" '"state":"commit","type":"private"' "$LIN/vmsnap" -d "$WDB" -j show b
check "Linux diffs two Windows snapshots" 1 "$LIN/vmsnap" -d "$WDB" diff a b
contains "the Windows changes read the same" '"change":"committed"' "$LIN/vmsnap" -d "$WDB" -j diff a b

TMP=$(mktemp -d)
LDB="$TMP/linux.db"
sleep 30 &
SP=$!
sleep 0.3 # past its exec
cat "/proc/$SP/maps" >"$TMP/saved.maps"
check "Linux snapshot" 0 "$LIN/vmsnap" -d "$LDB" snap -p "$SP" --label one
check "Linux snapshot again" 0 "$LIN/vmsnap" -d "$LDB" snap -p "$SP" --label two
kill "$SP"
ZDB="Z:$(echo "$LDB" | tr / '\\')"
check "Windows lists a Linux database" 0 wine "$WIN/vmsnap.exe" -d "$ZDB" list
contains "its target is a Linux process" '"os":"linux"' wine "$WIN/vmsnap.exe" -d "$ZDB" -j list
contains "[vsyscall] survives the trip" '"start":"0xffffffffff600000"' wine "$WIN/vmsnap.exe" -d "$ZDB" -j show one
check "Windows diffs two Linux snapshots" 0 wine "$WIN/vmsnap.exe" -d "$ZDB" diff one one
check "Windows diffs a Linux change" 0 wine "$WIN/vmsnap.exe" -d "$ZDB" diff one two --fail-on-growth 1G
ZMAPS="Z:$(echo "$TMP/saved.maps" | tr / '\\')"
contains "Windows imports saved Linux maps" '"format":"maps"' wine "$WIN/vmsnap.exe" -d "$ZDB" -j import "$ZMAPS" --label saved
check "Windows diffs them with the live snapshot" 0 wine "$WIN/vmsnap.exe" -d "$ZDB" diff one saved
rm -rf "$TMP"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
