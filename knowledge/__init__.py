"""The knowledge base: curated entries, the alliance's structured data, calendars, ingested documents."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from knowledge.engine import Engine
    from runtime import Runtime


def engine_for(rt: "Runtime") -> "Engine":
    """The app's shared engine (built once, reloaded when the files or the database change)."""
    from knowledge.engine import Engine

    return rt.service("knowledge", lambda: Engine(db=rt.db,
                                                 threshold=rt.settings.confidence_threshold))
