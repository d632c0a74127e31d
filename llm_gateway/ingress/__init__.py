"""What both faces do on a request's way in, before the core: which paths need a key
(``paths``), the request id (``request_id``), the body-size limit (``body``), and ASGI's
types (``types``)."""
