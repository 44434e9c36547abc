#!/usr/bin/env bash
# A database recorded on Windows opens, lists, shows and diffs on Linux, and vice versa; saved
# Linux maps text imports on Windows; each merges the other's databases, to the same rows.
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

# A recording with --stacks (test_win leaves it): Linux answers its sites as Windows did.
SDB="$WIN/testdata/stacks.db"
contains "Linux reads a Windows recording's call sites" '"function":"commit_part"' \
  "$LIN/vmsnap" -d "$SDB" growth -j
contains "and its table names them" '  big_alloc (' "$LIN/vmsnap" -d "$SDB" growth

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

# One fleet of both: merged on Linux, and on Windows, they hold the same.
cp "$WDB" "$TMP/win.db"
FDB="$TMP/fleet.db"
check "Linux merges a Linux and a Windows database" 0 "$LIN/vmsnap" -d "$FDB" merge "$LDB" "$TMP/win.db"
contains "the fleet holds the Windows target" '"os":"windows"' "$LIN/vmsnap" -d "$FDB" -j list
contains "and the Linux one" '"os":"linux"' "$LIN/vmsnap" -d "$FDB" -j list
ZWDB="Z:$(echo "$TMP/win.db" | tr / '\\')"
ZFDB="Z:$(echo "$TMP/fleet-w.db" | tr / '\\')"
check "Windows merges them too" 0 wine "$WIN/vmsnap.exe" -d "$ZFDB" merge "$ZDB" "$ZWDB"
contains "merging again on Windows adds nothing" '"snapshots_added":0,"targets_added":0' wine "$WIN/vmsnap.exe" -d "$ZFDB" -j merge "$ZWDB"
ROWS="SELECT s.seq, t.os, r.start, r.size, r.perms, r.path, r.state, r.type FROM regions r JOIN snapshots s ON s.id = r.snapshot_id JOIN targets t ON t.id = s.target_id ORDER BY 1, 2, 3"
lin_rows=$("$LIN/vmsnap" -d "$FDB" query "$ROWS")
win_rows=$("$LIN/vmsnap" -d "$TMP/fleet-w.db" query "$ROWS")
if [ -n "$lin_rows" ] && [ "$lin_rows" = "$win_rows" ]; then
  echo "ok: both fleets hold the same regions"
  passed=$((passed + 1))
else
  echo "FAILED: the fleets merged on Linux and on Windows differ"
  failed=$((failed + 1))
fi
rm -rf "$TMP"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
