"""Pure ASGI middleware: each wraps an ASGI app and keeps per-request state in the scope.

They are ASGI middleware rather than Django ``MIDDLEWARE`` entries so that they also guard
the /v1 relay, which does not go through Django's request cycle (see ``llm_gateway.asgi``).
"""
