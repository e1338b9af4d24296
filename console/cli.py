"""`python bot.py admin ...`: console accounts (the only way to create one)."""
from __future__ import annotations

import sys

import click

from storage import admins

ROLE_HELP = "admin：全部功能（含编辑知识库、查看操作日志）；organiser：活动、报名、群发"
SCOPE_HELP = ("只看、只导出、只群发这个范围：group:共同体代号（如 group:fazhi）或 unit:单位名称"
              "（如 unit:虹口）；不给则看全部")
PASSWORD_ENV = "BOT_ADMIN_PASSWORD"
PASSWORD_HELP = (f"密码。会出现在进程列表和 shell 历史里：脚本里请改用环境变量 {PASSWORD_ENV} "
                 "或 --password-stdin；都不给时提示输入")


def _db():
    from bot import _settings
    from runtime import Runtime

    rt = Runtime(_settings())
    return rt, rt.db()


def _hash(password: str) -> str:
    from console.auth import hash_password

    try:
        return hash_password(password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _password(given: str | None, from_stdin: bool, prompt: str) -> str:
    """The password from --password / BOT_ADMIN_PASSWORD, one line of standard input, or a
    hidden prompt (typed twice), in that order of choice."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.ClickException("标准输入里没有密码")
        return line
    if given is not None:
        return given
    return click.prompt(prompt, hide_input=True, confirmation_prompt="再输一次")


def _password_options(fn):
    fn = click.option("--password-stdin", "password_stdin", is_flag=True,
                      help="从标准输入读一行作为密码（如 printf '%s' \"$P\" | …）")(fn)
    return click.option("--password", envvar=PASSWORD_ENV, default=None, help=PASSWORD_HELP)(fn)


def _scope(text: str | None, role: str):
    """The parsed --scope; admins always see everything."""
    from alliance.scope import EVERYTHING, ScopeError, parse

    try:
        limit = parse(text)
    except ScopeError as exc:
        raise click.ClickException(str(exc)) from exc
    if limit.limited and role == "admin":
        raise click.ClickException("管理员始终看全部；--scope 只用于 organiser")
    return limit if limit.limited else EVERYTHING


def _label(text: str | None) -> str:
    from alliance.scope import load

    return f"{load(text).text}（{load(text).label}）" if text else "全部"


def register(cli: click.Group) -> None:
    @cli.group()
    def admin() -> None:
        """Console accounts (管理后台账号)."""

    @admin.command("add")
    @click.argument("name")
    @click.option("--role", type=click.Choice(admins.ROLES), default="organiser",
                  show_default=True, help=ROLE_HELP)
    @click.option("--scope", default=None, help=SCOPE_HELP)
    @_password_options
    def admin_add(name: str, role: str, scope: str | None, password: str | None,
                  password_stdin: bool) -> None:
        """Create a console account; the password is stored only as a hash."""
        name = name.strip()
        if not name or len(name) > 64:
            raise click.ClickException("用户名不能为空，最多 64 个字符")
        limit = _scope(scope, role)
        password = _password(password, password_stdin, "密码")
        rt, db = _db()
        try:
            admins.create(db, name, _hash(password), role, rt.clock.now(), limit.text)
        except admins.AdminExists as exc:
            raise click.ClickException(f"账号 {name} 已存在（改密码用 admin password）") from exc
        where = f"，范围：{limit.label}" if limit.limited else ""
        click.echo(f"已创建账号 {name}（{role}{where}）。登录：/admin/")

    @admin.command("scope")
    @click.argument("name")
    @click.option("--scope", required=True, help=SCOPE_HELP + "；all 取消限制")
    def admin_scope(name: str, scope: str) -> None:
        """Limit an organiser to a 共同体 or a unit (or `--scope all` to lift the limit)."""
        _, db = _db()
        row = admins.by_name(db, name)
        if row is None:
            raise click.ClickException(f"没有账号 {name}")
        limit = _scope("" if scope.strip().lower() == "all" else scope, row["role"])
        admins.set_scope(db, name, limit.text)
        click.echo(f"已将账号 {name} 的范围设为：{limit.label}。")

    @admin.command("password")
    @click.argument("name")
    @click.option("--role", type=click.Choice(admins.ROLES), default=None, help="同时改角色")
    @_password_options
    def admin_password(name: str, role: str | None, password: str | None,
                       password_stdin: bool) -> None:
        """Set a new password (and the role if given); its open sessions end."""
        password = _password(password, password_stdin, "新密码")
        _, db = _db()
        try:
            admins.set_password(db, name, _hash(password), role)
        except admins.NoSuchAdmin as exc:
            raise click.ClickException(f"没有账号 {name}") from exc
        click.echo(f"已更新账号 {name} 的密码。")

    @admin.command("list")
    def admin_list() -> None:
        """List console accounts with their role."""
        _, db = _db()
        rows = admins.all_admins(db)
        if not rows:
            click.echo("还没有账号。创建：python bot.py admin add NAME --role admin")
        for row in rows:
            click.echo(f"{row['name']}\t{row['role']}\t{_label(row['scope'])}")

    @admin.command("remove")
    @click.argument("name")
    def admin_remove(name: str) -> None:
        """Delete a console account; its open sessions end at once."""
        _, db = _db()
        if not admins.delete(db, name):
            raise click.ClickException(f"没有账号 {name}")
        click.echo(f"已删除账号 {name}。")
