"""The relay core, framework-free: a request value in, a reply value out.

It imports no ASGI server, no Django and no Twisted type (a contract in ``pyproject.toml``
keeps it so); its options arrive as values (``options``). The faces (``llm_gateway.asgi`` and
the Django views) turn their requests into ``GatewayRequest`` and send the ``Reply`` back.
"""

from .exchange import key_required
from .hooks import Admission, Observer, Policy, Responder, Tap
from .options import RelayOptions
from .record import RequestRecord
from .relay import Relay
from .request import CLIENT_STALL, GatewayRequest, Principal, Reply, Stall

__all__ = [
    "CLIENT_STALL",
    "Admission",
    "GatewayRequest",
    "Observer",
    "Policy",
    "Responder",
    "Principal",
    "Relay",
    "RelayOptions",
    "Reply",
    "RequestRecord",
    "Stall",
    "Tap",
    "key_required",
]
