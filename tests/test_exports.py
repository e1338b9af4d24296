"""Sign-up exports carry what members typed as data: nothing in a cell runs as a formula."""
from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from activities import exports, service
from bot import cli
from storage import members
from tests.conftest import APPID, SECRET, TOKEN
from tests.test_console import Console, add_admin

HYPERLINK = '=HYPERLINK("http:"&CHAR(47)&CHAR(47)&"ev.cn")'
HOSTILE = [HYPERLINK, "+86-1381111", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]


@pytest.fixture
def activity(rt, db):
    now = rt.clock.now()
    activity_id = service.create_activity(db, title="=进博会集训", now=now,
                                          start=now + timedelta(days=3), capacity=10)
    service.open_activity(db, activity_id, now)
    for n, unit in enumerate(HOSTILE):
        openid = f"oHostile{n:04d}"
        members.ensure(db, openid, now)
        members.set_profile(db, openid, f"成员{n}", unit, None, now)
        service.sign_up(db, activity_id, openid, now)
    return activity_id


def units_in_csv(text: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    return [row[rows[0].index("单位")] for row in rows[1:]]


def assert_xlsx_has_no_formulas(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet
    cells = [c for row in load_workbook(io.BytesIO(data)).active.iter_rows() for c in row]
    assert all(c.data_type != "f" for c in cells)
    values = [c.value for c in cells]
    assert all(unit in values for unit in HOSTILE)  # kept as typed, only not evaluated


@pytest.mark.parametrize("value", HOSTILE)
def test_a_csv_cell_that_a_spreadsheet_would_evaluate_starts_with_an_apostrophe(value):
    assert exports.csv_safe(value) == "'" + value
    assert exports.csv_safe("张三") == "张三" and exports.csv_safe(2.5) == 2.5


def test_console_exports_write_hostile_units_as_text(app, rt, activity):
    add_admin(rt, "组织者乙", "organiser")
    c = Console(app)
    c.login("组织者乙")
    text = c.post(f"/admin/activities/{activity}/export", {"format": "csv"}).get_data()
    assert units_in_csv(text.decode("utf-8-sig")) == ["'" + unit for unit in HOSTILE]
    data = c.post(f"/admin/activities/{activity}/export", {"format": "xlsx"}).get_data()
    assert_xlsx_has_no_formulas(data)


def test_command_line_exports_write_hostile_units_as_text(settings, activity, tmp_path):
    env = {"BOT_DATA_DIR": str(settings.data_dir), "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID,
           "WECHAT_SECRET": SECRET, "WECHAT_API_BASE": settings.wechat_api_base,
           "BOT_FAKE_NOW": settings.fake_now}
    result = CliRunner().invoke(cli, ["signups", str(activity)], env=env)
    assert result.exit_code == 0, result.output
    assert units_in_csv(result.stdout) == ["'" + unit for unit in HOSTILE]
    out = tmp_path / "list.xlsx"
    result = CliRunner().invoke(cli, ["signups", str(activity), "--format", "xlsx",
                                      "--output", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert_xlsx_has_no_formulas(out.read_bytes())
