"""Realtime over WebSocket: ``/v1/realtime`` relayed to a replica's own, authenticated at
the upgrade (before accept), limited and metered like any request. ``RealtimeRelay`` is a
plain ASGI application: mount it in a project's ``ProtocolTypeRouter`` (project/asgi.py)."""

from .app import RealtimeRelay

__all__ = ["RealtimeRelay"]
