"""The app's configuration: it registers the system checks, holds this process's runtime, and
in a daphne server installs the server's patches (``llm_gateway.server``), whichever command
started daphne: the launcher or the plain ``daphne`` CLI (either imports ``daphne.cli``
before it loads the application)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig
from django.core.signals import setting_changed

if TYPE_CHECKING:
    from .runtime import Runtime


class LlmGatewayConfig(AppConfig):
    name = "llm_gateway"
    verbose_name = "LLM gateway"
    default_auto_field = "django.db.models.BigAutoField"

    # Set by ``gateway_application()`` as it is built: this process serves the fast face, so
    # the system check holds its prefix to the guarded ones (llm_gateway.E004).
    fast_face = False

    def __init__(self, app_name: str, app_module: Any) -> None:
        super().__init__(app_name, app_module)
        self._runtime: Runtime | None = None
        self._retired: list[Runtime] = []  # replaced after a setting changed: closed at shutdown

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .audit import register as register_audited
        from .server import checks as server_checks  # noqa: F401  (and the server's)

        register_audited()  # the audit trail's models (when django-auditlog is installed)

        setting_changed.connect(self._setting_changed, dispatch_uid="llm_gateway.settings")
        if "daphne.cli" in sys.modules:  # a daphne server is starting (the CLI or the launcher)
            from .server import apply

            apply()

    @property
    def runtime(self) -> Runtime:
        """This process's runtime, built from the settings on first use."""
        runtime = self._runtime
        if runtime is None:
            from .conf import conf
            from .runtime import Runtime

            runtime = self._runtime = Runtime.from_settings(conf)
        return runtime

    def _setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        """A changed ``LLM_GATEWAY_*`` setting (``override_settings``): read the settings
        again, and build the next runtime from them."""
        from .conf import PREFIX, conf

        if setting.startswith(PREFIX):
            conf.reload()
            if self._runtime is not None:
                self._retired.append(self._runtime)
                self._runtime = None

    async def aclose(self) -> None:
        """Stop every runtime of this process (the current one and any replaced)."""
        runtimes = [*self._retired, *([self._runtime] if self._runtime else [])]
        self._retired.clear()
        for runtime in runtimes:
            await runtime.aclose()

    def reset(self) -> None:
        """Forget the runtime without closing it (tests: each builds its own)."""
        from .conf import conf

        conf.reload()
        self._runtime = None
        self._retired.clear()
