#!/usr/bin/env bash
# The gateway next to its peers, one run, one table (ratios against `direct`):
#   bench/run.sh [harness options, e.g. --peers direct --duration 5]
# Targets: gateway (one daphne process, the ASGI fast path, response logging off), gateway-log
# (logging on), gateway-2w (two daphne processes on one port), gateway-django (the Django face
# alone: MIDDLEWARE + urls.py, the API at /llm/v1, with the admin's middleware),
# gateway-django-api (the same with only the gateway's middleware, project.settings_api),
# gateway-pg (the fast path with its request log in PostgreSQL: BENCH_DATABASE_URL),
# gateway-limits (the fast path, its key with every limit, in the Redis of BENCH_REDIS_URL;
# its request log in BENCH_DATABASE_URL when set, as gateway-pg's), gateway-off (the fast path
# with usage, the request log, metrics and the scheduler off), gateway-all (every feature on:
# the request log in BENCH_DATABASE_URL, every limit on the key and money budgets on it, its
# owner and its team in BENCH_REDIS_URL, the model priced, metrics, the scheduler; tracing off).
# BENCH_BASE=REV adds gateway-before: the fast path as it was at commit REV (a worktree in
# /tmp sharing this .venv), so a change is measured before and after in one run.
# BENCH_TARGETS=gateway,gateway-django picks some. Peers: direct, nginx, LiteLLM (../shared/bench). About 10 minutes with the defaults.
# Then bench/open_streams.py for memory per open stream.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
SHARED=${SHARED_BENCH:-../shared/bench}
KEY=sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben
AUTH="Authorization: Bearer $KEY"
args=()
WANTED=${BENCH_TARGETS:-gateway,gateway-log,gateway-2w,gateway-django,gateway-django-api}
target() {  # target NAME PORT [BASE_PATH] [--env K=V ...]; TREE: the checkout it runs
    local name=$1 port=$2 base=""; shift 2
    if [[ "${1:-}" == /* ]]; then base=$1; shift; fi
    [[ ",$WANTED," == *",$name,"* ]] || return 0
    args+=(--target "$name=http://127.0.0.1:$port$base" --start "bench/start_gateway.sh $port $KEY"
        --cwd "${TREE:-.}" --header "$AUTH" --env "BENCH_VAR=/tmp/llm-gateway-bench-$name" "$@")
}
if [[ -n "${BENCH_BASE:-}" ]]; then
    WANTED="$WANTED,gateway-before"
    BASE_TREE=/tmp/llm-gateway-base-$(git rev-parse --short "$BENCH_BASE")
    [[ -d "$BASE_TREE" ]] || git worktree add -f --detach "$BASE_TREE" "$BENCH_BASE" >/dev/null
    ln -sfn "$PWD/.venv" "$BASE_TREE/.venv"
    TREE=$BASE_TREE target gateway-before 8009
fi
target gateway 8001
target gateway-log 8002 --env LLM_GATEWAY_LOG_RESPONSES=true
target gateway-2w 8003 --env GATEWAY_WORKERS=2
target gateway-django 8004 /llm --env DJANGO_SETTINGS_MODULE=project.settings_django \
    --env GATEWAY_APP=project.asgi_django:application
target gateway-django-api 8005 /llm --env DJANGO_SETTINGS_MODULE=project.settings_api \
    --env GATEWAY_APP=project.asgi_django:application
# The request log in PostgreSQL, as in production (BENCH_DATABASE_URL, e.g.
# postgres://postgres@127.0.0.1:5432/llm_gateway_bench; the database must exist).
if [[ -n "${BENCH_DATABASE_URL:-}" ]]; then
    target gateway-pg 8006 --env "DATABASE_URL=$BENCH_DATABASE_URL"
fi
if [[ -n "${BENCH_REDIS_URL:-}" ]]; then
    target gateway-limits 8007 --env "REDIS_URL=$BENCH_REDIS_URL" --env BENCH_KEY_LIMITS=true \
        ${BENCH_DATABASE_URL:+--env "DATABASE_URL=$BENCH_DATABASE_URL"}
fi
target gateway-off 8010 --env LLM_GATEWAY_USAGE=false --env LLM_GATEWAY_REQUEST_LOG=false \
    --env LLM_GATEWAY_METRICS=false --env LLM_GATEWAY_SCHEDULER=false
if [[ -n "${BENCH_REDIS_URL:-}" && -n "${BENCH_DATABASE_URL:-}" ]]; then
    target gateway-all 8011 --env "REDIS_URL=$BENCH_REDIS_URL" --env "DATABASE_URL=$BENCH_DATABASE_URL" \
        --env BENCH_KEY_LIMITS=true --env BENCH_MONEY=true
fi
exec "$SHARED/run.sh" --duration 8 "$@" "${args[@]}"
