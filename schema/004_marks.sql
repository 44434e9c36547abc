-- vmsnap schema 4: marks. `vmsnap mark` asks every recorder running on the database to take a
-- labelled snapshot now. Recorders say here that they run (a row from start to end), so mark
-- can find and wake them; a mark is a row in `marks`, and each recorder notes the last one it
-- has taken in the transaction of the snapshot that took it.

CREATE TABLE recorders (
    id         INTEGER PRIMARY KEY,
    host       TEXT NOT NULL,
    boot_id    TEXT NOT NULL,
    pid        INTEGER NOT NULL,     -- the recording vmsnap process
    start_time INTEGER NOT NULL,     -- its start: clock ticks after boot (Linux), FILETIME (Windows)
    target_pid INTEGER NOT NULL,     -- the process it records
    started_at TEXT NOT NULL,        -- UTC, ISO 8601
    marks_done INTEGER NOT NULL      -- marks.id of the last mark it has taken (or that was
                                     -- already there when it started)
);

CREATE TABLE marks (
    id           INTEGER PRIMARY KEY,
    label        TEXT,               -- NULL: each snapshot is labelled mark-ID
    requested_at TEXT NOT NULL       -- UTC, ISO 8601
);

-- Which snapshots were taken on a mark: NULL for a scheduled one, 0 for a recorder's SIGUSR1
-- (or its Windows mark event), else the marks.id that asked for it.
ALTER TABLE snapshots ADD COLUMN mark INTEGER;
CREATE INDEX snapshots_mark ON snapshots (mark) WHERE mark IS NOT NULL;
