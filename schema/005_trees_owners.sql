-- vmsnap schema 5: process trees and region owners. A target forked by another recorded one
-- names it in parent_target_id. A region may carry its owner: "thread TID (NAME)" for a
-- thread's stack, "malloc arena" for a glibc arena, the name given with PR_SET_VMA_ANON_NAME,
-- "heap N" on Windows; NULL when unknown. The owner is part of a region's identity in storage
-- (a stack that learns its thread's name is a new span), so the regions view shows what each
-- capture saw.

ALTER TABLE targets ADD COLUMN parent_target_id INTEGER REFERENCES targets (id);
ALTER TABLE spans_open ADD COLUMN owner TEXT;
ALTER TABLE spans ADD COLUMN owner TEXT;

DROP VIEW regions;
CREATE VIEW regions AS
SELECT s.id            AS snapshot_id,
       p.start         AS start,
       p."end"         AS "end",
       p."end" - p.start AS size,
       p.perms         AS perms,
       p.offset        AS offset,
       p.dev           AS dev,
       p.inode         AS inode,
       n.path          AS path,
       p.category      AS category,
       m.rss           AS rss,
       m.pss           AS pss,
       m.private_dirty AS private_dirty,
       m.anonymous     AS anonymous,
       m.swap          AS swap,
       p.state         AS state,
       p.type          AS type,
       p.protect       AS protect,
       p.alloc_base    AS alloc_base,
       p.alloc_protect AS alloc_protect,
       p.deleted       AS deleted,
       p.owner         AS owner
FROM snapshots s
CROSS JOIN spans_open p ON p.id BETWEEN s.target_id * 4294967296
                                    AND s.target_id * 4294967296 + 4294967295
                       AND p.first_snap <= s.id
LEFT JOIN paths n ON n.id = p.path_id
LEFT JOIN span_mem m ON s.detail = 'smaps' AND m.span_id = p.id
                    AND m.first_snap <= s.id AND m.last_snap >= s.id
UNION ALL
SELECT s.id, p.start, p."end", p."end" - p.start, p.perms, p.offset, p.dev, p.inode, n.path,
       p.category, m.rss, m.pss, m.private_dirty, m.anonymous, m.swap, p.state, p.type,
       p.protect, p.alloc_base, p.alloc_protect, p.deleted, p.owner
FROM snapshots s
CROSS JOIN spans p ON p.target_id = s.target_id AND p.last_snap >= s.id AND p.first_snap <= s.id
LEFT JOIN paths n ON n.id = p.path_id
LEFT JOIN span_mem m ON s.detail = 'smaps' AND m.span_id = p.id
                    AND m.first_snap <= s.id AND m.last_snap >= s.id;
