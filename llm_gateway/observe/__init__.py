"""Observers of the relay core: what is told of each request (logs, usage, metrics)."""
