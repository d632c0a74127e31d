"""Server-sent events, framework-free: the WHATWG decoder, event boundaries in relayed bytes,
and the fields of OpenAI stream chunks."""
