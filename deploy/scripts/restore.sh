#!/usr/bin/env bash
# Restore a dump made by backup.sh into an EMPTY database, then re-derive what the restore
# leaves out on purpose. Stop web, workers and beat first.
#   1 check    the archive reads (pg_restore --list)
#   2 target   the database holds no table or schema of its own (--recreate: it is dropped
#              and created again first; that needs the CREATEDB right and no one connected)
#   3 restore  pg_restore --no-owner --no-privileges --single-transaction: every object is
#              the restoring role's (the owner's, who migrates next; its SECURITY DEFINER
#              functions run as it), no grant of the source comes back, and a failure
#              leaves the database as it was
#   4 migrate  manage.py migrate as the owner: grants the application's role its rights
#              (common/db_roles.py) and applies any migration newer than the dump
#   5 verify   manage.py audit_verify: the restored audit chain checks out
# Exit codes: 2 bad usage, 3 unreadable archive, 4 target not empty or not recreated,
# 5 restore failed (nothing restored), 6 migrate failed, 7 audit_verify failed.
# --dry-run prints the commands (passwords masked) and changes nothing.
# Usage: restore.sh [--dry-run] [--recreate] DUMP. Environment:
#   RESTORE_DATABASE_URL  the owner's URL of the target (default: DATABASE_MIGRATE_URL)
#   PG_BIN                a directory with pg_restore and psql (default: PATH)
#   PG_RESTORE, PSQL      whole commands instead (e.g. "docker-compose -f deploy/compose.yaml
#                         exec -T db pg_restore": the archive travels on stdin)
#   MANAGE                how to run manage.py against the target (default: "python
#                         manage.py" in the checkout; with compose: "docker-compose -f
#                         deploy/compose.yaml run --rm migrate python manage.py"); it reads
#                         DATABASE_URL and DATABASE_MIGRATE_URL, which must name the target
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DRY_RUN=0
RECREATE=0
DUMP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --recreate) RECREATE=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "restore.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    *) [ -z "$DUMP" ] || { echo "restore.sh: one dump at a time" >&2; exit 2; }; DUMP=$1 ;;
  esac
  shift
done
if [ -z "$DUMP" ] || [ ! -f "$DUMP" ]; then
  echo "restore.sh: name an existing dump file (made by backup.sh)" >&2
  exit 2
fi
URL=${RESTORE_DATABASE_URL:-${DATABASE_MIGRATE_URL:-}}
if [ -z "$URL" ]; then
  echo "restore.sh: set RESTORE_DATABASE_URL (or DATABASE_MIGRATE_URL): the owner's URL" >&2
  exit 2
fi
if [ -n "${PG_BIN:-}" ]; then
  read -r -a pg_restore <<<"${PG_RESTORE:-$PG_BIN/pg_restore}"
  read -r -a psql <<<"${PSQL:-$PG_BIN/psql}"
else
  read -r -a pg_restore <<<"${PG_RESTORE:-pg_restore}"
  read -r -a psql <<<"${PSQL:-psql}"
fi
read -r -a manage <<<"${MANAGE:-python manage.py}"
psql+=(--no-psqlrc --quiet --tuples-only --no-align --set ON_ERROR_STOP=1)

# The target database's name, and the same server's maintenance database (for --recreate).
BASE=${URL%%\?*}
QUERY=${URL:${#BASE}}
DBNAME=${BASE##*/}
MAINTENANCE="${BASE%/*}/postgres$QUERY"
if [ -z "$DBNAME" ] || [ "$BASE" = "$DBNAME" ]; then
  echo "restore.sh: the URL names no database" >&2
  exit 2
fi

masked() {
  sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#g' <<<"$*"
}

# Anything but what PostgreSQL itself puts in a new database.
FOREIGN_OBJECTS_SQL="SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_')
  + (SELECT count(*) FROM pg_namespace
     WHERE nspname NOT IN ('public', 'pg_catalog', 'information_schema') AND nspname !~ '^pg_')"
RECREATE_SQL='DROP DATABASE IF EXISTS :"dbname";
CREATE DATABASE :"dbname" TEMPLATE template0;'

list=("${pg_restore[@]}" --list)
recreate=("${psql[@]}" --set "dbname=$DBNAME" "--dbname=$MAINTENANCE")
count=("${psql[@]}" "--dbname=$URL" --command "$FOREIGN_OBJECTS_SQL")
restore=("${pg_restore[@]}" --no-owner --no-privileges --single-transaction --exit-on-error "--dbname=$URL")
migrate=("${manage[@]}" migrate --noinput)
verify=("${manage[@]}" audit_verify)

echo "+ $(masked "${list[*]}") < $DUMP"
[ "$RECREATE" = 0 ] || echo "+ $(masked "${recreate[*]}") <<< DROP DATABASE IF EXISTS $DBNAME; CREATE DATABASE $DBNAME"
echo "+ $(masked "${psql[*]}") --dbname=$(masked "$URL") (the target must hold nothing)"
echo "+ $(masked "${restore[*]}") < $DUMP"
echo "+ (cd $ROOT && ${migrate[*]})"
echo "+ (cd $ROOT && ${verify[*]})"
if [ "$DRY_RUN" = 1 ]; then
  echo "restore of $DUMP into $DBNAME (dry run): nothing changed"
  exit 0
fi

if ! "${list[@]}" <"$DUMP" >/dev/null; then
  echo "restore.sh: $DUMP is not a readable pg_dump archive" >&2
  exit 3
fi
if [ "$RECREATE" = 1 ] && ! "${recreate[@]}" <<<"$RECREATE_SQL"; then
  echo "restore.sh: could not drop and create $DBNAME (someone connected? no CREATEDB right?)" >&2
  exit 4
fi
if ! found=$("${count[@]}"); then
  echo "restore.sh: cannot connect to $DBNAME as $(masked "$URL")" >&2
  exit 4
fi
if [ "$found" != 0 ]; then
  echo "restore.sh: $DBNAME is not empty ($found tables, indexes, sequences or schemas);" \
    "restore into an empty database, or pass --recreate to drop it first" >&2
  exit 4
fi
started=$(date +%s)
if ! "${restore[@]}" <"$DUMP"; then
  echo "restore.sh: pg_restore failed; its single transaction was rolled back" >&2
  exit 5
fi
echo "restored $DUMP into $DBNAME in $(($(date +%s) - started)) s"
if ! (cd "$ROOT" && "${migrate[@]}"); then
  echo "restore.sh: migrate failed: the application's role has no rights yet" >&2
  exit 6
fi
if ! (cd "$ROOT" && "${verify[@]}"); then
  echo "restore.sh: audit_verify found the restored audit log changed (see above)" >&2
  exit 7
fi
echo "restore of $DUMP into $DBNAME: done"
