-- vmsnap schema 1: targets, snapshots, and regions stored as intervals of snapshots.
--
-- A region is stored once, with the snapshot range in which it was alive: first_snap ..
-- last_snap (snapshot ids of its target, inclusive). While alive it sits in `spans_open`; when
-- it ends it moves to `spans` with its last_snap. Per-region memory figures live in `span_mem`,
-- as intervals written only when they change (an open interval's last_snap is
-- 9223372036854775807). Users query the `regions` view, never these.
--
-- Addresses are unsigned 64-bit values stored as SQLite's signed 64-bit integers (two's
-- complement): [vsyscall] at 0xffffffffff600000 reads as a negative number in SQL, and
-- printf('%x', start) shows its hex; "end" - start is its size either way.

CREATE TABLE targets (
    id         INTEGER PRIMARY KEY,
    pid        INTEGER NOT NULL,
    start_time INTEGER NOT NULL, -- clock ticks after boot (Linux), FILETIME (Windows)
    exe        TEXT,
    cmdline    TEXT,
    host       TEXT,
    os         TEXT NOT NULL,
    boot_id    TEXT NOT NULL,
    exec_key   TEXT NOT NULL,    -- changes when the process execs: a new target
    first_seen TEXT NOT NULL,    -- UTC, ISO 8601
    UNIQUE (boot_id, pid, start_time, exec_key)
);

CREATE TABLE snapshots (
    id           INTEGER PRIMARY KEY,
    target_id    INTEGER NOT NULL REFERENCES targets (id),
    seq          INTEGER NOT NULL, -- 1, 2, ... within the target
    taken_at     TEXT NOT NULL,    -- UTC, ISO 8601 with milliseconds
    label        TEXT,
    region_count INTEGER NOT NULL,
    mapped_bytes INTEGER NOT NULL,
    rss_bytes    INTEGER,          -- NULL when the detail level did not read memory figures
    pss_bytes    INTEGER,
    private_dirty_bytes INTEGER,
    anon_bytes   INTEGER,
    swap_bytes   INTEGER,
    detail       TEXT NOT NULL,    -- maps | rollup | smaps
    method       TEXT NOT NULL,    -- maps | smaps | procmap_query | virtualquery
    torn         INTEGER NOT NULL DEFAULT 0, -- 1: reads stayed inconsistent; overlaps dropped
    retries      INTEGER NOT NULL DEFAULT 0, -- re-reads after torn reads
    duration_us  INTEGER,          -- time the walk took, microseconds
    UNIQUE (target_id, seq)
);
CREATE INDEX snapshots_label ON snapshots (label) WHERE label IS NOT NULL;

CREATE TABLE paths (
    id   INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE
);

-- Regions alive in their target's newest snapshot. The id is (target_id << 32) + n, so one
-- target's open regions are one rowid range and no index has to be kept up to date while a
-- first snapshot inserts tens of thousands of them.
CREATE TABLE spans_open (
    id         INTEGER PRIMARY KEY,
    target_id  INTEGER NOT NULL REFERENCES targets (id),
    first_snap INTEGER NOT NULL,
    start      INTEGER NOT NULL,
    "end"      INTEGER NOT NULL,
    perms      TEXT NOT NULL,
    offset     INTEGER NOT NULL,
    dev        TEXT NOT NULL,
    inode      INTEGER NOT NULL,
    path_id    INTEGER REFERENCES paths (id),
    category   TEXT NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    state      TEXT,
    type       TEXT,
    protect    INTEGER,
    alloc_base INTEGER,
    alloc_protect INTEGER
);

-- Regions that ended: alive from first_snap to last_snap, moved here (same id) when they close.
CREATE TABLE spans (
    id         INTEGER PRIMARY KEY,
    target_id  INTEGER NOT NULL REFERENCES targets (id),
    first_snap INTEGER NOT NULL,
    last_snap  INTEGER NOT NULL,
    start      INTEGER NOT NULL,
    "end"      INTEGER NOT NULL,
    perms      TEXT NOT NULL,
    offset     INTEGER NOT NULL,
    dev        TEXT NOT NULL,
    inode      INTEGER NOT NULL,
    path_id    INTEGER REFERENCES paths (id),
    category   TEXT NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    state      TEXT,
    type       TEXT,
    protect    INTEGER,
    alloc_base INTEGER,
    alloc_protect INTEGER
);
-- The ended regions alive at snapshot S are one range: last_snap >= S, then first_snap <= S.
-- It also finds the regions that closed between two snapshots.
CREATE INDEX spans_alive ON spans (target_id, last_snap, first_snap);

CREATE TABLE span_mem (
    span_id       INTEGER NOT NULL REFERENCES spans (id),
    first_snap    INTEGER NOT NULL,
    last_snap     INTEGER NOT NULL,
    rss           INTEGER NOT NULL, -- bytes
    pss           INTEGER NOT NULL,
    private_dirty INTEGER NOT NULL,
    anonymous     INTEGER NOT NULL,
    swap          INTEGER NOT NULL,
    PRIMARY KEY (span_id, first_snap)
) WITHOUT ROWID;
