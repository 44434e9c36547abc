#!/usr/bin/env bash
# Fetches SQLite's amalgamation (sqlite3.c, sqlite3.h) for the Windows build, where no system
# SQLite exists. It comes from a pinned version of the better-sqlite3 package, which ships the
# amalgamation, fetched with npm and checked against a recorded sha256. Nothing is committed.
#   scripts/fetch-sqlite.sh [DEST]      default DEST: third_party/sqlite
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE=better-sqlite3
VERSION=11.10.0                      # ships SQLite 3.49.2
SHA256=71e2d66a44dafc35649ff82742cf4908557fc31841108d19703b74b7065c0293
DEST=${1:-third_party/sqlite}
CACHE=third_party/cache
TARBALL="$CACHE/$PACKAGE-$VERSION.tgz"

if [ -f "$DEST/sqlite3.c" ] && [ -f "$DEST/sqlite3.h" ] && [ -f "$DEST/.sha256" ] &&
  [ "$(cat "$DEST/.sha256")" = "$SHA256" ]; then
  exit 0
fi
mkdir -p "$CACHE" "$DEST"
if [ ! -f "$TARBALL" ] || ! echo "$SHA256  $TARBALL" | sha256sum -c --status; then
  command -v npm >/dev/null || { echo "fetch-sqlite: npm is needed (apt-get install npm)" >&2; exit 2; }
  rm -f "$TARBALL"
  (cd "$CACHE" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
fi
if ! echo "$SHA256  $TARBALL" | sha256sum -c --status; then
  echo "fetch-sqlite: $TARBALL does not match the recorded sha256 $SHA256" >&2
  exit 2
fi
tar -xzf "$TARBALL" -C "$DEST" --strip-components=3 \
  package/deps/sqlite3/sqlite3.c package/deps/sqlite3/sqlite3.h
echo "$SHA256" >"$DEST/.sha256"
echo "fetch-sqlite: SQLite $(grep -m1 '#define SQLITE_VERSION ' "$DEST/sqlite3.h" | awk '{print $3}') in $DEST"
