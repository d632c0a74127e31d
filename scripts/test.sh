#!/usr/bin/env bash
# Set up, then run the whole test suite (arguments go to pytest). .ci/run calls this.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
install_local_engine  # the integration tests run against a real llama.cpp engine
export PYTHONDEVMODE=1
exec .venv/bin/python -m pytest "$@"
