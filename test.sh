#!/usr/bin/env bash
# The one test command (README "Development"): formatting, vet, unit and
# integration tests with the race detector, the browser and Dex end-to-end
# module, the Prometheus rules and a real Prometheus scraping riskgate.
set -euo pipefail
cd "$(dirname "$0")"

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 ./...

if [ -d e2e ]; then
	echo "== e2e (Dex, headless Chromium)"
	(cd e2e && go vet ./... && go test -count=1 -timeout 20m ./...)
fi

if [ -x deploy/prometheus/check.sh ]; then
	echo "== prometheus rules and live scrape"
	deploy/prometheus/check.sh
fi
