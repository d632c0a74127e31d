"""WebSocket closes through daphne as ASGI has them: daphne drops the ``reason`` both ways
(its ``websocket.close`` sends the code only, its ``websocket.disconnect`` carries the code
only), and autobahn's ``sendClose`` refuses every code but 1000 and 3000-4999, so 1001
(going away), 1009 (too big) and 1011 (the engine failed) raise instead of closing. The
realtime relay passes each side's code and reason to the other, so the launcher
(``llm_gateway.run``) patches daphne's WebSocket protocol before it runs."""

from __future__ import annotations

from typing import Any


def carry_close_reasons() -> None:
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(WebSocketProtocol, "_llm_gateway_reasons", False):
        return
    handle_reply = WebSocketProtocol.handle_reply
    on_close = WebSocketProtocol.onClose

    def replying(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            code = int(message.get("code") or 1000)
            reason = str(message.get("reason") or "").encode()[:123] or None
            self.sendCloseFrame(code=code, reasonUtf8=reason, isReply=False)
            return
        handle_reply(self, message)

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
    WebSocketProtocol._llm_gateway_reasons = True
