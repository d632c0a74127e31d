"""Server-sent events, framework-free: the WHATWG decoder and the encoder, event boundaries
and ``[DONE]`` in relayed bytes, and the fields of OpenAI stream chunks."""

from .boundary import DONE, DONE_EVENT, EventBoundary, ends_with_done, split_events
from .chunks import Chunk, chunk_text, decode_chunks, finish_reason
from .decoder import ServerSentEvent, SSEDecoder, encode_event

__all__ = [
    "DONE",
    "DONE_EVENT",
    "Chunk",
    "EventBoundary",
    "SSEDecoder",
    "ServerSentEvent",
    "chunk_text",
    "decode_chunks",
    "encode_event",
    "ends_with_done",
    "finish_reason",
    "split_events",
]
