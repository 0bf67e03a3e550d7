#!/usr/bin/env bash
# Start/stop/reset a private Orthanc (+ DICOMweb plugin) for the archive benchmark (python -m bench.run), loopback only.
#
#   orthanc.sh start  [--postgres] [--profile speed|default] [--metadata Full|MainDicomTags|Extrapolate]
#                     [--tcp-nodelay]   # export TCP_NODELAY=1 to Orthanc: DCMTK then disables Nagle on
#                                       # DICOM associations (Debian's build leaves it on -> ~40 ms stall
#                                       # per C-STORE with Linux SCUs because of delayed ACKs)
#   orthanc.sh reset              # stop Orthanc, wipe storage + index (drop/recreate PG db), start again same mode
#   (start also begins empty; KEEP=1 orthanc.sh start ... keeps the previous storage/index/database)
#   orthanc.sh stop               # stop Orthanc (and the private PostgreSQL cluster if one was started)
#   orthanc.sh status
#   orthanc.sh pids               # PIDs to sample (Orthanc [+ postmaster]); also in $DIR/server.pids
#
# HTTP 127.0.0.1:18242 (DICOMweb at /dicom-web), DICOM 18243 AET ORTHANC, PostgreSQL 127.0.0.1:18250.
# State lives in $BENCH_ORTHANC_DIR (default /tmp/archive-bench-orthanc) and
# $BENCH_PG_DIR (default /tmp/archive-bench-pg).  Only processes recorded in those dirs are ever signalled.
#
# Profiles
#   speed   (default) Orthanc's own scalability advice: StorageAccessOnFind=Never, SaveJobs=false,
#           KeepAlive/TcpNoDelay on, DicomWeb StudiesMetadata=MainDicomTags (SeriesMetadata stays Full so
#           that series metadata is complete), PostgreSQL IndexConnectionsCount=5.
#           (DICOMweb 1.7 has no metadata cache; that arrived in later plugin versions.)
#   default  Orthanc's defaults for those options (StorageAccessOnFind=Always, SaveJobs=true, metadata Full).
# --metadata overrides both StudiesMetadata and SeriesMetadata.
set -euo pipefail

DIR=${BENCH_ORTHANC_DIR:-/tmp/archive-bench-orthanc}
PG_DIR=${BENCH_PG_DIR:-/tmp/archive-bench-pg}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ORTHANC=${ORTHANC:-/usr/sbin/Orthanc}
PLUGINS=${ORTHANC_PLUGINS:-/usr/share/orthanc/plugins}
HTTP_PORT=${HTTP_PORT:-18242}
DICOM_PORT=${DICOM_PORT:-18243}
PG_PORT=${PG_PORT:-18250}
AET=${AET:-ORTHANC}

cmd=${1:-}; shift || true
MODE=sqlite; PROFILE=speed; METADATA=""; NODELAY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) MODE=postgres ;;
    --profile) PROFILE=$2; shift ;;
    --metadata) METADATA=$2; shift ;;
    --tcp-nodelay) NODELAY=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
orthanc_pid() {
  local p
  [ -f "$DIR/orthanc.pid" ] || return 1
  p=$(cat "$DIR/orthanc.pid")
  # only ever treat it as ours if it is Orthanc running our config file
  alive "$p" && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "$DIR/orthanc.json" && echo "$p"
}
pg_pid() { local q; [ -f "$PG_DIR/data/postmaster.pid" ] && { q=$(head -1 "$PG_DIR/data/postmaster.pid"); alive "$q" && echo "$q"; }; }
as_pg() { runuser -u postgres -- "$@"; }
psql_pg() { PGOPTIONS='-c client_min_messages=warning' as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }

pg_up() {
  if [ ! -d "$PG_DIR/data" ]; then
    mkdir -p "$PG_DIR"; chown postgres: "$PG_DIR"; chmod 700 "$PG_DIR"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-locale -E UTF8 >"$PG_DIR/initdb.log"
    cat >> "$PG_DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
shared_buffers = 512MB
max_connections = 50
EOF
  fi
  if ! pg_pid >/dev/null; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start >/dev/null
  fi
}
pg_recreate_db() {
  psql_pg -d postgres -c "DROP DATABASE IF EXISTS orthanc" -c "CREATE DATABASE orthanc"
}
pg_down() {
  if pg_pid >/dev/null; then as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null; fi
}

write_config() {
  local storage_access=Never savejobs=false studies_md=MainDicomTags series_md=Full
  if [ "$PROFILE" = default ]; then storage_access=Always; savejobs=true; studies_md=Full; series_md=Full; fi
  if [ -n "$METADATA" ]; then studies_md=$METADATA; series_md=$METADATA; fi
  local plugins="\"$PLUGINS/libOrthancDicomWeb.so\"" pgcfg=""
  if [ "$MODE" = postgres ]; then
    plugins="$plugins, \"$PLUGINS/libOrthancPostgreSQLIndex.so\""
    pgcfg=$(cat <<EOF
  "PostgreSQL" : {
    "EnableIndex" : true, "EnableStorage" : false,
    "Host" : "127.0.0.1", "Port" : $PG_PORT, "Database" : "orthanc",
    "Username" : "postgres", "Password" : "", "EnableSsl" : false,
    "Lock" : false, "IndexConnectionsCount" : $([ "$PROFILE" = default ] && echo 1 || echo 5)
  },
EOF
)
  fi
  cat > "$DIR/orthanc.json" <<EOF
{
  "Name" : "bench-orthanc-$MODE-$PROFILE",
  "StorageDirectory" : "$DIR/storage",
  "IndexDirectory" : "$DIR/index",
  "Plugins" : [ $plugins ],
$pgcfg
  "HttpServerEnabled" : true, "HttpPort" : $HTTP_PORT,
  "RemoteAccessAllowed" : false, "AuthenticationEnabled" : false, "SslEnabled" : false,
  "HttpCompressionEnabled" : true, "KeepAlive" : true, "TcpNoDelay" : true, "HttpThreadsCount" : 50,
  "DicomServerEnabled" : true, "DicomAet" : "$AET", "DicomPort" : $DICOM_PORT,
  "DicomCheckCalledAet" : false, "DicomAlwaysAllowStore" : true, "DicomAlwaysAllowEcho" : true,
  "DicomAlwaysAllowFind" : true, "DicomThreadsCount" : 4, "DicomScpTimeout" : 30,
  "UnknownSopClassAccepted" : false, "DicomModalities" : {}, "OrthancPeers" : {},
  "StorageCompression" : false, "MaximumStorageSize" : 0, "MaximumPatientCount" : 0,
  "OverwriteInstances" : false, "ConcurrentJobs" : 2, "SaveJobs" : $savejobs,
  "StorageAccessOnFind" : "$storage_access", "LimitFindResults" : 0, "LimitFindInstances" : 0,
  "StoreMD5ForAttachments" : true, "MetricsEnabled" : true, "ExecuteLuaEnabled" : false,
  "DicomWeb" : {
    "Enable" : true, "Root" : "/dicom-web/", "EnableWado" : true, "WadoRoot" : "/wado",
    "Ssl" : false, "QidoCaseSensitive" : true,
    "StudiesMetadata" : "$studies_md", "SeriesMetadata" : "$series_md"
  }
}
EOF
  printf 'MODE=%s\nPROFILE=%s\nMETADATA=%s\nNODELAY=%s\n' "$MODE" "$PROFILE" "$METADATA" "$NODELAY" > "$DIR/mode"
}

start_orthanc() {   # always starts EMPTY (fresh storage, index and PG database) unless KEEP=1
  if p=$(orthanc_pid); then echo "already running: PID $p" >&2; exit 1; fi
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR/storage" "$DIR/index"
  mkdir -p "$DIR/storage" "$DIR/index"
  if [ "$MODE" = postgres ]; then
    pg_up
    if [ "${KEEP:-0}" = 1 ]; then
      psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='orthanc'" | grep -q 1 || pg_recreate_db
    else
      pg_recreate_db
    fi
  fi
  write_config
  if [ "$NODELAY" = 1 ]; then export TCP_NODELAY=1; else unset TCP_NODELAY; fi
  setsid "$ORTHANC" --logfile="$DIR/orthanc.log" "$DIR/orthanc.json" </dev/null >/dev/null 2>&1 &
  local p=$!
  echo "$p" > "$DIR/orthanc.pid"
  for _ in $(seq 1 240); do
    if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/dicom-web/studies" 2>/dev/null | grep -q '^200$'; then
      { echo "$p"; [ "$MODE" = postgres ] && pg_pid || true; } > "$DIR/server.pids"
      echo "Orthanc PID $p ($MODE, profile $PROFILE, tcp-nodelay $NODELAY) http://127.0.0.1:$HTTP_PORT/dicom-web DICOM $AET@127.0.0.1:$DICOM_PORT"
      return 0
    fi
    alive "$p" || { echo "Orthanc exited; log:" >&2; tail -20 "$DIR/orthanc.log" >&2; exit 1; }
    sleep 0.25
  done
  echo "Orthanc did not become ready" >&2; tail -20 "$DIR/orthanc.log" >&2; exit 1
}

stop_orthanc() {
  local p
  if p=$(orthanc_pid); then
    kill -TERM "$p"
    for _ in $(seq 1 120); do alive "$p" || break; sleep 0.25; done
    alive "$p" && kill -KILL "$p"
    echo "stopped Orthanc PID $p"
  fi
  rm -f "$DIR/orthanc.pid"
}

case "$cmd" in
  start) start_orthanc ;;
  stop)
    stop_orthanc
    if pg_pid >/dev/null; then pg_down; echo "stopped PostgreSQL"; fi ;;
  reset)
    [ -f "$DIR/mode" ] || { echo "not started" >&2; exit 1; }
    . "$DIR/mode"
    stop_orthanc >/dev/null
    start_orthanc ;;
  status)
    if p=$(orthanc_pid); then echo "Orthanc running PID $p ($(tr '\n' ' ' < "$DIR/mode"))"; else echo "Orthanc not running"; fi
    if p=$(pg_pid); then echo "PostgreSQL running PID $p"; fi ;;
  pids) cat "$DIR/server.pids" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
