#!/usr/bin/env bash
# Sets up, starts and stops what Maraudes needs on a Debian/Ubuntu machine:
# system packages, the virtual environment, and a project-local PostGIS cluster
# under .data/ (its own socket directory and port, never the system's 5432).
#
#   scripts/env.sh system     install missing Debian packages (as root, or via sudo)
#   scripts/env.sh venv       create .venv/ and install the project (only when pyproject changed)
#   scripts/env.sh db         start the local cluster and create the database (no-op with DATABASE_URL)
#   scripts/env.sh stop       stop the local cluster
#   scripts/env.sh clean      stop, then delete the cluster and .venv/
#   scripts/env.sh browser    install Chromium for the browser tests
#   scripts/env.sh redis      start a project-local Redis on MARAUDES_REDIS_PORT (for the tests)
#   scripts/env.sh redis-stop
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.data"
PGDATA="$DATA/pg"
PGRUN="$DATA/run"
PGPORT="${MARAUDES_PG_PORT:-54329}"
PGDB="${MARAUDES_PG_DB:-maraudes}"
REDIS_PORT="${MARAUDES_REDIS_PORT:-56379}"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"; fi
}

apt_install() {
  say "Installing system packages: $*"
  if [ -z "${_APT_UPDATED:-}" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bindir() {
  # The newest PostgreSQL server installed from Debian's packages.
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

cmd_system() {
  local want=()
  command -v make >/dev/null || want+=(make)
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || want+=(python3-venv)
  [ -n "$(pg_bindir || true)" ] || want+=(postgresql)
  ldconfig -p | grep -q 'libgdal\.so' || want+=(gdal-bin)
  command -v runuser >/dev/null || want+=(util-linux)
  [ ${#want[@]} -eq 0 ] || apt_install "${want[@]}"

  # PostGIS must match the server's major version.
  local bin major
  bin=$(pg_bindir) || die "PostgreSQL server not found after install"
  major=$(basename "$(dirname "$bin")")
  if [ ! -f "/usr/share/postgresql/$major/extension/postgis.control" ]; then
    apt_install "postgresql-$major-postgis-3"
  fi
}

cmd_browser() {
  command -v chromium >/dev/null || apt_install chromium fonts-dejavu-core
}

cmd_venv() {
  local stamp="$VENV/.installed"
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local want
  want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "Installing the project into .venv (pip)"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$ROOT[dev]"
    echo "$want" >"$stamp"
  fi
}

# PostgreSQL refuses to run as root: as root the cluster belongs to "postgres".
pg_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# As root the cluster belongs to "postgres", which must reach it through every parent folder.
# A checkout under a private folder (mktemp -d, /root) is out of its reach: the cluster then
# lives in /var/lib/maraudes/<hash of the checkout path>, and .data/pg links to it.
resolve_pg_dirs() {
  if [ -L "$PGDATA" ]; then
    PGDATA=$(readlink -f "$PGDATA")
    PGRUN="$(dirname "$PGDATA")/run"
  elif [ "$(id -u)" = 0 ] && [ ! -d "$PGDATA" ] && ! runuser -u postgres -- test -x "$DATA"; then
    local home
    home="/var/lib/maraudes/$(printf %s "$ROOT" | sha256sum | cut -c1-16)"
    install -d -o postgres -g postgres -m 700 "$home/pg"
    install -d -o postgres -g postgres -m 755 "$home/run"
    ln -sfn "$home/pg" "$PGDATA"
    say "user postgres cannot enter $ROOT: the cluster lives in $home (linked from .data/pg)"
    PGDATA="$home/pg"
    PGRUN="$home/run"
  fi
}

cmd_db() {
  if [ -n "${DATABASE_URL:-}" ]; then
    say "DATABASE_URL is set: using that server, no local cluster"
    return
  fi
  local bin
  bin=$(pg_bindir) || die "PostgreSQL is not installed: run 'scripts/env.sh system'"
  mkdir -p "$DATA"
  resolve_pg_dirs
  if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres -m 700 "$PGDATA"
    install -d -o postgres -g postgres -m 755 "$PGRUN"
  else
    install -d -m 700 "$PGDATA"
    install -d -m 755 "$PGRUN"
  fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    say "Creating the local PostGIS cluster in .data/pg"
    # trust on the loopback only: a developer cluster nobody else can reach.
    as_pg "$bin/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<CONF
# --- maraudes local cluster ---
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGRUN'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 512MB
work_mem = 64MB
max_connections = 200
CONF
  fi
  if ! as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    say "Starting PostgreSQL on 127.0.0.1:$PGPORT (socket in .data/run)"
    as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$PGDATA/server.log" >&2; die "PostgreSQL did not start"; }
  fi
  local psql=(env PGOPTIONS='-c client_min_messages=warning' "$bin/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
  if [ -z "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$PGDB'")" ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE $PGDB"
  fi
  "${psql[@]}" -d "$PGDB" -c "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
  # Test databases are created from template1: give it PostGIS too.
  "${psql[@]}" -d template1 -c "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
}

cmd_stop() {
  local bin
  bin=$(pg_bindir) || return 0
  [ -L "$PGDATA" ] && resolve_pg_dirs
  if [ -f "$PGDATA/postmaster.pid" ]; then
    say "Stopping the local PostgreSQL"
    as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
  fi
  cmd_redis_stop
}

cmd_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$DATA/redis"
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "Starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
      --dir "$DATA/redis" --save '' --appendonly no --pidfile "$DATA/redis/redis.pid" \
      --logfile "$DATA/redis/redis.log"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
    die "Redis did not start"
  fi
}

cmd_redis_stop() {
  if command -v redis-cli >/dev/null && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
}

cmd_clean() {
  local linked=""
  if [ -L "$PGDATA" ]; then linked=$(dirname "$(readlink -f "$PGDATA")"); fi
  cmd_stop
  if [ -n "$linked" ]; then rm -rf "$linked"; fi
  rm -rf "$DATA" "$VENV"
}

case "${1:-}" in
  system) cmd_system ;;
  venv) cmd_venv ;;
  db) cmd_db ;;
  stop) cmd_stop ;;
  clean) cmd_clean ;;
  browser) cmd_browser ;;
  redis) cmd_redis ;;
  redis-stop) cmd_redis_stop ;;
  *) die "usage: $0 system|venv|db|stop|browser|redis|redis-stop" ;;
esac
