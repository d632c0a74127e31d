"""The relay core, framework-free: a request value in, a reply value out.

It imports no ASGI and no Django request type; the faces (``llm_gateway.asgi`` and the Django
views) turn their requests into ``GatewayRequest`` and send the ``Reply`` back.
"""
