# Shared settings of the local-AWS scripts; sourced, not run.
LOCALSTACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
MOTO_HOST="${MOTO_HOST:-127.0.0.1}"
MOTO_PORT="${MOTO_PORT:-4566}"
MOTO_VENV="${MOTO_VENV:-$LOCALSTACK_DIR/.venv}"
MOTO_URL="http://$MOTO_HOST:$MOTO_PORT"
MOTO_PIDFILE="$LOCALSTACK_DIR/moto-$MOTO_PORT.pid"
MOTO_LOG="$LOCALSTACK_DIR/moto-$MOTO_PORT.log"

# Only the loopback address is ever a target: refuse anything else before a request is sent.
case "$MOTO_HOST" in
  127.*|localhost) ;;
  *) echo "localstack: MOTO_HOST must be a loopback address, not $MOTO_HOST" >&2; exit 2 ;;
esac

moto_answers() {
  curl -fsS -m 2 -o /dev/null "$MOTO_URL/moto-api/" 2>/dev/null
}
