-- 0003: background jobs (the outbox in front of RabbitMQ), timelapse outputs,
-- and the retention helper that drops old pixel_events partitions.
-- Applied by `place-api migrate` as the owner role, inside one transaction.

-- One row per job, written before any message exists: the api (or
-- `place-worker enqueue`) inserts it and answers at once; a relay thread in
-- the api publishes rows whose published_at is NULL to RabbitMQ with
-- publisher confirms and then sets published_at. The message only wakes a
-- worker; the worker reads kind and params from here and writes status,
-- progress and the result refs back. So a RabbitMQ outage never fails a
-- request, and a redelivered message finds the job done and does nothing.
CREATE TABLE jobs (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('snapshot', 'timelapse', 'retention')),
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress     real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    error        text,                     -- last failure (kept when a retry succeeds)
    attempts     integer NOT NULL DEFAULT 0, -- runs started by workers
    result       jsonb,                    -- refs to outputs, e.g. {"snapshotId": 12}
    slot         bigint,                   -- periodic snapshots: the interval's number
    requested_by uuid,                     -- user (timelapse) or admin (snapshot), if any
    published_at timestamptz,              -- NULL until RabbitMQ confirmed the message
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX jobs_unpublished ON jobs (created_at) WHERE published_at IS NULL;
-- one periodic snapshot per interval, however many api instances ask
CREATE UNIQUE INDEX jobs_slot ON jobs (kind, slot) WHERE slot IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Wakes the relays (LISTEN place_jobs) as soon as a job row is committed.
CREATE FUNCTION place_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('place_jobs', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION place_jobs_notify();

-- The APNG of a finished timelapse job (one row per job; the worker inserts
-- it in the same transaction that marks the job done).
CREATE TABLE timelapses (
    job_id     uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    apng       bytea NOT NULL,
    size_bytes bigint NOT NULL,
    frames     integer NOT NULL,
    fps        integer NOT NULL,
    width      integer NOT NULL,
    height     integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- already deflated: do not let TOAST try to compress it again
ALTER TABLE timelapses ALTER COLUMN apng SET STORAGE EXTERNAL;

-- Drops the day partitions of pixel_events that end at or before ts, but
-- never one holding an event newer than the newest snapshot (the rebuild
-- starts from that snapshot and needs every later event), and nothing at all
-- while there is no snapshot. Returns the names dropped. SECURITY DEFINER:
-- the application role may call it but owns no DDL rights itself. If
-- pixel_events is not partitioned, the same rule deletes rows instead.
CREATE FUNCTION place_drop_partitions_before(ts timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    snap_seq bigint;
    first_after timestamptz;
    cutoff timestamptz := ts;
    part record;
    upper_bound timestamptz;
BEGIN
    SELECT max(seq) INTO snap_seq FROM canvas_snapshots;
    IF snap_seq IS NULL THEN
        RETURN;
    END IF;
    SELECT created_at INTO first_after FROM pixel_events WHERE seq > snap_seq
    ORDER BY seq LIMIT 1;
    IF first_after IS NOT NULL AND first_after < cutoff THEN
        cutoff := first_after;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = 'pixel_events'::regclass) <> 'p' THEN
        DELETE FROM pixel_events WHERE created_at < cutoff AND seq <= snap_seq;
        RETURN;
    END IF;
    FOR part IN
        SELECT c.relname AS name
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'pixel_events'::regclass
          AND c.relname ~ '^pixel_events_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        upper_bound := ((to_date(substr(part.name, 15), 'YYYYMMDD') + 1)::timestamp
                        AT TIME ZONE 'UTC');
        IF upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.name);
            RETURN NEXT part.name;
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION place_drop_partitions_before(timestamptz) FROM PUBLIC;

DO $$
DECLARE
    app text := current_setting('place.app_role', true);
BEGIN
    IF app IS NOT NULL AND app <> '' AND app <> current_user THEN
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO %I', app);
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON timelapses TO %I', app);
        EXECUTE format('GRANT EXECUTE ON FUNCTION place_drop_partitions_before(timestamptz) TO %I',
                       app);
    END IF;
END $$;
