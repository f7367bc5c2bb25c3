#!/usr/bin/env bash
# Back up the application's PostgreSQL database in pg_dump's custom format:
#   1 dump   pg_dump --format=custom as the owner, into BACKUP_DIR/attendance-<UTC time>.dump
#            (written as .partial first: a failed run never leaves a file that looks good)
#   2 check  pg_restore reads the whole archive back, every data block (to /dev/null)
#   3 keep   the file takes its name, BACKUP_STAMP is rewritten (GATES_BACKUP_STAMP points at
#            it: the decision gate checks its age), and only the newest BACKUP_KEEP dumps stay
# The upload stage tables (schema attendance_scratch) are left out: they are scratch, and an
# upload whose table is missing is read again from its file. Exit codes: 2 bad usage, 3 the
# dump failed, 4 the dump does not read back, 5 the stamp or the pruning failed.
# --dry-run prints the commands (passwords masked) and changes nothing.
# Options: --dir DIR (BACKUP_DIR), --keep N (BACKUP_KEEP). Environment:
#   BACKUP_DATABASE_URL  the owner's URL (default: DATABASE_MIGRATE_URL)
#   BACKUP_DIR           default /var/backups/attendance     BACKUP_KEEP  default 14
#   BACKUP_STAMP         default BACKUP_DIR/last-backup.stamp
#   PG_BIN               a directory with pg_dump and pg_restore (default: PATH); they must be
#                        at least the server's major version
#   PG_DUMP, PG_RESTORE  whole commands instead, e.g. PG_DUMP="docker-compose -f
#                        deploy/compose.yaml exec -T db pg_dump" (the archive travels on
#                        stdout/stdin, so the tools may run inside the database container)
set -uo pipefail

DRY_RUN=0
BACKUP_DIR=${BACKUP_DIR:-/var/backups/attendance}
BACKUP_KEEP=${BACKUP_KEEP:-14}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --dir) [ $# -ge 2 ] || { echo "backup.sh: --dir needs a directory" >&2; exit 2; }; BACKUP_DIR=$2; shift ;;
    --keep) [ $# -ge 2 ] || { echo "backup.sh: --keep needs a number" >&2; exit 2; }; BACKUP_KEEP=$2; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "backup.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

URL=${BACKUP_DATABASE_URL:-${DATABASE_MIGRATE_URL:-}}
if [ -z "$URL" ]; then
  echo "backup.sh: set BACKUP_DATABASE_URL (or DATABASE_MIGRATE_URL): the owner's URL" >&2
  exit 2
fi
case "$BACKUP_KEEP" in
  ''|*[!0-9]*|0) echo "backup.sh: --keep must be a whole number of at least 1" >&2; exit 2 ;;
esac
STAMP=${BACKUP_STAMP:-$BACKUP_DIR/last-backup.stamp}
if [ -n "${PG_BIN:-}" ]; then
  read -r -a pg_dump <<<"${PG_DUMP:-$PG_BIN/pg_dump}"
  read -r -a pg_restore <<<"${PG_RESTORE:-$PG_BIN/pg_restore}"
else
  read -r -a pg_dump <<<"${PG_DUMP:-pg_dump}"
  read -r -a pg_restore <<<"${PG_RESTORE:-pg_restore}"
fi

FINAL="$BACKUP_DIR/attendance-$(date -u +%Y%m%dT%H%M%SZ).dump"
PARTIAL="$FINAL.partial"

masked() {  # the command line as shown: no password of a URL
  sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#g' <<<"$*"
}

dump=("${pg_dump[@]}" --format=custom "--exclude-table=attendance_scratch.*" "--dbname=$URL")
check=("${pg_restore[@]}" --file=/dev/null)
echo "+ $(masked "${dump[*]}") > $PARTIAL"
echo "+ $(masked "${check[*]}") < $PARTIAL"
echo "+ mv $PARTIAL $FINAL; write $STAMP; keep the newest $BACKUP_KEEP of $BACKUP_DIR/attendance-*.dump"
if [ "$DRY_RUN" = 1 ]; then
  echo "backup (dry run): nothing written"
  exit 0
fi

umask 077  # the dump holds password hashes and token digests
mkdir -p "$BACKUP_DIR" || exit 2
if [ -e "$FINAL" ]; then
  echo "backup.sh: $FINAL exists already (two backups in one second?)" >&2
  exit 3
fi
trap 'rm -f "$PARTIAL"' EXIT
started=$(date +%s)

if ! "${dump[@]}" >"$PARTIAL"; then
  echo "backup.sh: pg_dump failed; no backup was written" >&2
  exit 3
fi
if ! "${check[@]}" <"$PARTIAL"; then
  echo "backup.sh: the dump does not read back; it was removed" >&2
  exit 4
fi
mv "$PARTIAL" "$FINAL" || exit 3
trap - EXIT

mkdir -p "$(dirname "$STAMP")" &&
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$FINAL" >"$STAMP" || {
  echo "backup.sh: the backup $FINAL was written but the stamp $STAMP was not" >&2
  exit 5
}

# The names sort by their UTC time: all but the newest BACKUP_KEEP go.
shopt -s nullglob
dumps=("$BACKUP_DIR"/attendance-*.dump)
pruned=0
if [ "${#dumps[@]}" -gt "$BACKUP_KEEP" ]; then
  for old in "${dumps[@]:0:${#dumps[@]}-$BACKUP_KEEP}"; do
    rm -f -- "$old" || { echo "backup.sh: could not remove $old" >&2; exit 5; }
    pruned=$((pruned + 1))
  done
fi

size=$(wc -c <"$FINAL" | tr -d ' ')
echo "backup: $FINAL ($size bytes, $(($(date +%s) - started)) s; $pruned older removed, stamp $STAMP)"
