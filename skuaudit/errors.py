"""Errors a person can fix, apart from bugs, and how a bug is reported without a traceback.

``UserError`` (a ``ValueError``, so existing ``except ValueError`` handlers still catch it) is
raised for what the person using skuaudit can correct: a duplicate name, an unknown store, a
photo that is too large, a setting that is not a number. Its message says what to do. Anything
else that escapes to a page is a bug or an environment failure: ``report_unexpected`` logs it
with its traceback under a short id, and the page shows that id so an operator can find the log
entry.

Example:
    >>> try:
    ...     raise UserError("a store named 'North' already exists")
    ... except ValueError as exc:
    ...     print(exc)
    a store named 'North' already exists
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger("skuaudit.errors")


class UserError(ValueError):
    """Something the person using skuaudit can fix; the message says how."""


def report_unexpected(action: str, exc: BaseException) -> str:
    """Log ``exc`` with its traceback under a new id; returns the id.

    Args:
        action: what was being done, e.g. ``"Saving the audit"``.
        exc: the exception (logged with its traceback).

    Example:
        >>> try:
        ...     1 / 0
        ... except ZeroDivisionError as exc:
        ...     len(report_unexpected("Dividing", exc))
        8
    """
    error_id = uuid.uuid4().hex[:8]
    log.error("%s failed [error id %s]", action, error_id, exc_info=exc)
    return error_id


def apology(action: str, error_id: str) -> str:
    """The short message a page shows for an unexpected failure.

    Example:
        >>> apology("Saving the audit", "1a2b3c4d")
        'Saving the audit failed: sorry, something went wrong on our side (error id 1a2b3c4d). Try again; if it happens again, give the id to your administrator.'
    """
    return (
        f"{action} failed: sorry, something went wrong on our side (error id {error_id}). "
        "Try again; if it happens again, give the id to your administrator."
    )
