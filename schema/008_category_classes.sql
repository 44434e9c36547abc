-- vmsnap schema 8: a snapshot's category totals are read from the length classes its target's
-- category intervals have, not from every class the recording could have. A category's totals
-- change at nearly every tick or at almost none, so a target's intervals fill a few short
-- classes and the open one (32): at 86,400 snapshots, 5 of the 11 classes schema 7 visited for
-- each snapshot, and the empty ones cost as much as the rest (committed bytes of each category
-- over a day: 0.75 s of index seeks, half of them for nothing). `category_classes` lists the
-- classes each target has. vmsnap runs no trigger (a crafted file's would run code), so its
-- writers keep the list: the snapshot writer notes each interval it opens or closes, a merge
-- those of the target it copied (STORE_CATEGORY_CLASS_ADD). A class can outlive its intervals
-- (a merge replaces a target's) and then costs one empty seek. Names and columns of the views
-- are as before.

CREATE TABLE category_classes (
    target_id INTEGER NOT NULL,
    n INTEGER NOT NULL, -- a length class of the target's category_spans (interval_classes.n)
    w INTEGER NOT NULL, -- its width, interval_classes.w
    PRIMARY KEY (target_id, n)
) WITHOUT ROWID;

INSERT INTO category_classes (target_id, n, w)
SELECT DISTINCT c.target_id, k.n, k.w
FROM category_spans c JOIN interval_classes k
  ON k.n = 2 * length(printf('%x', c.last_snap - c.first_snap))
           - (substr(printf('%x', c.last_snap - c.first_snap), 1, 1) < '4')
           - (c.last_snap = c.first_snap);

-- Each snapshot is joined to its target's classes (k), and each class to its range of the
-- category intervals (c): one that holds snapshot S and is of class n ends in [S, S + w - 1].
DROP VIEW category_totals;
CREATE VIEW category_totals AS
SELECT s.id        AS snapshot_id,
       c.category  AS category,
       c.regions   AS regions,
       c.mapped    AS mapped,
       c.committed AS committed,
       CASE WHEN s.detail = 'smaps' THEN c.rss END AS rss
FROM snapshots s
CROSS JOIN category_classes k ON k.target_id = s.target_id
CROSS JOIN category_spans c ON c.target_id = s.target_id
                 AND 2 * length(printf('%x', c.last_snap - c.first_snap))
                     - (substr(printf('%x', c.last_snap - c.first_snap), 1, 1) < '4')
                     - (c.last_snap = c.first_snap) = +k.n
                 AND c.last_snap BETWEEN s.id AND s.id + k.w - 1 AND c.first_snap <= s.id;
