"""The custom menu: one YAML file gives both WeChat's menu JSON and the key -> command map."""
from __future__ import annotations

from pathlib import Path

import yaml

MENU_FILE = Path(__file__).with_name("menu.yaml")
TOP_MAX, SUB_MAX = 3, 5


class MenuError(ValueError):
    """The menu file breaks one of WeChat's menu rules."""


def load(path: Path = MENU_FILE) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def commands(menu: dict) -> dict[str, str]:
    """CLICK key -> the words it stands for."""
    out = {}
    for top in menu.get("button", []):
        for button in [top, *top.get("sub_button", [])]:
            if button.get("type") == "click":
                out[button["key"]] = button.get("command", button["name"])
    return out


def to_wechat(menu: dict) -> dict:
    """WeChat's /cgi-bin/menu/create body. Raises MenuError if WeChat would refuse it."""
    tops = menu.get("button") or []
    if not 1 <= len(tops) <= TOP_MAX:
        raise MenuError(f"一级菜单需要 1–{TOP_MAX} 个")
    out = []
    for top in tops:
        _check_name(top["name"], 16)
        subs = top.get("sub_button") or []
        if len(subs) > SUB_MAX:
            raise MenuError(f"“{top['name']}”的二级菜单超过 {SUB_MAX} 个")
        if subs:
            out.append({"name": top["name"], "sub_button": [_button(b) for b in subs]})
        else:
            out.append(_button(top))
    return {"button": out}


def _button(button: dict) -> dict:
    _check_name(button["name"], 60)
    kind = button.get("type")
    if kind == "click":
        return {"type": "click", "name": button["name"], "key": button["key"]}
    if kind == "view":
        return {"type": "view", "name": button["name"], "url": button["url"]}
    raise MenuError(f"不支持的按钮类型：{kind!r}")


def _check_name(name: str, max_bytes: int) -> None:
    if not name or len(name.encode("utf-8")) > max_bytes:
        raise MenuError(f"菜单名称过长或为空：{name!r}")
