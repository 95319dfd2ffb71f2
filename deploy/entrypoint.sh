#!/bin/sh
# The container's entrypoint (Dockerfile): make sure the var dirs on the mounted volumes exist and
# are writable, refuse a bad configuration with its key path before anything starts, remove what a
# container killed hard left behind, then exec the command (by default supervisord in the
# foreground, which starts every service: supervisord.conf).
#   QTS_HOME    the installation (default /app)
#   QTS_PYTHON  the interpreter that checks the configuration (default $QTS_HOME/.venv/bin/python)
set -eu

QTS_HOME="${QTS_HOME:-/app}"
PY="${QTS_PYTHON:-$QTS_HOME/.venv/bin/python}"
cd "$QTS_HOME"

for d in var/run var/log var/state; do
  mkdir -p "$d" 2>/dev/null || true
  if [ ! -d "$d" ] || [ ! -w "$d" ]; then
    echo "entrypoint: $QTS_HOME/$d is not a directory writable by uid $(id -u):" \
      "chown the volume (docker-compose.yaml mounts it) to that uid" >&2
    exit 73 # EX_CANTCREAT
  fi
done

if ! "$PY" -c '
import sys
from services.runtime.settings import ConfigError, load_settings
try:
    load_settings()
except ConfigError as exc:
    sys.exit(f"config: {exc}")
'; then
  echo "entrypoint: the configuration is unusable (above); nothing was started" >&2
  exit 78 # EX_CONFIG
fi

# a container stopped with SIGKILL leaves supervisord's socket and pid file: a new supervisord
# would refuse the socket, and nothing else can be running in this fresh container
rm -f var/run/supervisor.sock var/run/supervisord.pid

if [ "$#" -eq 0 ]; then
  set -- "$QTS_HOME/.venv/bin/supervisord" -n -c "$QTS_HOME/supervisord.conf"
fi
exec "$@"
