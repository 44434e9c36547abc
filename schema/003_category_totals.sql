-- vmsnap schema 3: per-snapshot totals by category, so growth can be charted in SQL without
-- knowing the storage. committed is mapped less what holds no memory yet: no-access ranges
-- (guard pages, reservations such as a malloc arena's PROT_NONE tail) and Windows reserve.
-- rss is NULL unless the snapshot was taken with per-region (smaps) detail.

CREATE VIEW category_totals AS
SELECT snapshot_id,
       category,
       count(*) AS regions,
       sum(size) AS mapped,
       sum(CASE WHEN substr(perms, 1, 3) = '---' OR state = 'reserve' THEN 0 ELSE size END)
           AS committed,
       sum(rss) AS rss
FROM regions
GROUP BY snapshot_id, category;
