-- vmsnap schema 3: totals by category, so growth can be charted in SQL without knowing the
-- storage. Like regions, they are stored as intervals of snapshots, written only when they
-- change: `category_spans` holds, per target and category, the number of regions, mapped bytes,
-- committed bytes (mapped less what holds no memory yet: no-access ranges such as guard pages
-- and a malloc arena's PROT_NONE reservation, and Windows reserve) and the sum of per-region rss
-- (NULL when not captured), alive from first_snap to last_snap (9223372036854775807 while open).
-- Users query the `category_totals` view, one row per snapshot and category present.

CREATE TABLE category_spans (
    target_id  INTEGER NOT NULL REFERENCES targets (id),
    category   TEXT NOT NULL,
    first_snap INTEGER NOT NULL,
    last_snap  INTEGER NOT NULL,
    regions    INTEGER NOT NULL,
    mapped     INTEGER NOT NULL, -- bytes
    committed  INTEGER NOT NULL, -- bytes
    rss        INTEGER,          -- bytes
    PRIMARY KEY (target_id, category, first_snap)
) WITHOUT ROWID;
CREATE INDEX category_spans_alive ON category_spans (target_id, last_snap, first_snap);

-- Databases recorded before this schema: the totals of every snapshot, folded into intervals
-- of snapshots in a row with the same values.
INSERT INTO category_spans (target_id, category, first_snap, last_snap, regions, mapped,
                            committed, rss)
WITH per AS (
    SELECT s.target_id, s.seq, s.id, r.category, count(*) AS n, sum(r.size) AS mapped,
           sum(CASE WHEN substr(r.perms, 1, 3) = '---' OR r.state = 'reserve' THEN 0
                    ELSE r.size END) AS committed,
           sum(r.rss) AS rss
    FROM snapshots s JOIN regions r ON r.snapshot_id = s.id
    GROUP BY s.id, r.category),
marked AS (
    SELECT *, CASE WHEN lag(seq) OVER w = seq - 1 AND lag(n) OVER w = n
                        AND lag(mapped) OVER w = mapped AND lag(committed) OVER w = committed
                        AND lag(rss) OVER w IS rss THEN 0 ELSE 1 END AS brk
    FROM per WINDOW w AS (PARTITION BY target_id, category ORDER BY seq)),
islands AS (
    SELECT *, sum(brk) OVER (PARTITION BY target_id, category ORDER BY seq) AS island
    FROM marked)
SELECT target_id, category, min(id), max(id), n, mapped, committed, rss
FROM islands GROUP BY target_id, category, island;
UPDATE category_spans SET last_snap = 9223372036854775807
WHERE last_snap = (SELECT max(id) FROM snapshots WHERE target_id = category_spans.target_id);

CREATE VIEW category_totals AS
SELECT s.id        AS snapshot_id,
       c.category  AS category,
       c.regions   AS regions,
       c.mapped    AS mapped,
       c.committed AS committed,
       CASE WHEN s.detail = 'smaps' THEN c.rss END AS rss
FROM snapshots s
JOIN category_spans c ON c.target_id = s.target_id AND c.last_snap >= s.id
                     AND c.first_snap <= s.id;
