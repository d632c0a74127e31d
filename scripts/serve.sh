#!/usr/bin/env bash
# Set up, then serve the gateway with daphne on 127.0.0.1:8000 (PORT to change it).
# The engine: LLM_GATEWAY_UPSTREAM_URL, e.g. http://127.0.0.1:8001/v1 for a running vLLM.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
PORT=${PORT:-8000}

if [ -z "${LLM_GATEWAY_UPSTREAM_URL:-}" ]; then
    echo "LLM_GATEWAY_UPSTREAM_URL is not set: /v1 requests will answer 503 until it points at an engine." >&2
fi
KEY=$(.venv/bin/python manage.py create_api_key quickstart --replace 2>/dev/null | tail -n 1)
cat <<MSG

llm_gateway on http://127.0.0.1:$PORT  (admin: http://127.0.0.1:$PORT/admin/, health: /health)
API key "quickstart" (replaced at each start; shown only here):

    $KEY

    curl http://127.0.0.1:$PORT/v1/chat/completions -H "Authorization: Bearer $KEY" \\
      -H "Content-Type: application/json" -d '{"model": "MODEL", "messages": [{"role": "user", "content": "Hi"}]}'

    python -c 'from openai import OpenAI; c = OpenAI(base_url="http://127.0.0.1:$PORT/v1", api_key="$KEY"); print(c.models.list())'

MSG
# -v 0: daphne's own access log off; llm_gateway.access writes one line per request instead.
# llm_gateway.run is daphne with uvloop under its Twisted reactor (docs/performance.md).
exec .venv/bin/python -m llm_gateway.run -v 0 -b 127.0.0.1 -p "$PORT" project.asgi:application
