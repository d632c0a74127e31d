"""The architecture holds: the core imports no framework (checked here by running it with
them blocked, and in .ci/run by import-linter's contracts in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCKED = ("django", "channels", "daphne", "twisted", "autobahn", "asgiref", "uvloop")


def test_the_core_imports_and_relays_with_every_framework_blocked():
    code = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # any import of it raises ImportError
import llm_gateway.core, llm_gateway.core.relay, llm_gateway.sse, llm_gateway.upstream
from llm_gateway.core import Relay, RelayOptions
from llm_gateway.upstream import Upstream, UpstreamPool
relay = Relay(UpstreamPool([Upstream("http://127.0.0.1:9/v1")]), options=RelayOptions())
loaded = sorted({{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}})
print(" ".join(loaded))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert not loaded & set(BLOCKED), loaded
    assert {"llm_gateway", "aiohttp", "orjson", "msgspec"} <= loaded


def test_the_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout, result.stdout[-3000:]
