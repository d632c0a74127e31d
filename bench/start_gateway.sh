#!/usr/bin/env bash
# Start one gateway process for the benchmark, in front of the harness's fake engine:
#   bench/start_gateway.sh PORT [KEY]
# A database of its own in $BENCH_VAR (migrated, KEY stored as a database key, as a real
# deployment has), access and response logging as the environment says, then exec daphne so
# the PID the harness measures is the server's. Extra daphne options: $DAPHNE_ARGS; the
# application: $GATEWAY_APP (project.asgi:application, the fast path). BENCH_KEY_LIMITS=true
# gives the key every limit (high enough never to refuse: the cost of checking them; the
# limits are in Redis when REDIS_URL is set). BENCH_MONEY=true prices the model and gives the
# key, its owner and its team a money budget (pricing and money budgets: their cost).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=$1
KEY=${2:-sk-00000000-benchbenchbenchbenchbenchbenchbenchbenchben}
export LLM_GATEWAY_VAR_DIR=${BENCH_VAR:-/tmp/llm-gateway-bench}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-project.settings}
export LLM_GATEWAY_UPSTREAM_URL=${LLM_GATEWAY_UPSTREAM_URL:-${FAKE_UPSTREAM_URL:?}}
export LLM_GATEWAY_ACCESS_LOG=${LLM_GATEWAY_ACCESS_LOG:-false}
mkdir -p "$LLM_GATEWAY_VAR_DIR"
.venv/bin/python manage.py migrate --no-input -v 0
.venv/bin/python - "$KEY" <<'PY'
import os, sys, django
django.setup()
from llm_gateway import keys
from llm_gateway.models import ApiKey
raw = sys.argv[1]
ApiKey.objects.filter(name="bench").delete()
limits = {}
if os.environ.get("BENCH_KEY_LIMITS") == "true":
    limits = dict(rpm=10**9, tpm=10**9, max_parallel=10**6, allowed_models="fake-*",
                  token_budget=10**15, budget_period="day")
if os.environ.get("BENCH_MONEY") == "true":
    from decimal import Decimal
    from django.contrib.auth.models import Group, User
    from llm_gateway.models import ModelPrice, TeamLimits, UserLimits
    ModelPrice.objects.update_or_create(
        pattern="fake-*", defaults=dict(input=Decimal("0.15"), output=Decimal("0.60"))
    )
    budget = dict(cost_budget=Decimal(10**9), budget_period="month")
    team, _ = Group.objects.get_or_create(name="bench-team")
    TeamLimits.objects.update_or_create(group=team, defaults=budget)
    owner, _ = User.objects.get_or_create(username="bench-owner")
    UserLimits.objects.update_or_create(user=owner, defaults=budget)
    limits |= dict(budget, team=team, owner=owner)
ApiKey.objects.create(name="bench", prefix=keys.prefix_of(raw), digest=keys.digest(raw), **limits)
PY
ulimit -n "$(ulimit -Hn)"  # a thousand open streams need two thousand sockets
WORKERS=${GATEWAY_WORKERS:+--workers $GATEWAY_WORKERS}
exec .venv/bin/python -m llm_gateway.run $WORKERS -v 0 -b 127.0.0.1 -p "$PORT" ${DAPHNE_ARGS:-} "${GATEWAY_APP:-project.asgi:application}"
