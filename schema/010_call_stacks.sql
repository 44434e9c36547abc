-- vmsnap schema 10: call stacks (`record --stacks`). Every call a traced program makes that
-- changes its address space (mmap, munmap, mremap, mprotect, brk, shmat, shmdt) is an event,
-- with the stack of the thread that made it. A stack is stored once, however many calls share
-- it: its frames raw as recorded (the module's file, its build id, the address in that file),
-- and the function, source file and line they name, filled from the module while it is known
-- to be the one that ran (NULL where it has no symbols).

CREATE TABLE stacks (
    id     INTEGER PRIMARY KEY,
    frames BLOB NOT NULL UNIQUE -- the raw frames, as the recorder compares stacks
);

CREATE TABLE stack_frames (
    stack_id INTEGER NOT NULL REFERENCES stacks (id),
    depth    INTEGER NOT NULL, -- 0: the innermost frame (where the call was made)
    module   TEXT NOT NULL,    -- the module's file as the process mapped it; '' when unknown
    build_id TEXT NOT NULL,    -- its GNU build id in hex; '' when it has none
    offset   INTEGER NOT NULL, -- the address in the module's ELF file (a caller's: its call)
    function TEXT,             -- NULL: not known
    file     TEXT,
    line     INTEGER,
    PRIMARY KEY (stack_id, depth)
) WITHOUT ROWID;

CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    target_id INTEGER NOT NULL REFERENCES targets (id),
    tid       INTEGER NOT NULL,  -- the calling thread
    taken_at  TEXT NOT NULL,     -- UTC, ISO 8601 with milliseconds, when the call returned
    call      TEXT NOT NULL,     -- mmap | munmap | mremap | mprotect | brk | shmat | shmdt
    start     INTEGER NOT NULL,  -- the range the call acted on: mmap's mapping, the range
    "end"     INTEGER NOT NULL,  -- unmapped or protected, mremap's old range, brk's old and
                                 -- new break (lower first), shmat's segment
    prot      INTEGER,           -- mmap, mprotect: PROT_* bits
    flags     INTEGER,           -- mmap, mremap: MAP_* / MREMAP_* bits
    new_size  INTEGER,           -- mremap: the new size (at result)
    result    INTEGER NOT NULL,  -- what it returned: an address, 0, or -errno
    stack_id  INTEGER REFERENCES stacks (id) -- NULL: not unwound
);
CREATE INDEX events_by_target ON events (target_id, id);
