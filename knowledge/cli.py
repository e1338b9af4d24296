"""Knowledge commands: ingest documents, check the knowledge files, ask the engine directly."""
from __future__ import annotations

import click

from knowledge.data import KnowledgeDataError


def register(cli: click.Group) -> None:
    cli.add_command(ingest)
    cli.add_command(kb)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--title", default=None, help="文件标题（默认从正文识别）")
@click.option("--doc-no", default=None, help="文号（默认从正文识别）")
def ingest(files: tuple[str, ...], title: str | None, doc_no: str | None) -> None:
    """Ingest notices (.txt .md .docx .pdf) as searchable passages; the running bot picks them up."""
    from bot import _settings
    from knowledge.ingest import IngestError, ingest_file
    from runtime import Runtime

    rt = Runtime(_settings())
    failed = 0
    for name in files:
        try:
            doc = ingest_file(rt.db(), name, rt.clock.now(), title=title, doc_no=doc_no)
        except IngestError as exc:
            failed += 1
            click.echo(f"✗ {exc}", err=True)
            continue
        click.echo(f"✓ {doc.file}: 《{doc.title}》 {doc.doc_no or '（无文号）'}，{len(doc.passages)} 段")
    if failed:
        raise click.ClickException(f"{failed} 个文件未能导入")


@click.group()
def kb() -> None:
    """The knowledge base: check files, test a question."""


@kb.command("check")
def kb_check() -> None:
    """Load every knowledge file and report entries, sources and problems."""
    from knowledge.data import load_entries, load_sources

    try:
        entries = load_entries()
        sources = load_sources()
    except KnowledgeDataError as exc:
        raise click.ClickException(str(exc)) from exc
    unknown = sorted({e.source for e in entries} - set(sources))
    click.echo(f"{len(entries)} 条目，{len(sources)} 个来源文件")
    if unknown:
        raise click.ClickException(f"未知的来源：{', '.join(unknown)}")


@kb.command("test")
@click.argument("question")
def kb_test(question: str) -> None:
    """Show how the engine ranks a question (scores of the top candidates), with the knowledge
    files and the database's entries, aliases and documents, as the running bot answers it."""
    from bot import _settings
    from runtime import Runtime

    rt = Runtime(_settings())
    try:
        engine = rt.knowledge.load()
    except KnowledgeDataError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        rt.executor.shutdown(wait=False)
    answer = engine.answer(question)
    click.echo(f"normalised: {engine.normalize(question)}")
    for c in answer.candidates[:5]:
        click.echo(f"{c.confidence:.3f}  {c.entry.id}  bm25={c.bm25:.2f} sim={c.similarity:.2f} "
                   f"cov={c.coverage:.2f} novel={c.novel} missing={sorted(c.missing)}")
    click.echo("→ " + (answer.text or "没有找到"))


@kb.command("calendar")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def kb_calendar(file: str) -> None:
    """Load a new year's plan (union months, alliance quarters) from a YAML file.

    Same format as knowledge/data/calendar.yaml plus `citation` and alliance `groups`; schedule
    answers ("下个月有什么安排") for that year read it at once. See docs/PLANS.md."""
    from bot import _settings
    from knowledge import plans
    from knowledge.calendar import CalendarDataError
    from runtime import Runtime

    rt = Runtime(_settings())
    try:
        union, added = plans.load(rt.db(), file, rt.clock.now())
    except CalendarDataError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"✓ {union} 项工会项目；联盟项目记录新增 {added} 项（数据库 {rt.settings.db_path}）")
