#!/usr/bin/env bash
# The gateway next to its peers, one run, one table (ratios against `direct`):
#   bench/run.sh [harness options, e.g. --peers direct --duration 5]
# Targets: gateway (one daphne process, response logging off), gateway-log (logging on),
# gateway-2w (two daphne processes on one port). Peers: direct, nginx, LiteLLM (../shared/bench).
# About 8 minutes with the defaults. Then bench/open_streams.py for memory per open stream.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
SHARED=${SHARED_BENCH:-../shared/bench}
KEY=sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben
AUTH="Authorization: Bearer $KEY"
args=()
target() {  # target NAME PORT [--env K=V ...]
    local name=$1 port=$2; shift 2
    args+=(--target "$name=http://127.0.0.1:$port" --start "bench/start_gateway.sh $port $KEY"
        --cwd . --header "$AUTH" --env "BENCH_VAR=/tmp/llm-gateway-bench-$name" "$@")
}
target gateway 8001
target gateway-log 8002 --env LLM_GATEWAY_LOG_RESPONSES=true
target gateway-2w 8003 --env GATEWAY_WORKERS=2
exec "$SHARED/run.sh" --duration 8 "$@" "${args[@]}"
