"""The audit trail: every change to keys, limits, prices and portal policies, with who made
it (a user, a command and its OS user, or a key through the usage API), from where and
under which request id. Recorded by django-auditlog (a well-kept library made for this);
nothing on a relayed request writes to it."""

from .actors import acting, for_command, for_key, for_request
from .records import actor_of, changes_of, line, via_of, what_of
from .registry import AUDITED, register

__all__ = [
    "AUDITED",
    "acting",
    "actor_of",
    "changes_of",
    "for_command",
    "for_key",
    "for_request",
    "line",
    "register",
    "via_of",
    "what_of",
]
