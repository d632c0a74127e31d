"""Priority classes and fairness tenants: what the scheduler knows of who asks.

Three classes, highest first: ``interactive``, ``default``, ``batch`` (a rank: 0, 1, 2). A key
has a default class and a highest class it may ask for (its own, else its team's, else its
owner's; by default ``default`` for both); a client asks with ``X-Gateway-Priority``, and a
class above the key's cap is lowered to the cap, never refused. The fairness tenant is the
key's owner when it has one, else the key (``LLM_GATEWAY_FAIRNESS_BY``: ``owner``, ``key`` or
``team``, a team falling back to the owner, then the key), with that level's ``share``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidRequestError

CLASSES = ("interactive", "default", "batch")
DEFAULT_RANK = 1
PRIORITY_HEADER = b"x-gateway-priority"
FAIR_FIELDS = ("priority", "max_priority", "share")  # on keys, users' and teams' limits


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str  # "key:12", "owner:3", "team:5": one counter per tenant
    share: float = 1.0


@dataclass(frozen=True, slots=True)
class FairShare:
    """What a key's rows say of its scheduling (``keys.store`` reads them with the key)."""

    rank: int = DEFAULT_RANK  # its default class
    cap: int = DEFAULT_RANK  # the highest class it may ask for (a lower rank is higher)
    key: Tenant | None = None
    owner: Tenant | None = None
    team: Tenant | None = None

    def tenant(self, by: str) -> Tenant:
        """The tenant counted for fairness: ``by``'s level where the key has one."""
        order = {
            "team": (self.team, self.owner, self.key),
            "owner": (self.owner, self.key),
            "key": (self.key,),
        }[by]
        return next((tenant for tenant in order if tenant is not None), ANONYMOUS)


ANONYMOUS = Tenant("anonymous")
NO_FAIR_SHARE = FairShare()


def fair_share_of(levels: dict[str, dict[str, object] | None], ids: dict[str, object]) -> FairShare:
    """A key's ``FairShare`` from its levels' fields (``key``, ``team``, ``owner``: each a
    dict of ``FAIR_FIELDS``, or None) and their ids: the class is the key's own, else its
    team's, else its owner's; the cap likewise, else the class (never below it)."""

    def first(field: str) -> int | None:
        for level in ("key", "team", "owner"):
            fields = levels.get(level)
            if fields and (rank := rank_of(fields.get(field))) is not None:  # type: ignore[arg-type]
                return rank
        return None

    rank = first("priority")
    rank = DEFAULT_RANK if rank is None else rank
    cap = first("max_priority")
    cap = rank if cap is None else min(cap, rank)
    tenants: dict[str, Tenant] = {}
    for level in ("key", "owner", "team"):
        if ids.get(level) is not None:
            share = (levels.get(level) or {}).get("share")
            tenants[level] = Tenant(
                f"{level}:{ids[level]}", float(share) if isinstance(share, int) and share else 1.0
            )
    return FairShare(rank, cap, tenants.get("key"), tenants.get("owner"), tenants.get("team"))


def rank_of(name: str | None) -> int | None:
    """The rank of a class name ('' or None: no class given)."""
    return CLASSES.index(name) if name in CLASSES else None


def asked_rank(fair: FairShare, header: bytes | None) -> int:
    """The class a request runs in: the key's, or what the client asked, lowered to the cap.
    An unknown class is a 400 naming the header."""
    if header is None:
        return fair.rank
    name = header.decode("latin-1").strip().lower()
    rank = rank_of(name)
    if rank is None:
        raise InvalidRequestError(
            f"X-Gateway-Priority must be one of {', '.join(CLASSES)}, not {name[:40]!r}.",
            param="X-Gateway-Priority",
            code="invalid_priority",
        )
    return max(rank, fair.cap)
