"""The request path: ASGI entry, match, decide, forward, stream, hand off to sinks."""
