-- vmsnap schema 7: one snapshot's rows are found without reading the history, for any
-- snapshot of any recording. An interval [first_snap, last_snap] that holds snapshot S ends at
-- or after S; indexed by (last_snap, first_snap) alone, the intervals that hold an early S are
-- found among all those that ended after it, which is nearly the whole recording (1 s for the
-- first of 86,400 snapshots). Intervals are now also indexed by their length class
--   class = 2 * length(printf('%x', d)) - (substr(printf('%x', d), 1, 1) < '4') - (d = 0)
-- for d = last_snap - first_snap: class 0 is d = 0 and class n is 4^(n-1) <= d < 4^n. One that
-- holds S and is of class n ends in [S, S + 4^n - 1], so each class is one short range of the
-- index, and what that range holds besides the answer is bounded by what is alive around S, not
-- by the length of the recording. `interval_classes` lists the classes with their width w = 4^n
-- (a class that no interval of a recording can reach is skipped: its intervals would be longer
-- than the recording). The open category totals (last_snap 9223372036854775807) are class 32;
-- S + w - 1 then overflows into a real, which is above every integer, as it should be.
-- The same stab, with S the snapshot's id, is in the views and in vmsnap's own reads
-- (STORE_SPAN_CLASS); a region's figures are the newest span_mem row that began by S.
-- Names and columns of the views are as before.

CREATE TABLE interval_classes (
    n INTEGER PRIMARY KEY, -- -1: the regions still open (spans_open); 0..32: a length class
    w INTEGER NOT NULL     -- 4^n: every interval of class n is shorter
);
WITH RECURSIVE c(n, w) AS (SELECT 0, 1 UNION ALL SELECT n + 1, w * 4 FROM c WHERE n < 31)
INSERT INTO interval_classes SELECT -1, 0 UNION ALL SELECT n, w FROM c
UNION ALL SELECT 32, 9223372036854775807;

DROP INDEX spans_alive;
CREATE INDEX spans_by_length ON spans (target_id,
    2 * length(printf('%x', last_snap - first_snap))
      - (substr(printf('%x', last_snap - first_snap), 1, 1) < '4') - (last_snap = first_snap),
    last_snap, first_snap);

-- Covering: a snapshot's totals are read from the index alone.
DROP INDEX category_spans_alive;
CREATE INDEX category_spans_by_length ON category_spans (target_id,
    2 * length(printf('%x', last_snap - first_snap))
      - (substr(printf('%x', last_snap - first_snap), 1, 1) < '4') - (last_snap = first_snap),
    last_snap, first_snap, category, regions, mapped, committed, rss);

-- Each snapshot is joined to the classes (k), and each class to its range of the ended spans
-- (c), or, for n = -1, to the target's rowid range of the open ones (o); the other part's range
-- is empty (target 0 owns no span). The `+k.n` keeps SQLite 3.40 matching the indexed class.
DROP VIEW regions;
CREATE VIEW regions AS
SELECT s.id AS snapshot_id,
       coalesce(o.start, c.start) AS start,
       coalesce(o."end", c."end") AS "end",
       coalesce(o."end", c."end") - coalesce(o.start, c.start) AS size,
       coalesce(o.perms, c.perms) AS perms,
       coalesce(o.offset, c.offset) AS offset,
       coalesce(o.dev, c.dev) AS dev,
       coalesce(o.inode, c.inode) AS inode,
       n.path AS path,
       coalesce(o.category, c.category) AS category,
       m.rss AS rss,
       m.pss AS pss,
       m.private_dirty AS private_dirty,
       m.anonymous AS anonymous,
       m.swap AS swap,
       CASE WHEN o.id IS NOT NULL THEN o.state ELSE c.state END AS state,
       CASE WHEN o.id IS NOT NULL THEN o.type ELSE c.type END AS type,
       CASE WHEN o.id IS NOT NULL THEN o.protect ELSE c.protect END AS protect,
       CASE WHEN o.id IS NOT NULL THEN o.alloc_base ELSE c.alloc_base END AS alloc_base,
       CASE WHEN o.id IS NOT NULL THEN o.alloc_protect ELSE c.alloc_protect END AS alloc_protect,
       coalesce(o.deleted, c.deleted) AS deleted,
       CASE WHEN o.id IS NOT NULL THEN o.owner ELSE c.owner END AS owner
FROM snapshots s
CROSS JOIN interval_classes k
LEFT JOIN spans c ON c.target_id = s.target_id
                 AND 2 * length(printf('%x', c.last_snap - c.first_snap))
                     - (substr(printf('%x', c.last_snap - c.first_snap), 1, 1) < '4')
                     - (c.last_snap = c.first_snap) = +k.n
                 AND c.last_snap BETWEEN s.id AND s.id + k.w - 1 AND c.first_snap <= s.id
LEFT JOIN spans_open o ON o.id BETWEEN s.target_id * (k.n < 0) * 4294967296
                                   AND s.target_id * (k.n < 0) * 4294967296 + 4294967295
                      AND o.first_snap <= s.id
LEFT JOIN paths n ON n.id = CASE WHEN o.id IS NOT NULL THEN o.path_id ELSE c.path_id END
LEFT JOIN span_mem m ON s.detail = 'smaps' AND m.span_id = coalesce(o.id, c.id)
                    AND m.first_snap = (SELECT x.first_snap FROM span_mem x
                                        WHERE x.span_id = coalesce(o.id, c.id)
                                          AND x.first_snap <= s.id
                                        ORDER BY x.first_snap DESC LIMIT 1)
                    AND m.last_snap >= s.id
WHERE (o.id IS NOT NULL OR c.id IS NOT NULL)
  AND (k.n < 0 OR k.w / 4 <= (SELECT max(id) FROM snapshots));

DROP VIEW category_totals;
CREATE VIEW category_totals AS
SELECT s.id        AS snapshot_id,
       c.category  AS category,
       c.regions   AS regions,
       c.mapped    AS mapped,
       c.committed AS committed,
       CASE WHEN s.detail = 'smaps' THEN c.rss END AS rss
FROM snapshots s
CROSS JOIN interval_classes k
CROSS JOIN category_spans c ON c.target_id = s.target_id
                 AND 2 * length(printf('%x', c.last_snap - c.first_snap))
                     - (substr(printf('%x', c.last_snap - c.first_snap), 1, 1) < '4')
                     - (c.last_snap = c.first_snap) = +k.n
                 AND c.last_snap BETWEEN s.id AND s.id + k.w - 1 AND c.first_snap <= s.id
WHERE k.n >= 0 AND (k.w / 4 <= (SELECT max(id) FROM snapshots) OR k.n = 32);
