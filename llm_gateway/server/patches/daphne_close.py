"""WebSocket closes through daphne as ASGI has them: daphne drops the ``reason`` both ways
(its ``websocket.close`` sends the code only, its ``websocket.disconnect`` carries the code
only), and autobahn's ``sendClose`` refuses every code but 1000 and 3000-4999, so 1001
(going away), 1009 (too big) and 1011 (the engine failed) raise instead of closing. The
realtime relay passes each side's code and reason to the other, so daphne's WebSocket
protocol is patched to send the close frame itself and to hand the reason on."""

from __future__ import annotations

import functools
from typing import Any

from .guard import require_assigned, require_attributes, require_method, require_version

MARK = "_llm_gateway_reasons"


def check() -> None:
    require_version("daphne")
    require_version("autobahn")
    from daphne.ws_protocol import WebSocketProtocol

    require_attributes(
        WebSocketProtocol, "STATE_CONNECTING", "muted", "sendCloseFrame", "onClose", "handle_reply"
    )
    # onClose hands websocket.disconnect to the application through its queue.
    require_assigned(WebSocketProtocol, "onClose", "application_queue", "muted")
    require_method(WebSocketProtocol, "handle_reply", "self", "message")
    require_method(WebSocketProtocol, "onClose", "self", "wasClean", "code", "reason")
    require_method(WebSocketProtocol, "sendCloseFrame", "self", "code", "reasonUtf8", "isReply")


def install() -> None:
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(WebSocketProtocol, MARK, False):
        return
    handle_reply = WebSocketProtocol.handle_reply
    on_close = WebSocketProtocol.onClose

    @functools.wraps(handle_reply)
    def replying(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            code = int(message.get("code") or 1000)
            reason = str(message.get("reason") or "").encode()[:123] or None
            self.sendCloseFrame(code=code, reasonUtf8=reason, isReply=False)
            return
        handle_reply(self, message)

    @functools.wraps(on_close)
    def closed(self: Any, was_clean: bool, code: int | None, reason: str | None) -> None:
        queue = getattr(self, "application_queue", None)
        if queue is not None and not self.muted and reason:
            put = queue.put_nowait

            def with_reason(event: dict[str, Any]) -> None:
                if event.get("type") == "websocket.disconnect":
                    event = {**event, "reason": reason}
                put(event)

            queue.put_nowait = with_reason
            try:
                on_close(self, was_clean, code, reason)
            finally:
                queue.put_nowait = put
            return
        on_close(self, was_clean, code, reason)

    WebSocketProtocol.handle_reply = replying
    WebSocketProtocol.onClose = closed
    setattr(WebSocketProtocol, MARK, True)
