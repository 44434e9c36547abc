#!/usr/bin/env bash
# The whole test suite: the Linux build and its cmocka tests, then the Windows build
# (mingw-w64) and its tests under Wine, then databases crossing between the two.
# Set VMSNAP_SKIP_WINDOWS=1 to run the Linux part alone.
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build -DVMSNAP_TESTS=ON >/dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure

if [ "${VMSNAP_SKIP_WINDOWS:-0}" = 1 ]; then
  exit 0
fi
for tool in x86_64-w64-mingw32-gcc wine npm; do
  command -v "$tool" >/dev/null || {
    echo "test.sh: $tool is missing: install gcc-mingw-w64-x86-64-win32 wine64 wine npm" >&2
    exit 2
  }
done
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
