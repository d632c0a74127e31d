#!/usr/bin/env bash
# Set up, then serve the gateway with daphne on 127.0.0.1:8000 (PORT to change it).
# Engine: LLM_GATEWAY_UPSTREAM_URL (e.g. http://127.0.0.1:8001/v1 for a running vLLM); when it
# is not set, a local llama.cpp engine with SmolLM2-135M starts on ENGINE_PORT (8001) first.
# Ctrl-C stops everything this script started.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
PORT=${PORT:-8000}
ENGINE_PORT=${ENGINE_PORT:-8001}
MODEL=${MODEL:-my-model}
pids=()
stop_all() {
    trap - EXIT INT TERM
    ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
    exit 0
}
trap stop_all EXIT INT TERM

wait_http() {  # wait_http URL [HEADER]: until the URL answers 200, at most 120 s
    .venv/bin/python - "$@" <<'PY'
import sys, time, urllib.request
request = urllib.request.Request(sys.argv[1], headers=dict([sys.argv[2].split(": ", 1)]) if len(sys.argv) > 2 else {})
for _ in range(1200):
    try:
        if urllib.request.urlopen(request, timeout=2).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(f"{sys.argv[1]} did not answer")
PY
}

if [ -z "${LLM_GATEWAY_UPSTREAM_URL:-}" ]; then
    echo "LLM_GATEWAY_UPSTREAM_URL is not set: starting llama.cpp with SmolLM2-135M-Instruct on 127.0.0.1:$ENGINE_PORT." >&2
    echo "(The first run builds llama-cpp-python: about 4 minutes on 2 cores.)" >&2
    install_local_engine
    .venv/bin/python manage.py run_local_engine --port "$ENGINE_PORT" &
    pids+=($!)
    wait_http "http://127.0.0.1:$ENGINE_PORT/v1/models"
    export LLM_GATEWAY_UPSTREAM_URL="http://127.0.0.1:$ENGINE_PORT/v1"
    # llama-cpp-python's server answers 400 to an X-Request-Id that is not a UUID.
    export LLM_GATEWAY_UPSTREAM_REQUEST_ID_HEADER=${LLM_GATEWAY_UPSTREAM_REQUEST_ID_HEADER-X-Gateway-Request-Id}
    MODEL=SmolLM2-135M-Instruct
fi

KEY=$(.venv/bin/python manage.py create_api_key quickstart --replace 2>/dev/null | tail -n 1)
# llm_gateway.run is daphne with uvloop under its Twisted reactor (docs/performance.md);
# -v 0: daphne's own access log off, llm_gateway.access writes one line per request instead.
.venv/bin/python -m llm_gateway.run -v 0 -b 127.0.0.1 -p "$PORT" project.asgi:application &
pids+=($!)
wait_http "http://127.0.0.1:$PORT/v1/models" "Authorization: Bearer $KEY"

BODY="{\"model\": \"$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"Say hello in five words.\"}], \"max_tokens\": 24}"
cat <<MSG

llm_gateway on http://127.0.0.1:$PORT (admin: /admin/, health: /health), engine: $LLM_GATEWAY_UPSTREAM_URL
API key "quickstart" (replaced at each start; shown only here):

    $KEY

    curl http://127.0.0.1:$PORT/v1/chat/completions -H "Authorization: Bearer $KEY" \\
      -H "Content-Type: application/json" -d '$BODY'

    .venv/bin/python -c 'from openai import OpenAI; c = OpenAI(base_url="http://127.0.0.1:$PORT/v1", api_key="$KEY"); print(c.chat.completions.create(model="$MODEL", messages=[{"role": "user", "content": "Hello"}]).choices[0].message.content)'

MSG
.venv/bin/python - "$PORT" "$KEY" "$MODEL" <<'PY'
import sys
from openai import OpenAI
port, key, model = sys.argv[1:]
client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=120)
try:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello in five words."}], max_tokens=24
    )
    print(f"Smoke test through the gateway, {model} says: {answer.choices[0].message.content!r}")
except Exception as exc:  # an engine of the user's that is not up yet: say so, keep serving
    print(f"Smoke test through the gateway failed: {exc}", file=sys.stderr)
PY
echo "Serving. Ctrl-C stops everything this script started."
wait -n "${pids[@]}"  # one of them ended: stop the other too (EXIT trap)
