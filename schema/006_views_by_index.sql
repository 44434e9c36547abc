-- vmsnap schema 6: the views reach one snapshot's rows through an index however the snapshot is
-- named. SQLite (3.40) does not push `snapshot_id = (SELECT ...)` into the arms of a UNION ALL
-- view: the old `regions` scanned every snapshot when the newest was named by a subquery (43 s
-- at 2,000 snapshots). `regions` is now one SELECT: each snapshot is joined to a two-row `part`
-- (0: the regions still open, 1: those that ended), and each part's LEFT JOIN is keyed so that
-- the other part's index range is empty (target 0 owns no span). The ended spans are joined
-- first: a snapshot has fewer of them than open ones, and each row of one part pays a seek of
-- the other's empty range. `category_totals` is driven from
-- its intervals, linear in snapshots x categories (it was quadratic). Names and columns are as
-- before.

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
CROSS JOIN (SELECT 0 AS part UNION ALL SELECT 1) k
LEFT JOIN spans c ON c.target_id = s.target_id * k.part AND c.last_snap >= s.id
                 AND c.first_snap <= s.id
LEFT JOIN spans_open o ON o.id BETWEEN s.target_id * (1 - k.part) * 4294967296
                                   AND s.target_id * (1 - k.part) * 4294967296 + 4294967295
                      AND o.first_snap <= s.id
LEFT JOIN paths n ON n.id = CASE WHEN o.id IS NOT NULL THEN o.path_id ELSE c.path_id END
LEFT JOIN span_mem m ON s.detail = 'smaps' AND m.span_id = coalesce(o.id, c.id)
                    AND m.first_snap <= s.id AND m.last_snap >= s.id
WHERE o.id IS NOT NULL OR c.id IS NOT NULL;

DROP VIEW category_totals;
CREATE VIEW category_totals AS
SELECT s.id        AS snapshot_id,
       c.category  AS category,
       c.regions   AS regions,
       c.mapped    AS mapped,
       c.committed AS committed,
       CASE WHEN s.detail = 'smaps' THEN c.rss END AS rss
FROM category_spans c
CROSS JOIN snapshots s ON s.id BETWEEN c.first_snap AND c.last_snap
                      AND +s.target_id = c.target_id;
