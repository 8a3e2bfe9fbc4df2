-- 0001: users, the pixel event log, snapshots, admin audit log, settings.
-- Applied by `place-api migrate` as the owner role, inside one transaction.
-- current_setting('place.app_role') names the application's role (config
-- postgres.app_role); it may read and append, never rewrite the log.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text,
    password_hash text,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    is_guest      boolean NOT NULL DEFAULT false,
    is_banned     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username)) WHERE username IS NOT NULL;

-- The append-only log of placements, partitioned by day on created_at.
-- created_at is Redis TIME taken inside the placement script and carried in
-- the stream entry, so a retried insert is identical and (id, created_at)
-- deduplicates it. Partitions are created on demand by place_ensure_partition
-- and dropped whole by retention.
CREATE TABLE pixel_events (
    id         uuid        NOT NULL,           -- the placement's 128-bit id
    seq        bigint      NOT NULL,           -- canvas:seq, global order
    x          integer     NOT NULL CHECK (x >= 0 AND x < 4096),
    y          integer     NOT NULL CHECK (y >= 0 AND y < 4096),
    color      smallint    NOT NULL CHECK (color >= 0 AND color < 256),
    user_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX pixel_events_by_pixel ON pixel_events (x, y, seq DESC);
CREATE INDEX pixel_events_by_user ON pixel_events (user_id, seq DESC);
CREATE INDEX pixel_events_by_seq ON pixel_events (seq);

-- Creates the day partition holding ts if it is missing. SECURITY DEFINER so
-- the application role can call it without owning the table.
CREATE FUNCTION place_ensure_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    day  date := (ts AT TIME ZONE 'UTC')::date;
    name text := 'pixel_events_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF pixel_events FOR VALUES FROM (%L) TO (%L)',
                           name, (day::timestamp AT TIME ZONE 'UTC'),
                           ((day + 1)::timestamp AT TIME ZONE 'UTC'));
        EXCEPTION WHEN duplicate_table THEN
            NULL; -- another instance created it first
        END;
    END IF;
    RETURN name;
END $$;

CREATE TABLE canvas_snapshots (
    id         bigserial PRIMARY KEY,
    job_id     uuid UNIQUE,                 -- idempotency for the worker
    seq        bigint NOT NULL,             -- canvas:seq the image corresponds to
    width      integer NOT NULL,
    height     integer NOT NULL,
    png        bytea NOT NULL,              -- indexed PNG
    canvas_z   bytea NOT NULL,              -- zlib-compressed raw palette indices
    size_bytes integer NOT NULL,            -- length of png
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX canvas_snapshots_seq ON canvas_snapshots (seq DESC);
CREATE INDEX canvas_snapshots_created ON canvas_snapshots (created_at DESC);

CREATE TABLE admin_actions (
    id             bigserial PRIMARY KEY,
    admin_user_id  uuid NOT NULL,
    action_type    text NOT NULL,
    target_user_id uuid,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_actions_created ON admin_actions (created_at DESC);

CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    app text := current_setting('place.app_role', true);
BEGIN
    IF app IS NOT NULL AND app <> '' AND app <> current_user THEN
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', app);
        EXECUTE format('GRANT SELECT, INSERT ON pixel_events, admin_actions TO %I', app);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON users, settings TO %I', app);
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON canvas_snapshots TO %I', app);
        EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', app);
        EXECUTE format('GRANT EXECUTE ON FUNCTION place_ensure_partition(timestamptz) TO %I', app);
    END IF;
END $$;
