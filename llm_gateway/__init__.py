"""llm_gateway: an OpenAI-compatible gateway for Django, in front of LLM inference engines."""

__version__ = "0.1.0"
