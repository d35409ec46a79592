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

go build -o "$bin/director" ./cmd/director
go build -o "$bin/demo-backend" ./examples/demo-backend

"$bin/demo-backend" -listen 127.0.0.1:8081 2>/dev/null & pids+=($!)
"$bin/demo-backend" -listen 127.0.0.1:8082 2>/dev/null & pids+=($!)
"$bin/demo-backend" -listen 127.0.0.1:8083 -flap 20s 2>/dev/null & pids+=($!)

mode=(-dry-run)
if [ "${DIRECTOR_REAL_KERNEL:-}" = 1 ]; then mode=(); fi
echo "director: metrics on http://127.0.0.1:9410/metrics; 127.0.0.1:8083 flaps every 20 s"
"$bin/director" run -config examples/quickstart.toml "${mode[@]}" & pids+=($!)
wait "${pids[-1]}"
