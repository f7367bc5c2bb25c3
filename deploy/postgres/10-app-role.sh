#!/bin/sh
# First start of the database volume only (the postgres image runs /docker-entrypoint-initdb.d
# once): the application's role, which owns nothing. `manage.py migrate`, run as the owner
# (POSTGRES_USER, DATABASE_MIGRATE_URL), grants it what it needs and nothing more.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$ATTENDANCE_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE attendance_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
SQL
