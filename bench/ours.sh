#!/usr/bin/env bash
# Start/stop/reset a private instance of this archive for the benchmark (python -m bench.run), loopback only.
#
#   ours.sh start [--database-url URL] [-- extra `archive serve` flags]
#                         # starts EMPTY; without --database-url the archive runs its embedded
#                         # PostgreSQL (the default deployment) inside $DIR/data/postgres.
#                         # With --database-url the named database is DROPPED and re-created.
#   ours.sh reset         # stop, wipe data (and database), start again with the same options
#   ours.sh stop | status | pids   # pids: archive process (+ its PostgreSQL postmaster), also in $DIR/server.pids
#
# HTTP 127.0.0.1:18142 (DICOMweb at /dicom-web), DICOM 18143 AET ARCHIVE.
# $ARCHIVE_SRC: source tree to run (default: this checkout).
# State lives in $BENCH_OURS_DIR (default /tmp/archive-bench-ours). Only the PID recorded there is signalled.
set -euo pipefail

DIR=${BENCH_OURS_DIR:-/tmp/archive-bench-ours}
PY=${PY:-python3}
HTTP_PORT=${OURS_HTTP_PORT:-18142}
DICOM_PORT=${OURS_DICOM_PORT:-18143}
AET=${OURS_AET:-ARCHIVE}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SRC=${ARCHIVE_SRC:-$HERE}   # source tree to run (bench.run passes a snapshot of the working tree)

cmd=${1:-}; shift || true
DB_URL=""; EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --database-url) DB_URL=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
server_pid() {
  local p
  [ -f "$DIR/archive.pid" ] || return 1
  p=$(cat "$DIR/archive.pid")
  alive "$p" && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "$DIR/data" && echo "$p"
}
pg_pid() {
  local f="$DIR/data/postgres/pgdata/postmaster.pid" q
  [ -f "$f" ] || f="$DIR/data/postgres/postmaster.pid"
  [ -f "$f" ] && { q=$(head -1 "$f"); alive "$q" && echo "$q"; }
}

recreate_db() {   # drop and re-create the database named in DB_URL
  local admin name
  name=${DB_URL##*/}; name=${name%%\?*}
  admin=${DB_URL%/*}/postgres
  "$PY" - "$admin" "$name" <<'EOF'
import asyncio, sys
import asyncpg
async def main(url, name):
    c = await asyncpg.connect(url)
    await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await c.execute(f'CREATE DATABASE "{name}"')
    await c.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
EOF
}

start() {
  if p=$(server_pid); then echo "already running: PID $p" >&2; exit 1; fi
  rm -rf "$DIR/data"; mkdir -p "$DIR/data"
  local db=()
  if [ -n "$DB_URL" ]; then recreate_db; db=(--database-url "$DB_URL"); fi
  { printf 'DB_URL=%q\n' "$DB_URL"; if [ ${#EXTRA[@]} -gt 0 ]; then printf 'EXTRA=(%s)\n' "$(printf '%q ' "${EXTRA[@]}")"; else echo 'EXTRA=()'; fi; } > "$DIR/mode"
  (cd "$SRC" && PYTHONPATH="$SRC" exec setsid "$PY" -m archive serve --data-dir "$DIR/data" --host 127.0.0.1 \
      --http-port "$HTTP_PORT" --dimse-port "$DICOM_PORT" --ae-title "$AET" --log-level WARNING \
      "${db[@]+"${db[@]}"}" "${EXTRA[@]+"${EXTRA[@]}"}" </dev/null >"$DIR/archive.log" 2>&1) &
  local p=$!
  echo "$p" > "$DIR/archive.pid"
  for _ in $(seq 1 480); do
    if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/dicom-web/studies" 2>/dev/null | grep -qv '^000$'; then
      { echo "$p"; pg_pid || true; } > "$DIR/server.pids"
      echo "archive PID $p http://127.0.0.1:$HTTP_PORT/dicom-web DICOM $AET@127.0.0.1:$DICOM_PORT db ${DB_URL:-embedded}"
      return 0
    fi
    alive "$p" || { echo "archive exited; log:" >&2; tail -20 "$DIR/archive.log" >&2; exit 1; }
    sleep 0.25
  done
  echo "archive did not become ready" >&2; tail -20 "$DIR/archive.log" >&2; exit 1
}

stop() {
  local p
  if p=$(server_pid); then
    kill -TERM "$p"
    for _ in $(seq 1 240); do alive "$p" || break; sleep 0.25; done
    alive "$p" && kill -KILL "$p"
    echo "stopped archive PID $p"
  fi
  # the embedded PostgreSQL normally stops with the archive; make sure before its files are wiped
  local q
  if [ -f "$DIR/server.pids" ]; then
    for q in $(tail -n +2 "$DIR/server.pids"); do
      if alive "$q" && tr '\0' ' ' < "/proc/$q/cmdline" 2>/dev/null | grep -q -- "$DIR/data"; then
        kill -INT "$q"
        for _ in $(seq 1 120); do alive "$q" || break; sleep 0.25; done
      fi
    done
  fi
  rm -f "$DIR/archive.pid"
}

mkdir -p "$DIR"
case "$cmd" in
  start) start ;;
  stop) stop ;;
  reset)
    [ -f "$DIR/mode" ] || { echo "not started" >&2; exit 1; }
    . "$DIR/mode"
    stop >/dev/null
    start ;;
  status) if p=$(server_pid); then echo "archive running PID $p"; else echo "archive not running"; fi ;;
  pids) cat "$DIR/server.pids" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
