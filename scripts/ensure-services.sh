#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1 and Debian's Chromium is installed (the browser
# tests drive /usr/bin/chromium) before the tests run. Starts the services when installed but stopped;
# installs what is missing with apt when root; otherwise says exactly what is missing and exits non-zero.
set -u
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}; REDIS_PORT=${REDIS_PORT:-6379}

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h "$PGHOST" -p "$PGPORT"; }
redis_up() {
  if command -v redis-cli >/dev/null; then redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
  else (exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT" && printf 'PING\r\n' >&3 && head -c5 <&3 | grep -q PONG) 2>/dev/null; fi
}
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }
as_root() { [ "$(id -u)" = 0 ]; }

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null; then
    if as_root && command -v apt-get >/dev/null; then
      echo "PostgreSQL is missing: installing it with apt"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
    else
      echo "PostgreSQL is not reachable on $PGHOST:$PGPORT and not installed; install PostgreSQL (trust auth for 127.0.0.1) or set DATABASE_URL" >&2
      exit 1
    fi
  fi
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then echo "PostgreSQL is installed but has no cluster under /etc/postgresql" >&2; exit 1; fi
  echo "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster "$version" main start
  wait_for pg_up || { echo "PostgreSQL did not come up on $PGHOST:$PGPORT" >&2; exit 1; }
fi

if ! redis_up; then
  if ! command -v redis-server >/dev/null; then
    if as_root && command -v apt-get >/dev/null; then
      echo "Redis is missing: installing it with apt"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
    else
      echo "Redis is not reachable on $REDIS_HOST:$REDIS_PORT and not installed; install redis-server or set CELERY_BROKER_URL" >&2
      exit 1
    fi
  fi
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log \
    || redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
  wait_for redis_up || { echo "Redis did not come up on $REDIS_HOST:$REDIS_PORT" >&2; exit 1; }
fi
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  if as_root && command -v apt-get >/dev/null; then
    echo "Chromium is missing: installing it with apt (the browser tests drive $CHROMIUM)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
    [ -x "$CHROMIUM" ] || { echo "apt-get install chromium did not provide $CHROMIUM" >&2; exit 1; }
  else
    echo "Chromium is not installed at $CHROMIUM (the browser tests need it); as root run: apt-get install -y chromium" >&2
    exit 1
  fi
fi

echo "services: PostgreSQL $PGHOST:$PGPORT and Redis $REDIS_HOST:$REDIS_PORT are up; browser $CHROMIUM"
