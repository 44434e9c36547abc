#!/usr/bin/env bash
# The .deb, as a Debian user gets it: built by cpack from a Release tree, installed with
# apt-get (which resolves its Depends), then `vmsnap --version`, `man -w vmsnap`, the bash
# completion and a real snapshot from the installed files, and removed again. Without root it
# unpacks the package into a scratch directory and checks the same files there.
#   tests/package.sh BUILD_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-pkg}
passed=0
failed=0
check() { # check NAME COMMAND...
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAILED: $name: $out"
    failed=$((failed + 1))
  fi
}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$B" -j2 >/dev/null ||
  { echo "package.sh: the build failed" >&2; exit 1; }
rm -f "$B"/vmsnap_*.deb
(cd "$B" && cpack -G DEB >/dev/null) || { echo "package.sh: cpack failed" >&2; exit 1; }
DEB=$(ls "$B"/vmsnap_*_*.deb)
check "cpack made $(basename "$DEB")" test -f "$DEB"
check "its Depends come from the libraries it links" \
  sh -c "dpkg-deb -f '$DEB' Depends | grep -q libsqlite3 && dpkg-deb -f '$DEB' Depends | grep -q libdw1"
check "it holds the binary, the man page and the completion" sh -c "dpkg-deb -c '$DEB' |
  grep -q ' ./usr/bin/vmsnap$' && dpkg-deb -c '$DEB' | grep -q ' ./usr/share/man/man1/vmsnap.1.gz$' &&
  dpkg-deb -c '$DEB' | grep -q ' ./usr/share/bash-completion/completions/vmsnap$'"

if [ "$(id -u)" = 0 ] && ! dpkg-query -W vmsnap >/dev/null 2>&1; then
  check "apt-get installs it" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$DEB")"
  ROOT=
  VM=/usr/bin/vmsnap
  MANW() { man -w vmsnap; }
  installed=1
else
  # Not root, or a vmsnap package is there already (never replaced by a test): unpacked.
  ROOT=$(mktemp -d)
  dpkg-deb -x "$DEB" "$ROOT"
  VM=$ROOT/usr/bin/vmsnap
  MANW() { MANPATH=$ROOT/usr/share/man man -w vmsnap; }
  installed=0
fi
check "vmsnap --version" sh -c "'$VM' --version | grep -q '^vmsnap '"
check "man -w vmsnap finds the page" sh -c "$(declare -f MANW); MANW | grep -q 'man1/vmsnap.1.gz'"
check "the page reads without a warning" sh -c \
  "zcat '$ROOT/usr/share/man/man1/vmsnap.1.gz' | MANWIDTH=80 man -l - 2>&1 >/dev/null | grep -c . | grep -qx 0"
check "bash completes its commands" bash -c \
  ". '$ROOT/usr/share/bash-completion/completions/vmsnap'; COMP_WORDS=(vmsnap gr); COMP_CWORD=1;
   _vmsnap; [ \"\${COMPREPLY[*]}\" = growth ]"
check "and a command's options and categories" bash -c \
  ". '$ROOT/usr/share/bash-completion/completions/vmsnap'; COMP_WORDS=(vmsnap show --category h);
   COMP_CWORD=3; _vmsnap; [ \"\${COMPREPLY[*]}\" = heap ]"
# Every category show --help names is one the completion offers.
cats=$("$VM" show --help | tr '\n' ' ' | sed -n 's/.*this category: \([a-z, ]*\).*/\1/p' | tr -d ',')
check "the completion offers every category ($cats)" bash -c \
  ". '$ROOT/usr/share/bash-completion/completions/vmsnap'; COMP_WORDS=(vmsnap show --category '');
   COMP_CWORD=3; _vmsnap; [ -n '$cats' ] && for c in $cats; do [[ \" \${COMPREPLY[*]} \" == *\" \$c \"* ]] || exit 1; done"
TMPD=$(mktemp -d)
sleep 30 &
SP=$!
check "the installed vmsnap takes a snapshot" "$VM" -d "$TMPD/p.db" snap -p "$SP"
check "and shows it" sh -c "'$VM' -d '$TMPD/p.db' show last | grep -q '^snapshot 1 '"
kill "$SP" 2>/dev/null
rm -rf "$TMPD"
if [ "$installed" = 1 ]; then
  check "apt-get removes it" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq vmsnap
  check "and nothing of it is left" sh -c "! test -e /usr/bin/vmsnap && ! test -e /usr/share/man/man1/vmsnap.1.gz"
else
  rm -rf "$ROOT"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
