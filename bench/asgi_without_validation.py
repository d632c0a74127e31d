"""The example project's application with request validation emptied: the "off" side of
``bench/feature_cost.py --feature validation`` (the product has no switch for it; OpenAI's
refusals are not optional). Clearing the table leaves one dict lookup per request."""

from llm_gateway.core import validate
from project.asgi import application

validate.FIELDS.clear()

__all__ = ["application"]
