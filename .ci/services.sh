#!/usr/bin/env bash
# Starts each local service the test suite talks to when it is not answering.
# The commands are the ones this machine kind documents for restarting them.
set -uo pipefail

up() { # host port
  python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

wait_up() { # name host port
  for _ in $(seq 1 60); do up "$2" "$3" && return 0; sleep 1; done
  echo "service $1 did not come up on $2:$3" >&2
  return 1
}

ensure() { # name host port start-command...
  local name=$1 host=$2 port=$3; shift 3
  if up "$host" "$port"; then return 0; fi
  echo "starting $name" >&2
  "$@" || true
  wait_up "$name" "$host" "$port"
}

ensure postgresql 127.0.0.1 5432 \
  bash -c 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'
ensure redis 127.0.0.1 6379 \
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
ensure rabbitmq 127.0.0.1 5672 rabbitmq-server -detached
# The catalogue's HTML page is checked in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 || true
fi
# The Django browser tests drive Chromium through Selenium and Debian's driver;
# bench/django_bench.py loads the endpoint with wrk when it is there.
for tool in chromedriver:chromium-driver wrk:wrk; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    echo "installing ${tool#*:}" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}") >&2 || true
  fi
done
exit 0
