"""OTLP's protobuf, written directly: the bytes of an ``ExportTraceServiceRequest`` for a
batch of spans, without building a protobuf object per span, attribute and value.

Why our own: the SDK's encoder (``opentelemetry-exporter-otlp-proto-common``) builds a
message object for every attribute and value; measured here (bench/feature_cost.py
--feature tracing and docs/performance.md) it cost 40 us of CPU per span, in the gateway's
process (on its batching thread, but under the same GIL as the event loop): more than all the
rest of a traced request. This writes the same message in 5 us. A test holds the two equal,
field for field, by decoding both with ``opentelemetry-proto``; a batch holding anything this
does not write (events, links, an attribute of another type) goes to the SDK's encoder.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200  # SpanFlags
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")


class Unwritable(Exception):
    """The batch holds something this encoder does not write: use the SDK's."""


_BYTE = [bytes((i,)) for i in range(256)]
_LENGTH_TAGS = [_BYTE[number << 3 | 2] for number in range(16)]  # fields 1-15, one byte
_SCALARS = frozenset({str, int, bool})
MAX_MEMO = 4096


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _BYTE[value]
    value &= 0xFFFFFFFFFFFFFFFF  # int64: two's complement on ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages)."""
    tag = _LENGTH_TAGS[number] if number < 16 else _varint(number << 3 | 2)
    size = len(payload)
    return tag + (_BYTE[size] if size < 0x80 else _varint(size)) + payload


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode("utf-8")) if value else b""


class Encoder:
    """Writes batches; remembers the encodings that repeat from span to span (attribute keys,
    and scalar pairs: the model, the operation, the replica). A memo is emptied when full:
    request ids never repeat, and the repeating pairs come back at once."""

    def __init__(self, max_memo: int = MAX_MEMO) -> None:
        self.max_memo = max_memo
        self._keys: dict[str, bytes] = {}  # a key, as KeyValue's field 1
        self._pairs: dict[tuple[str, type, Any], bytes] = {}  # a whole KeyValue's body

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """An ``ExportTraceServiceRequest``: spans grouped by resource, then by scope."""
        # By identity: a Resource hashes by dumping its attributes to JSON, per span.
        resources: dict[int, Resource] = {}
        grouped: dict[int, dict[InstrumentationScope | None, list[bytes]]] = {}
        for span in spans:
            resource = span.resource
            if (by_scope := grouped.get(id(resource))) is None:
                by_scope = grouped[id(resource)] = {}
                resources[id(resource)] = resource
            by_scope.setdefault(span.instrumentation_scope, []).append(self._span(span))
        out = []
        for key, by_scope in grouped.items():
            resource = resources[key]
            body = [_field(1, self._attributes(resource.attributes, 1))]
            for scope, encoded in by_scope.items():
                scope_spans = _field(1, self._scope(scope)) + b"".join(
                    _field(2, s) for s in encoded
                )
                if scope is not None and scope.schema_url:
                    scope_spans += _text(3, scope.schema_url)
                body.append(_field(2, scope_spans))
            if resource.schema_url:
                body.append(_text(3, resource.schema_url))
            out.append(_field(1, b"".join(body)))
        return b"".join(out)

    def _span(self, span: ReadableSpan) -> bytes:
        if span.events or span.links or span.dropped_attributes:
            raise Unwritable("events, links or dropped attributes")
        context = span.context
        if context is None:
            raise Unwritable("no context")
        out = [
            _field(1, context.trace_id.to_bytes(16, "big")),
            _field(2, context.span_id.to_bytes(8, "big")),
        ]
        if context.trace_state:
            out.append(_text(3, context.trace_state.to_header()))
        parent = span.parent
        if parent is not None:
            out.append(_field(4, parent.span_id.to_bytes(8, "big")))
        out.append(_text(5, span.name))
        out.append(b"\x30" + _varint(span.kind.value + 1))  # OTLP counts from UNSPECIFIED
        out.append(b"\x39" + _FIXED64.pack(span.start_time or 0))
        out.append(b"\x41" + _FIXED64.pack(span.end_time or 0))
        out.append(self._attributes(span.attributes, 9))
        status = span.status
        code = status.status_code.value
        message = status.description or ""
        out.append(_field(15, _text(2, message) + (b"\x18" + _varint(code) if code else b"")))
        flags = HAS_IS_REMOTE | (IS_REMOTE if parent is not None and parent.is_remote else 0)
        out.append(b"\x85\x01" + _FIXED32.pack(flags))  # field 16, fixed32
        return b"".join(out)

    def _scope(self, scope: InstrumentationScope | None) -> bytes:
        if scope is None:
            return b""
        name, version = _text(1, scope.name), _text(2, scope.version or "")
        return name + version + self._attributes(scope.attributes, 3)

    def _attributes(self, attributes: Mapping[str, Any] | None, number: int) -> bytes:
        """Repeated ``KeyValue`` fields."""
        if not attributes:
            return b""
        pairs, out = self._pairs, []
        for key, value in attributes.items():
            if (kind := type(value)) in _SCALARS:
                memo = (key, kind, value)  # the type too: True == 1, and must not share
                pair = pairs.get(memo)
                if pair is None:
                    if len(pairs) >= self.max_memo:
                        pairs.clear()
                    pair = pairs[memo] = self._key(key) + _field(2, self._value(value))
            else:
                pair = self._key(key) + _field(2, self._value(value))
            out.append(_field(number, pair))
        return b"".join(out)

    def _key(self, key: str) -> bytes:
        encoded = self._keys.get(key)
        if encoded is None:
            if len(self._keys) >= self.max_memo:
                self._keys.clear()
            encoded = self._keys[key] = _field(1, key.encode("utf-8"))
        return encoded

    def _value(self, value: Any) -> bytes:
        """An ``AnyValue``."""
        if isinstance(value, str):
            return _field(1, value.encode("utf-8"))
        if isinstance(value, bool):
            return b"\x10" + (b"\x01" if value else b"\x00")
        if isinstance(value, int):
            return b"\x18" + _varint(value)
        if isinstance(value, float):
            return b"\x21" + _DOUBLE.pack(value)
        if isinstance(value, bytes):
            return _field(7, value)
        if isinstance(value, Sequence):
            return _field(5, b"".join(_field(1, self._value(item)) for item in value))
        if isinstance(value, Mapping):
            return _field(6, self._attributes(value, 1))
        raise Unwritable(type(value).__name__)
