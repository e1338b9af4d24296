"""`python bot.py summary`: the November summary (评议激励) as a Word document or a workbook."""
from __future__ import annotations

from pathlib import Path

import click

from settings import Settings, SettingsError


def register(cli: click.Group) -> None:
    cli.add_command(summary)


@click.command()
@click.option("--year", type=int, required=True, help="年度，如 2025")
@click.option("--group", "group", default=None,
              help="只汇总一个共同体：fazhi、shequ、chuangxin、zhiyuan、baozhang（或组名）")
@click.option("--format", "fmt", type=click.Choice(["docx", "xlsx"]), default="docx",
              show_default=True, help="Word（docx）或 Excel（xlsx）")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="输出文件；不填则在当前目录按年度命名")
def summary(year: int, group: str | None, fmt: str, output: Path | None) -> None:
    """各共同体年度工作汇总（项目、活动、参与单位、志愿时长、需求），供11月底交流展示。"""
    from alliance import groups
    from alliance import summary as builder
    from clock import fmt_iso_local
    from runtime import Runtime

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    key = None
    if group:
        found = groups.find(group)
        if found is None:
            keys = "、".join(f"{g.key}（{g.name}）" for g in groups.groups())
            raise click.ClickException(f"没有这个共同体：{group}。可选：{keys}")
        key = found.key
    if not 2000 <= year <= 2100:
        raise click.ClickException("年度应为四位数字年份，如 2025")
    rt = Runtime(settings)
    try:
        now = rt.clock.now()
        data = builder.build(rt.db(), year, now, settings.tz, key)
        path = output or Path(builder.default_name(year, fmt, key))
        builder.write(data, year, fmt, path, generated=fmt_iso_local(now, settings.tz),
                      group_key=key)
    except OSError as exc:
        raise click.ClickException(f"无法写入 {output}：{exc}") from exc
    finally:
        rt.executor.shutdown(wait=False)
    totals = builder.overview(data)
    click.echo(f"已生成：{path}（{len(data)} 个共同体）")
    for row in totals:
        click.echo(f"  {row[0]}：" + " · ".join(
            f"{h} {v}" for h, v in zip(builder.HEADS["overview"][1:], row[1:])))
