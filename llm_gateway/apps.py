from django.apps import AppConfig


class LlmGatewayConfig(AppConfig):
    name = "llm_gateway"
    verbose_name = "LLM gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
