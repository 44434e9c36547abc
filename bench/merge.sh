#!/usr/bin/env bash
# vmsnap merge at scale: FILES databases of about SIZE_MIB each, merged into one. Each is a real
# recording (a vm_child holding 20,000 regions whose protections flip while it is recorded with
# smaps figures), copied by SQL into many targets of other boots until the file has its size.
# Prints peak RSS of merging one file and all FILES (it must not grow with the input), the
# merged file's size, and the time against SQLite's VACUUM INTO of the same files (the peer:
# SQLite writing the same rows and indexes) and cat (reading them once).
#   bench/merge.sh [FILES] [SIZE_MIB]        default 10 1024 (needs ~3 x FILES x SIZE of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
FILES=${1:-10}
SIZE_MIB=${2:-1024}
build_release
build_rusage
V="$PWD/$OUT/build/vmsnap"
CHILD="$PWD/$OUT/build/tests/vm_child"
RU="$PWD/$OUT/rusage"
W="$OUT/merge"
rm -rf "$W"
mkdir -p "$W"
trap 'rm -rf "$W"' EXIT

# The recording every file is made of.
rm -f "$W/in" "$W/out"
mkfifo "$W/in" "$W/out"
"$CHILD" <"$W/in" >"$W/out" &
exec 3>"$W/in" 4<"$W/out"
ask() { echo "$1" >&3; read -r reply <&4; echo "$reply"; }
PID=$(ask pid | cut -d' ' -f2)
ask "many 20000" >/dev/null
ask "flip 200 5" >/dev/null
"$V" -d "$W/base.db" record -p "$PID" -i 20ms -n 100 --detail smaps >/dev/null
ask "flip 0 0" >/dev/null
echo "exit 0" >&3
exec 3>&- 4<&-

# Copies of the base's one target, each on another boot, until the file holds SIZE_MIB.
python3 - "$W/base.db" "$W/f1.db" "$SIZE_MIB" <<'EOF'
import shutil, sqlite3, sys
base, out, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
shutil.copyfile(base, out)
db = sqlite3.connect(out, isolation_level=None)
n = db.execute("SELECT max(id) FROM snapshots").fetchone()[0]
assert db.execute("SELECT count(*) FROM targets").fetchone()[0] == 1
OPEN = 9223372036854775807
def cols(table):
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
def clone(k):
    off, t = k * n, k + 1
    shift = f"(({t} << 32) - (1 << 32))"
    expr = {"targets": {"id": str(t), "boot_id": f"boot_id || '-copy-{k}'"},
            "snapshots": {"id": f"id + {off}", "target_id": str(t)},
            "spans_open": {"id": f"id + {shift}", "target_id": str(t),
                           "first_snap": f"first_snap + {off}"},
            "spans": {"id": f"id + {shift}", "target_id": str(t),
                      "first_snap": f"first_snap + {off}", "last_snap": f"last_snap + {off}"},
            "span_mem": {"span_id": f"span_id + {shift}", "first_snap": f"first_snap + {off}",
                         "last_snap": f"CASE WHEN last_snap = {OPEN} THEN last_snap "
                                      f"ELSE last_snap + {off} END"},
            "category_spans": {"target_id": str(t), "first_snap": f"first_snap + {off}",
                               "last_snap": f"CASE WHEN last_snap = {OPEN} THEN last_snap "
                                            f"ELSE last_snap + {off} END"}}
    where = {"targets": "id = 1", "snapshots": "target_id = 1", "spans_open": "target_id = 1",
             "spans": "target_id = 1", "span_mem": "span_id BETWEEN 1 << 32 AND (2 << 32) - 1",
             "category_spans": "target_id = 1"}
    db.execute("BEGIN")
    for table, e in expr.items():
        c = cols(table)
        sel = ", ".join(e.get(x, f'"{x}"') for x in c)
        names = ", ".join(f'"{x}"' for x in c)
        db.execute(f"INSERT INTO {table} ({names}) SELECT {sel} FROM {table} WHERE {where[table]}")
    db.execute("COMMIT")
k = 1
while True:
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    if pages * db.execute("PRAGMA page_size").fetchone()[0] >= size_mib << 20:
        break
    clone(k)
    k += 1
print(f"{k} targets of {n} snapshots", file=sys.stderr)
EOF
for ((i = 2; i <= FILES; i++)); do
  cp "$W/f1.db" "$W/f$i.db"
  python3 -c "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.execute(\"UPDATE targets SET boot_id = boot_id || '-file-$i'\"); d.commit()" "$W/f$i.db"
done
files=()
for ((i = 1; i <= FILES; i++)); do files+=("$W/f$i.db"); done
IN_MIB=$(du -cm "${files[@]}" | tail -1 | cut -f1)

# cat reads every file once (what merging them cannot do with less).
t0=$(ns); cat "${files[@]}" >/dev/null; t1=$(ns)
CAT_MS=$(((t1 - t0) / 1000000))
# SQLite rewriting the same rows and indexes, file by file (VACUUM INTO): the floor for a copy
# that goes through SQLite.
t0=$(ns)
for f in "${files[@]}"; do
  rm -f "$W/vac.db"
  python3 -c "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('VACUUM INTO ?', (sys.argv[2],))" "$f" "$W/vac.db"
done
t1=$(ns)
rm -f "$W/vac.db"
VAC_MS=$(((t1 - t0) / 1000000))
one=$("$RU" "$V" -d "$W/one.db" merge "$W/f1.db" 2>&1 >/dev/null | tail -1)
all=$("$RU" "$V" -d "$W/fleet.db" merge "${files[@]}" 2>&1 >/dev/null | tail -1)
again=$("$RU" "$V" -d "$W/fleet.db" merge "${files[@]}" 2>&1 >/dev/null | tail -1)
OUT_MIB=$(du -m "$W/fleet.db" | cut -f1)
ms() { awk '{ printf "%d", $4 * 1000 }' <<<"$1"; }
kb() { cut -d' ' -f1 <<<"$1"; }
echo "merge of $FILES files, $IN_MIB MiB in all (each $(du -m "$W/f1.db" | cut -f1) MiB), into $OUT_MIB MiB:"
echo "  peak RSS: one file $(($(kb "$one") / 1024)) MiB, all $FILES $(($(kb "$all") / 1024)) MiB, again (adds nothing) $(($(kb "$again") / 1024)) MiB"
echo "  time: all $FILES $(ms "$all") ms = $(ratio "$(ms "$all")" "$VAC_MS")x SQLite's VACUUM INTO of each ($VAC_MS ms), $(ratio "$(ms "$all")" "$CAT_MS")x cat of them ($CAT_MS ms, cached)"
echo "  again (adds nothing): $(ms "$again") ms, most of it the check of the merged file every write opens with"
