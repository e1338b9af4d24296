"""The storage layer: every SQL statement of the bot lives in this package.

Modules are named for what they store; each takes a sqlite-utils `Database` first.
"""
from storage.db import close_thread_connections, connect, immediate, open_db
from storage.migrations import migrate

__all__ = ["connect", "open_db", "immediate", "migrate", "close_thread_connections"]
