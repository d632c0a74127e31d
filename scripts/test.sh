#!/usr/bin/env bash
# Set up, then run the whole test suite (arguments go to pytest). .ci/run calls this.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export PYTHONDEVMODE=1
exec .venv/bin/python -m pytest "$@"
