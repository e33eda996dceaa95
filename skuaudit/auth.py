"""Analyst accounts: bcrypt-hashed passwords in the database, managed with ``skuaudit user``.

Analysts' pages (Model lab, Catalogue) need a signed-in analyst. No account or password ships with
the code: the first one is created on the server with ``skuaudit user add NAME``.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import bcrypt
import sqlalchemy as sa

from skuaudit.errors import UserError
from skuaudit.storage import models as m
from skuaudit.storage.cli import db_subcommands
from skuaudit.storage.db import DatabaseError, session_scope

MIN_PASSWORD_LENGTH = 8
ACCOUNT_ROLES = ("analyst",)


def _check_username(username: str) -> str:
    username = username.strip()
    if (
        not username
        or len(username) > 100
        or not username.replace("-", "").replace("_", "").replace(".", "").isalnum()
    ):
        raise UserError("user name must be 1-100 letters, digits, '.', '-' or '_'")
    return username


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > 72:
        raise UserError("password must be at most 72 bytes (bcrypt's limit)")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def add_user(username: str, password: str, role: str = "analyst", url: str | None = None) -> int:
    """Create an account; ValueError if the name is taken or the password too short."""
    username = _check_username(username)
    if role not in ACCOUNT_ROLES:
        raise UserError(f"unknown role {role!r}; accounts can be: {', '.join(ACCOUNT_ROLES)}")
    hashed = hash_password(password)
    with session_scope(url) as s:
        if s.scalar(sa.select(m.User.id).where(m.User.username == username)) is not None:
            raise UserError(f"user {username!r} already exists")
        user = m.User(username=username, password_hash=hashed, role=role)
        s.add(user)
        s.flush()
        return user.id


def authenticate(username: str, password: str, url: str | None = None) -> str | None:
    """The account's role if the password matches, else None (same answer for unknown users)."""
    with session_scope(url) as s:
        row = s.execute(
            sa.select(m.User.password_hash, m.User.role).where(m.User.username == username.strip())
        ).first()
    if row is None:
        # spend the same time as a real check so user names cannot be probed by timing
        bcrypt.checkpw(b"x", bcrypt.hashpw(b"y", bcrypt.gensalt(rounds=4)))
        return None
    return row.role if bcrypt.checkpw(password.encode(), row.password_hash.encode()) else None


def list_users(url: str | None = None) -> list[tuple[str, str]]:
    with session_scope(url) as s:
        return [
            tuple(r)
            for r in s.execute(sa.select(m.User.username, m.User.role).order_by(m.User.username))
        ]


def remove_user(username: str, url: str | None = None) -> bool:
    with session_scope(url) as s:
        return bool(s.execute(sa.delete(m.User).where(m.User.username == username)).rowcount)


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skuaudit user", description="Manage analyst accounts.")
    subcommand = db_subcommands(parser)
    add = subcommand("add", help="create an analyst account (password asked, or read from stdin)")
    add.add_argument("username")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    subcommand("list", help="list accounts")
    rm = subcommand("remove", help="delete an account")
    rm.add_argument("username")
    args = parser.parse_args(argv)
    try:
        if args.action == "add":
            if args.password_stdin or not sys.stdin.isatty():
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass("password: ")
                if getpass.getpass("again: ") != password:
                    print("skuaudit user: passwords differ", file=sys.stderr)
                    return 2
            add_user(args.username, password, url=args.db_url)
            print(f"created analyst account {args.username!r}")
        elif args.action == "list":
            for name, role in list_users(args.db_url):
                print(f"{name}\t{role}")
        elif not remove_user(args.username, args.db_url):
            print(f"skuaudit user: no user {args.username!r}", file=sys.stderr)
            return 2
    except (ValueError, DatabaseError) as exc:
        print(f"skuaudit user: {exc}", file=sys.stderr)
        return 2
    return 0
