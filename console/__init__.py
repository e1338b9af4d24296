"""The organisers' web console under /admin: one blueprint per area inside the `console` gate."""
from __future__ import annotations

from flask import Flask, request

from console.auth import bp, login_required, security_headers

_AREAS = ("dashboard", "knowledge", "activities", "broadcasts", "simulator", "audit", "needs",
          "projects", "inbox")
_nested: list[bool] = []


def _nest_areas() -> None:
    """Attach each area's blueprint to the gate once, whatever number of apps are built."""
    import importlib

    if _nested:
        return
    for name in _AREAS:
        bp.register_blueprint(importlib.import_module(f"console.{name}").bp)
    _nested.append(True)


def init_app(app: Flask) -> None:
    """Register the console on an app (bot.create_app calls this)."""
    _nest_areas()
    app.register_blueprint(bp)

    @app.after_request
    def console_headers(resp):
        """Every /admin and /simulator response, even an error no blueprint owns."""
        if request.path.startswith(("/admin", "/simulator")):
            security_headers(resp)
        return resp


__all__ = ["init_app", "login_required", "bp"]
