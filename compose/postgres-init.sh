#!/bin/sh
# Run once by the postgres image on an empty data volume (mounted into
# /docker-entrypoint-initdb.d/ by compose/docker-compose.yml): creates the
# application role `place`. The database `place` and its owner, the superuser
# place_owner, come from POSTGRES_DB / POSTGRES_USER.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$PG_APP_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE place LOGIN PASSWORD :'pw';
SQL
