"""The one body-size limit, as both faces read a request body: a declared length over the
limit is refused before any byte is read, and a body that grows past it as soon as it does."""

from __future__ import annotations

from ..errors import RequestTooLargeError


class BodyLimit:
    __slots__ = ("limit", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0

    def declared(self, length: bytes | str | None) -> None:
        """The request's Content-Length, checked before reading."""
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise self.error()

    def add(self, size: int) -> None:
        """Bytes read so far grew by ``size``."""
        self.size += size
        if self.size > self.limit:
            raise self.error()

    def error(self) -> RequestTooLargeError:
        return RequestTooLargeError(f"Request body exceeds the limit of {self.limit} bytes.")
