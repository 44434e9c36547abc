-- vmsnap schema 9: what a recording knew of a target's life, so that growth can tell its
-- start-up and its shutdown from a leak. `origin` says how the recording came to it: launched
-- (`record -- CMD`), forked (seen at its fork by a recording that follows children), exec (the
-- new program of a recorded process, from its exec), or found (already running when the
-- recording began). `exited_at` is when a recording saw it exit.
-- NULL where nobody said: databases of an older vmsnap keep what they recorded, and snap and
-- import know neither.

ALTER TABLE targets ADD COLUMN origin TEXT;    -- launched | forked | exec | found; NULL: not known
ALTER TABLE targets ADD COLUMN exited_at TEXT; -- UTC, ISO 8601; NULL: not seen to exit
