#!/usr/bin/env bash
# Deploy a new version with deploy/compose.yaml, gate by gate:
#   1 preflight (the running deployment is fit: database, broker, worker, config, storage…)
#   2 build (or pull with ATTENDANCE_PULL=1) the new image, tagged ATTENDANCE_TAG
#   3 migrate, before any new web process starts
#   4 start the new web, workers, beat and nginx
#   5 smoke (the API's main paths through nginx)
# Stops at the first failing stage with its exit code (10, 20, 30, 40, 50; 2 for bad usage)
# and prints a one-screen summary. --dry-run prints the commands without running them.
# The preflight runs in the running deployment (its web container); on the first deploy
# there is none (no deploy/.state/current_tag), so it runs after the start instead.
# Environment: ATTENDANCE_TAG (default: the checkout's short commit), ATTENDANCE_ENV_FILE,
# COMPOSE (default: docker-compose), DEPLOY_LOG_DIR (default: deploy/logs).
set -uo pipefail

DEPLOY_DIR="$(cd "$(dirname "$0")/.." && pwd)"
DRY_RUN=0
for argument in "$@"; do
  case "$argument" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "deploy.sh: unknown argument $argument (try --help)" >&2; exit 2 ;;
  esac
done

COMPOSE=${COMPOSE:-docker-compose}
ATTENDANCE_TAG=${ATTENDANCE_TAG:-$(git -C "$DEPLOY_DIR/.." rev-parse --short=12 HEAD 2>/dev/null || echo latest)}
export ATTENDANCE_TAG APP_COMMIT=${APP_COMMIT:-$ATTENDANCE_TAG}
STATE_DIR=${DEPLOY_STATE_DIR:-$DEPLOY_DIR/.state}
LOG_DIR=${DEPLOY_LOG_DIR:-$DEPLOY_DIR/logs}
mkdir -p "$LOG_DIR" "$STATE_DIR"
LOG="$LOG_DIR/deploy-$(date -u +%Y%m%dT%H%M%SZ)-$ATTENDANCE_TAG.log"
compose=("$COMPOSE" -f "$DEPLOY_DIR/compose.yaml")

declare -a SUMMARY=()

summary() {
  echo
  echo "deploy $ATTENDANCE_TAG$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')"
  printf '  %-10s %-8s %s\n' STAGE RESULT REASON
  for line in "${SUMMARY[@]}"; do printf '  %s\n' "$line"; done
  echo "  log: $LOG"
}

stage() {  # stage NAME EXIT_CODE COMMAND...
  local name=$1 code=$2
  shift 2
  echo "+ $*" | tee -a "$LOG"
  if [ "$DRY_RUN" = 1 ]; then
    SUMMARY+=("$(printf '%-10s %-8s %s' "$name" "skipped" "dry run")")
    return 0
  fi
  if "$@" >>"$LOG" 2>&1; then
    SUMMARY+=("$(printf '%-10s %-8s %s' "$name" "ok" "")")
    return 0
  fi
  local reason
  reason=$(tail -n 1 "$LOG" | cut -c1-100)
  SUMMARY+=("$(printf '%-10s %-8s %s' "$name" "FAILED" "exit $code: $reason")")
  summary
  exit "$code"
}

FIRST=0
[ -s "$STATE_DIR/current_tag" ] || FIRST=1
preflight=("${compose[@]}" exec -T web python manage.py gates preflight)

[ "$FIRST" = 1 ] || stage preflight 10 "${preflight[@]}"
if [ "${ATTENDANCE_PULL:-0}" = 1 ]; then
  stage pull 20 "${compose[@]}" pull web worker worker-imports beat migrate
else
  stage build 20 "${compose[@]}" build
fi
stage migrate 30 "${compose[@]}" run --rm migrate
stage start 40 "${compose[@]}" up -d --no-deps static web worker worker-imports beat nginx
[ "$FIRST" = 0 ] || stage preflight 10 "${preflight[@]}"
stage smoke 50 "${compose[@]}" exec -T web python manage.py gates smoke

if [ "$DRY_RUN" = 0 ]; then
  # The tag that ran before becomes the one rollback.sh returns to.
  if [ -f "$STATE_DIR/current_tag" ] && [ "$(cat "$STATE_DIR/current_tag")" != "$ATTENDANCE_TAG" ]; then
    cp "$STATE_DIR/current_tag" "$STATE_DIR/previous_tag"
  fi
  echo "$ATTENDANCE_TAG" >"$STATE_DIR/current_tag"
fi
summary
