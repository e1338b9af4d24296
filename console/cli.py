"""`python bot.py admin ...`: console accounts (the only way to create one)."""
from __future__ import annotations

import sys

import click

from storage import admins

ROLE_HELP = "admin：全部功能（含编辑知识库、查看操作日志）；organiser：活动、报名、群发"
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


def register(cli: click.Group) -> None:
    @cli.group()
    def admin() -> None:
        """Console accounts (管理后台账号)."""

    @admin.command("add")
    @click.argument("name")
    @click.option("--role", type=click.Choice(admins.ROLES), default="organiser",
                  show_default=True, help=ROLE_HELP)
    @_password_options
    def admin_add(name: str, role: str, password: str | None, password_stdin: bool) -> None:
        """Create a console account; the password is stored only as a hash."""
        name = name.strip()
        if not name or len(name) > 64:
            raise click.ClickException("用户名不能为空，最多 64 个字符")
        password = _password(password, password_stdin, "密码")
        rt, db = _db()
        try:
            admins.create(db, name, _hash(password), role, rt.clock.now())
        except admins.AdminExists as exc:
            raise click.ClickException(f"账号 {name} 已存在（改密码用 admin password）") from exc
        click.echo(f"已创建账号 {name}（{role}）。登录：/admin/")

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
            click.echo(f"{row['name']}\t{row['role']}")

    @admin.command("remove")
    @click.argument("name")
    def admin_remove(name: str) -> None:
        """Delete a console account; its open sessions end at once."""
        _, db = _db()
        if not admins.delete(db, name):
            raise click.ClickException(f"没有账号 {name}")
        click.echo(f"已删除账号 {name}。")
