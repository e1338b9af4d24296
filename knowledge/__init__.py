"""The knowledge base: curated entries, the alliance's structured data, calendars, ingested documents."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from knowledge.engine import Engine
    from runtime import Runtime


def engine_for(rt: "Runtime") -> "Engine":
    """The app's current engine (`rt.knowledge` builds it at start and swaps in rebuilds)."""
    return rt.knowledge.engine
