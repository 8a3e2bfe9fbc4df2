-- 0004: pixel_events is keyed by (seq, created_at) instead of (id, created_at).
-- Applied by `place-api migrate` as the owner role, inside one transaction.
--
-- Why: every placement gets its seq (INCR canvas:seq) inside the same script
-- that gives it its id, and seq is never reused (on reconnect the api raises
-- canvas:seq to the largest seq in PostgreSQL), so seq identifies a placement
-- as well as id does and a retried row still conflicts with itself. But id
-- is random, so its unique index took every insert at a random leaf, while
-- seq only grows: its index appends at the right edge. The same index serves
-- the seq-ordered reads (replay, rebuild, latest events), so the separate
-- index on seq goes. Measured with 600,000 rows inserted into an empty copy of
-- the table: 6.1 s with the old indexes, 3.9 s with these.
-- On a large table the new key is built partition by partition under an
-- exclusive lock: the sinks wait (placements stay in the Redis stream, and
-- placing is not held up; history reads wait too) and catch up once it is
-- committed.
ALTER TABLE pixel_events DROP CONSTRAINT pixel_events_pkey;
ALTER TABLE pixel_events ADD PRIMARY KEY (seq, created_at);
DROP INDEX pixel_events_by_seq;
