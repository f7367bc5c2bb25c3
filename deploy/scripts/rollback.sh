#!/usr/bin/env bash
# Return to the image tag that ran before the last deploy (deploy/.state/previous_tag, or
# ATTENDANCE_TAG when given) and restart the application's services on it. Migrations are
# not reversed: a release's migrations stay compatible with the previous release's code
# (README, "Upgrading a live database"). Exit 0 on success, 1 when there is nothing to roll
# back to, 40 when the restart fails; --dry-run prints the commands.
set -uo pipefail

DEPLOY_DIR="$(cd "$(dirname "$0")/.." && pwd)"
DRY_RUN=0
for argument in "$@"; do
  case "$argument" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "rollback.sh: unknown argument $argument (try --help)" >&2; exit 2 ;;
  esac
done
COMPOSE=${COMPOSE:-docker-compose}
STATE_DIR=${DEPLOY_STATE_DIR:-$DEPLOY_DIR/.state}
if [ -z "${ATTENDANCE_TAG:-}" ]; then
  if [ ! -s "$STATE_DIR/previous_tag" ]; then
    echo "rollback.sh: no previous tag in $STATE_DIR/previous_tag; set ATTENDANCE_TAG" >&2
    exit 1
  fi
  ATTENDANCE_TAG=$(cat "$STATE_DIR/previous_tag")
fi
export ATTENDANCE_TAG
command=("$COMPOSE" -f "$DEPLOY_DIR/compose.yaml" up -d --no-deps static web worker worker-imports beat nginx)
echo "+ ATTENDANCE_TAG=$ATTENDANCE_TAG ${command[*]}"
if [ "$DRY_RUN" = 1 ]; then
  echo "rollback to $ATTENDANCE_TAG (dry run)"
  exit 0
fi
if ! "${command[@]}"; then
  echo "rollback to $ATTENDANCE_TAG: the restart failed" >&2
  exit 40
fi
echo "$ATTENDANCE_TAG" >"$STATE_DIR/current_tag"
echo "rolled back to $ATTENDANCE_TAG"
