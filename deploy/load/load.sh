#!/usr/bin/env bash
# Load test on 127.0.0.1 only: starts `riskgate demo`, then drives it with
# wrk (Debian package "wrk") for a bounded time and prints requests/s and
# latency for: the Mail app directly (the baseline), riskgate's allow path
# (bearer token, device secured), and riskgate's block path (device high).
#
#   deploy/load/load.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."

secs=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { echo "load.sh: needs wrk (apt-get install -y wrk)"; exit 1; }

tmp=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
P=$(free_port) A=$(free_port) I=$(free_port) V=$(free_port) M=$(free_port) D=$(free_port)

go build -o "$tmp/riskgate" ./cmd/riskgate
"$tmp/riskgate" demo --proxy 127.0.0.1:$P --admin 127.0.0.1:$A --idp 127.0.0.1:$I \
	--vendor 127.0.0.1:$V --mail 127.0.0.1:$M --docs 127.0.0.1:$D --dir "$tmp" >"$tmp/demo.out" 2>"$tmp/demo.err" &
pid=$!

deadline=$((SECONDS + 30))
until curl -fs --max-time 1 "http://127.0.0.1:$A/readyz" >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || { echo "load.sh: demo not ready"; cat "$tmp/demo.err"; exit 1; }
	sleep 0.2
done
alice=$(curl -fs --max-time 5 "http://127.0.0.1:$I/dev/token?user=alice@corp.example")
bob=$(curl -fs --max-time 5 "http://127.0.0.1:$I/dev/token?user=bob@corp.example")

run() {
	local name=$1; shift
	echo "== $name"
	wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx" || true
}
run "Mail app directly (baseline)" -H "Accept: application/json" "http://127.0.0.1:$M/mail/"
run "riskgate allow (bearer, device secured)" -H "Authorization: Bearer $alice" -H "Accept: application/json" "http://127.0.0.1:$P/mail/"
run "riskgate block (bearer, device high; 403 expected)" -H "Authorization: Bearer $bob" -H "Accept: application/json" "http://127.0.0.1:$P/mail/"
echo "== riskgate_requests_total"
curl -fs --max-time 5 "http://127.0.0.1:$A/metrics" | grep '^riskgate_requests_total{.*route="mail"' | grep -v ' 0$'
