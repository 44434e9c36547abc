#!/usr/bin/env bash
# The whole test suite. It first installs what only the tests need (cmocka, clang for the
# sanitizers and fuzzers, valgrind, chromium to draw the HTML report, mingw-w64 and Wine for the
# Windows build, npm to fetch SQLite's source for it), then runs:
#   1. the Linux build and its cmocka tests, valgrind memcheck included; then the .deb cpack
#      builds, installed with apt-get, run, and removed (tests/package.sh);
#   2. the same tests built with AddressSanitizer and UndefinedBehaviorSanitizer (clang), and the
#      libFuzzer targets for a bounded time each;
#   3. the Windows build (mingw-w64) and its tests under Wine, then databases crossing between
#      the two.
# VMSNAP_SKIP_WINDOWS=1 leaves out part 3, VMSNAP_SKIP_SANITIZE=1 part 2.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, installed only when missing (so a second run needs no network);
# libdw-dev takes the call stacks of record --stacks; python3 is a program they trace;
# chromium draws the HTML report headless; procps's pmap and gdb's gcore write the pmap output
# and the core files import reads; dpkg-dev's dpkg-shlibdeps gives the .deb its Depends, and
# man-db reads its man page.
need=(cmake build-essential libsqlite3-dev libdw-dev libcmocka-dev util-linux procps gdb clang valgrind
  chromium python3 man-db dpkg-dev)
if [ "${VMSNAP_SKIP_WINDOWS:-0}" != 1 ]; then
  need+=(gcc-mingw-w64-x86-64-win32 wine64 wine)
fi
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${VMSNAP_SKIP_WINDOWS:-0}" != 1 ] && ! command -v npm >/dev/null; then
  missing+=(npm) # a NodeSource nodejs brings its own npm, and conflicts with Debian's
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  echo "test.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DVMSNAP_TESTS=ON >/dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure
# The .deb: built, installed, run, removed.
tests/package.sh build-pkg

if [ "${VMSNAP_SKIP_SANITIZE:-0}" != 1 ]; then
  CC=clang cmake -S . -B build-asan -DVMSNAP_TESTS=ON -DVMSNAP_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-asan -j2
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure
fi

if [ "${VMSNAP_SKIP_WINDOWS:-0}" = 1 ]; then
  exit 0
fi
scripts/fetch-sqlite.sh
export WINEPREFIX="$PWD/build-win/wineprefix" WINEARCH=win64 WINEDEBUG=-all
cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake \
  -DCMAKE_BUILD_TYPE=Release -DVMSNAP_TESTS=ON >/dev/null
cmake --build build-win -j2
mkdir -p "$WINEPREFIX"
wineboot --init >/dev/null 2>&1 || true
status=0
ctest --test-dir build-win --output-on-failure || status=1
tests/win/cross-db.sh build build-win || status=1
wineserver -k >/dev/null 2>&1 || true
exit $status
