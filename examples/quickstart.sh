#!/usr/bin/env bash
# Runs the director against three real HTTP backends on loopback. Without
# IPVS in the kernel (or without root) it uses -dry-run: an in-memory table,
# every change logged. Watch a backend go down and come back; Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$bin"
}
trap cleanup EXIT INT TERM

# A first build downloads the modules and compiles everything: a minute or
# two on a small machine. Say so, and show what go is doing, rather than
# sit silent: each module as it downloads, each package as it compiles.
echo "quickstart: fetching the Go modules that are not in the module cache yet..."
go mod download -x 2>&1 | { grep --line-buffered '^# get .*\.zip$' || true; } |
	sed -u -e 's|^# get [a-z]*://[^/]*/|quickstart:   downloading |' -e 's|/@v/| |' -e 's|\.zip$||'
echo "quickstart: building the director and a demo backend (the first build takes a minute or two; packages as they compile):"
go build -v -o "$bin/director" ./cmd/director 2>&1 | sed -u 's/^/quickstart:   /'
go build -o "$bin/demo-backend" ./examples/demo-backend
echo "quickstart: built; starting three demo backends on 127.0.0.1:8081-8083 and the director"

"$bin/demo-backend" -listen 127.0.0.1:8081 2>/dev/null & pids+=($!)
"$bin/demo-backend" -listen 127.0.0.1:8082 2>/dev/null & pids+=($!)
"$bin/demo-backend" -listen 127.0.0.1:8083 -flap 20s 2>/dev/null & pids+=($!)

mode=(-dry-run)
if [ "${DIRECTOR_REAL_KERNEL:-}" = 1 ]; then mode=(); fi
echo "director: metrics on http://127.0.0.1:9410/metrics; 127.0.0.1:8083 flaps every 20 s"
"$bin/director" run examples/quickstart.toml "${mode[@]}" & pids+=($!)
wait "${pids[-1]}"
