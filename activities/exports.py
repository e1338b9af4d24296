"""An activity's sign-up list as CSV or XLSX (openpyxl); phone numbers masked unless revealed.

Members type their own names and units, so every text cell is data, never a formula: a cell that
a spreadsheet would read as one (`=` `+` `-` `@`, tab, CR) is written as plain text.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

FORMATS = ("csv", "xlsx")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what Excel, LibreOffice and Sheets evaluate


def is_formula_like(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def csv_safe(value):
    """A text cell a spreadsheet would evaluate gets a leading apostrophe (OWASP's advice)."""
    return "'" + value if is_formula_like(value) else value


def _text_cell(cell: Cell, value) -> None:
    """openpyxl stores a string beginning with '=' as a formula; keep it a string."""
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
        if is_formula_like(value):
            cell.quotePrefix = True  # Excel keeps it text even when the cell is edited


def to_csv(header: list[str], rows: list[list]) -> str:
    """CSV text; write it with a UTF-8 BOM (encoding='utf-8-sig') so Excel reads the Chinese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_safe(v) for v in header])
    writer.writerows([csv_safe(v) for v in row] for row in rows)
    return out.getvalue()


def to_xlsx(header: list[str], rows: list[list], path: str | Path, *, title: str = "报名名单",
            caption: str | None = None) -> Path:
    """Write one sheet: an optional caption line, a bold header row, the rows. Returns the path."""
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    line = 0
    for values in ([[caption]] if caption else []) + [header] + rows:
        line += 1
        for column, value in enumerate(values, 1):
            _text_cell(sheet.cell(row=line, column=column), value)
    for cell in sheet[2 if caption else 1]:
        cell.font = Font(bold=True)
    if caption:
        sheet.cell(row=1, column=1).font = Font(bold=True)
    for n, name in enumerate(header, 1):
        width = max([len(str(name))] + [len(str(r[n - 1])) for r in rows]) * 2 + 2
        sheet.column_dimensions[get_column_letter(n)].width = min(40, max(8, width))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path
