#!/usr/bin/env bash
# Checks the operator deliverables under deploy/ (called by test.sh from the
# repository root; runs from anywhere):
#
#  1. promtool: the alert rules parse, their unit tests pass, the sample and
#     a generated Prometheus config are valid, and every Grafana dashboard
#     expression is valid PromQL.
#  2. live: builds riskgate, starts `riskgate demo` on free 127.0.0.1 ports,
#     sends N allowed and M blocked requests with bearer tokens from the demo
#     issuer, starts a real Prometheus scraping the demo's admin listener every
#     second with alerts.yml loaded, and waits until Prometheus reports exactly
#     N allows and M blocks, every rule evaluates without error and every
#     dashboard query succeeds.
#
# Everything it starts is stopped by the EXIT trap; every wait has a deadline.
# Needs: go, promtool, prometheus, curl, jq.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
RULES=$ROOT/deploy/prometheus/alerts.yml
RULES_TEST=$ROOT/deploy/prometheus/alerts_test.yml
SAMPLE_CONFIG=$ROOT/deploy/prometheus/prometheus.yml
DASHBOARD=$ROOT/deploy/grafana/riskgate.json

N_ALLOW=${N_ALLOW:-7}     # requests by alice (secured device): 200
M_BLOCK=${M_BLOCK:-4}     # requests by bob (high-risk device): 403
READY_TIMEOUT=${READY_TIMEOUT:-60}   # seconds for the demo and Prometheus to come up
SCRAPE_TIMEOUT=${SCRAPE_TIMEOUT:-60} # seconds for Prometheus to see the counts

say() { printf '%s\n' "$*"; }
ok() { printf '  ok: %s\n' "$*"; }
fail() {
	printf 'check.sh: FAIL: %s\n' "$*" >&2
	exit 1
}

for tool in go promtool prometheus curl jq; do
	command -v "$tool" >/dev/null || fail "$tool not found in PATH (Debian: apt-get install prometheus curl jq)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/riskgate-check.XXXXXX")
PIDS=()
cleanup() {
	local rc=$? pid deadline
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	deadline=$((SECONDS + 10))
	for pid in "${PIDS[@]}"; do
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if ((rc != 0)); then
		for log in "$TMP"/*.log; do
			[ -s "$log" ] || continue
			printf -- '--- last lines of %s\n' "$(basename "$log")" >&2
			tail -n 30 "$log" >&2
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_ports COUNT prints COUNT distinct ports on 127.0.0.1 that nothing
# listens on, below the usual ephemeral range.
free_ports() {
	local want=$1 got=() p tries=0
	while ((${#got[@]} < want)); do
		((tries++ < 1000)) || fail "no free ports found"
		p=$((20000 + RANDOM % 12000))
		[[ " ${got[*]} " == *" $p "* ]] && continue
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
		got+=("$p")
	done
	printf '%s\n' "${got[@]}"
}

ports=$(free_ports 7)
mapfile -t PORTS <<<"$ports"
PROXY=127.0.0.1:${PORTS[0]}
ADMIN=127.0.0.1:${PORTS[1]}
IDP=127.0.0.1:${PORTS[2]}
VENDOR=127.0.0.1:${PORTS[3]}
MAIL=127.0.0.1:${PORTS[4]}
DOCS=127.0.0.1:${PORTS[5]}
PROM=127.0.0.1:${PORTS[6]}

# ---------------------------------------------------------------- promtool
say "== promtool"
promtool check rules "$RULES" >"$TMP/out" 2>&1 && ! grep -q FAILED "$TMP/out" ||
	{ cat "$TMP/out" >&2; fail "promtool check rules $RULES"; }
ok "$(grep -o '[0-9]* rules found' "$TMP/out") in alerts.yml (promtool check rules)"

promtool test rules "$RULES_TEST" >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "promtool test rules $RULES_TEST"; }
ok "alert unit tests pass ($(grep -c 'alertname:' "$RULES_TEST") alert checks, promtool test rules)"

promtool check config "$SAMPLE_CONFIG" >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "promtool check config $SAMPLE_CONFIG"; }
ok "sample prometheus.yml is valid"

# The config of the live Prometheus below.
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: riskgate
    static_configs:
      - targets: ["$ADMIN"]
EOF
promtool check config "$TMP/prometheus.yml" >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "promtool check config (generated)"; }
ok "generated live config is valid (scrape $ADMIN every 1s, alerts.yml loaded)"

# Dashboard: valid JSON, the expected shape, and every expression valid
# PromQL once Grafana's variables are replaced by what Grafana would send.
jq -e . "$DASHBOARD" >/dev/null 2>"$TMP/out" || { cat "$TMP/out" >&2; fail "$DASHBOARD is not valid JSON"; }
jq -e '.schemaVersion >= 39
  and ([.templating.list[].name] | index("DS_PROMETHEUS") and index("route") and index("vendor"))
  and ([.__inputs[].name] | index("DS_PROMETHEUS"))
  and ([.panels[] | select(.type != "row") | .datasource.uid == "${DS_PROMETHEUS}"] | all)' \
	"$DASHBOARD" >/dev/null || fail "dashboard: schemaVersion, variables (DS_PROMETHEUS, route, vendor) or panel datasources wrong"
jq -r '.. | objects | select(has("expr")) | .expr' "$DASHBOARD" |
	sed -e 's/\$__rate_interval/1m/g; s/\$__interval/15s/g; s/\$__range/1h/g' \
		-e 's/\$route/.*/g; s/\$vendor/.*/g' >"$TMP/dashboard.exprs"
# One expression per line: exprs must not span lines.
[ "$(wc -l <"$TMP/dashboard.exprs")" -eq "$(jq '[.. | objects | select(has("expr"))] | length' "$DASHBOARD")" ] ||
	fail "dashboard: an expr spans several lines"
if grep -n '\$' "$TMP/dashboard.exprs" >&2; then fail "dashboard: unknown variable in an expr (above)"; fi
jq -Rn '{groups: [{name: "dashboard", rules: ([inputs] | to_entries | map({record: "dashboard:expr_\(.key)", expr: .value}))}]}' \
	<"$TMP/dashboard.exprs" >"$TMP/dashboard-rules.json"
promtool check rules "$TMP/dashboard-rules.json" >"$TMP/out" 2>&1 &&
	grep -q "SUCCESS: $(wc -l <"$TMP/dashboard.exprs") rules found" "$TMP/out" ||
	{ cat "$TMP/out" >&2; fail "dashboard: invalid PromQL (above)"; }
ok "dashboard: valid JSON, $(jq '[.panels[] | select(.type != "row")] | length' "$DASHBOARD") panels, $(wc -l <"$TMP/dashboard.exprs") expressions valid PromQL"

# ---------------------------------------------------------------- live
say "== live: riskgate demo scraped by Prometheus"
go build -o "$TMP/riskgate" ./cmd/riskgate || fail "go build ./cmd/riskgate"
ok "built riskgate"

mkdir "$TMP/demo"
"$TMP/riskgate" demo --proxy "$PROXY" --admin "$ADMIN" --idp "$IDP" --vendor "$VENDOR" \
	--mail "$MAIL" --docs "$DOCS" --dir "$TMP/demo" >"$TMP/demo.log" 2>&1 &
DEMO_PID=$!
PIDS+=("$DEMO_PID")

prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
	--web.listen-address="$PROM" >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
PIDS+=("$PROM_PID")

# http_code URL [curl args...] prints the status code, 000 when unreachable.
http_code() {
	local url=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true
}

deadline=$((SECONDS + READY_TIMEOUT))
until [ "$(http_code "http://$ADMIN/readyz")" = 200 ]; do
	kill -0 "$DEMO_PID" 2>/dev/null || fail "riskgate demo exited before it was ready (demo.log below)"
	((SECONDS < deadline)) || fail "riskgate demo: http://$ADMIN/readyz not 200 within ${READY_TIMEOUT}s (last: $(http_code "http://$ADMIN/readyz"))"
	sleep 0.2
done
ok "riskgate demo ready: proxy $PROXY, admin $ADMIN/readyz 200"

token() {
	local tok
	tok=$(curl -fsS --max-time 5 "http://$IDP/dev/token?user=$1") || fail "no dev token for $1 from http://$IDP/dev/token"
	tok=$(printf '%s' "$tok" | tr -d '[:space:]')
	[[ $tok =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || fail "dev token for $1 is not a JWT: ${tok:0:80}"
	printf '%s' "$tok"
}
ALICE=$(token alice@corp.example)
BOB=$(token bob@corp.example)
ok "bearer tokens for alice and bob from the development issuer"

# send TOKEN WANT_STATUS COUNT
send() {
	local tok=$1 want=$2 count=$3 i code
	for ((i = 1; i <= count; i++)); do
		code=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 5 \
			-H "Authorization: Bearer $tok" -H 'Accept: application/json' "http://$PROXY/mail/") || true
		[ "$code" = "$want" ] || fail "GET http://$PROXY/mail/ request $i: status $code, want $want; body: $(head -c 300 "$TMP/body")"
	done
}
send "$ALICE" 200 "$N_ALLOW"
ok "$N_ALLOW requests by alice (secured device) to /mail/: 200"
send "$BOB" 403 "$M_BLOCK"
jq -e '.decision == "block"' "$TMP/body" >/dev/null 2>&1 ||
	fail "403 body is not the JSON block response: $(head -c 300 "$TMP/body")"
ok "$M_BLOCK requests by bob (high-risk device) to /mail/: 403, reason $(jq -r .reason "$TMP/body")"

deadline=$((SECONDS + READY_TIMEOUT))
until [ "$(http_code "http://$PROM/-/ready")" = 200 ]; do
	kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited (prometheus.log below)"
	((SECONDS < deadline)) || fail "prometheus on $PROM not ready within ${READY_TIMEOUT}s"
	sleep 0.2
done
ok "prometheus ready on $PROM"

# query EXPR prints the first sample's value, "none" for an empty result and
# "error" when the query fails.
query() {
	curl -s --max-time 5 -G --data-urlencode "query=$1" "http://$PROM/api/v1/query" |
		jq -r 'if .status != "success" then "error" else (.data.result[0].value[1] // "none") end' 2>/dev/null ||
		echo error
}

deadline=$((SECONDS + SCRAPE_TIMEOUT))
while :; do
	up=$(query 'up{job="riskgate"}')
	allow=$(query 'sum(riskgate_requests_total{decision="allow"})')
	block=$(query 'sum(riskgate_requests_total{decision="block"})')
	[ "$up" = 1 ] && [ "$allow" = "$N_ALLOW" ] && [ "$block" = "$M_BLOCK" ] && break
	if ((SECONDS >= deadline)); then
		fail "after ${SCRAPE_TIMEOUT}s Prometheus reports up=$up, allow=$allow (want $N_ALLOW), block=$block (want $M_BLOCK)"
	fi
	sleep 0.5
done
ok "prometheus scraped the demo: up=1, sum(riskgate_requests_total{decision=\"allow\"})=$allow, {decision=\"block\"}=$block"

# Every rule of alerts.yml has been evaluated against live data without error.
deadline=$((SECONDS + SCRAPE_TIMEOUT))
while :; do
	rules=$(curl -s --max-time 5 "http://$PROM/api/v1/rules" |
		jq -r '[.data.groups[].rules[]] | "\(length) \([.[] | select(.health != "ok")] | length) \([.[] | select(.health == "err") | "\(.name): \(.lastError)"] | join("; "))"' 2>/dev/null) || rules=""
	read -r nrules nbad errs <<<"$rules" || true
	[ -n "${nrules:-}" ] && ((nrules > 0)) && [ "$nbad" = 0 ] && break
	[ -z "${errs:-}" ] || fail "rule evaluation errors: $errs"
	((SECONDS < deadline)) || fail "rules not all evaluated with health ok within ${SCRAPE_TIMEOUT}s: ${rules:-no answer}"
	sleep 0.5
done
ok "$nrules rules of alerts.yml evaluate on live data with health ok"
firing=$(curl -s --max-time 5 "http://$PROM/api/v1/alerts" | jq -r '[.data.alerts[] | "\(.labels.alertname)(\(.state))"] | join(", ")')
ok "alerts now: ${firing:-none}"

# Every dashboard query runs on the live Prometheus (Grafana's variables as
# above); those that have data are counted.
with_data=0 total=0
while IFS= read -r expr; do
	total=$((total + 1))
	v=$(query "$expr")
	[ "$v" != error ] || fail "dashboard query fails on live Prometheus: $expr"
	[ "$v" = none ] || with_data=$((with_data + 1))
done <"$TMP/dashboard.exprs"
ok "all $total dashboard queries run on the live Prometheus ($with_data return data now)"

names=$(curl -s --max-time 5 "http://$PROM/api/v1/label/__name__/values" | jq -r '.data[] | select(startswith("riskgate_"))')
missing=()
for m in riskgate_requests_total riskgate_request_duration_seconds_bucket riskgate_config_last_reload_successful; do
	grep -qx "$m" <<<"$names" || missing+=("$m")
done
((${#missing[@]} == 0)) || fail "metrics missing from the scrape: ${missing[*]}"
ok "riskgate metrics scraped: $(grep -c . <<<"$names") names ($(tr '\n' ' ' <<<"$names"))"

say "check.sh: all checks passed"
