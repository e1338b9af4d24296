"""模拟器: an organiser talks to the bot as a test member through the real /wechat webhook.

Only test openids (`sim-…` / `test-…`) may be used here, so nobody can speak as a real member.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify, render_template, request, url_for

import simulator.web as sim
from console.auth import csrf_token, login_required, runtime

bp = Blueprint("simulator", __name__, url_prefix="/simulator",
               template_folder=str(Path(sim.__file__).parent / "templates"))
TEST_OPENID, NOT_A_TEST_MEMBER = sim.TEST_OPENID, sim.NOT_A_TEST_MEMBER


@bp.get("/")
@login_required
def index():
    return render_template("console/simulator.html")


@bp.get("/chat")
@login_required
def chat():
    """The chat window (the /simulator page's template), shown inside the console page."""
    resp = render_template("simulator/chat.html", menu=runtime().menu,
                           send_url=url_for(".send"), inbox_url=url_for(".inbox"),
                           csrf=csrf_token())
    return resp, 200, {"X-Frame-Options": "SAMEORIGIN"}


@bp.post("/send")
@login_required
def send():
    try:
        openid, text, event, key = sim.validate(request.get_json(silent=True) or {})
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    if not TEST_OPENID.match(openid):
        return jsonify(error=NOT_A_TEST_MEMBER), 400
    return jsonify(sim.post_as_member(openid, text, event, key))


@bp.get("/inbox")
@login_required
def inbox():
    openid = request.args.get("openid", "")
    if not TEST_OPENID.match(openid):
        return jsonify(error=NOT_A_TEST_MEMBER), 400
    return jsonify(messages=sim.pushed_since(openid, request.args.get("after", 0, type=int)))
