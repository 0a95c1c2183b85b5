"""Typed errors carrying their exit code: raised where a problem is found, printed once at the CLI edge.

Exit codes (shared by `tfedge` and `tfedge-run`, documented in the README):
  0 ok · 1 internal bug · 2 bad input or usage · 3 environment missing · 4 budget not met
"""

from __future__ import annotations

OK, INTERNAL, BAD_INPUT, ENVIRONMENT, BUDGET = 0, 1, 2, 3, 4


class TfedgeError(Exception):
    """A problem the user can fix. `message` is one line naming it; `hint` says how to fix it."""

    exit_code = INTERNAL

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        return f"{text} (hint: {' '.join(self.hint.split())})" if self.hint else text


class BadInput(TfedgeError):
    """The input (a file, a flag, a value) is wrong: exit 2."""

    exit_code = BAD_INPUT


class EnvironmentMissing(TfedgeError):
    """Something the command needs is not installed or not reachable: exit 3."""

    exit_code = ENVIRONMENT


class BudgetNotMet(TfedgeError):
    """The work was done but a requested budget was not met: exit 4 (budgets: tfedge.errors lists them)."""

    exit_code = BUDGET


# Exceptions from outside tfedge that still mean "the user's problem", as (type, message, exit code).
# The `hf` CLI pattern: one table, one line each; anything else is an internal bug (exit 1).
FOREIGN_ERRORS = (
    (MemoryError, "out of memory", ENVIRONMENT),
    (PermissionError, "permission denied", BAD_INPUT),
    (IsADirectoryError, "expected a file, got a directory", BAD_INPUT),
    (NotADirectoryError, "a path component is not a directory", BAD_INPUT),
    (FileNotFoundError, "file not found", BAD_INPUT),
)


def report(err: BaseException, prog: str) -> int:
    """Print one line for `err` on stderr and return its exit code (the CLI edge of both CLIs)."""
    import os
    import sys
    import traceback

    debug = os.environ.get("TFEDGE_DEBUG")
    if isinstance(err, KeyboardInterrupt):
        print(f"{prog}: interrupted; no output was written", file=sys.stderr)
        return 130
    if isinstance(err, TfedgeError):
        if debug:
            traceback.print_exception(err)
        print(f"{prog}: error: {err.one_line()}", file=sys.stderr)
        return err.exit_code
    for kind, message, code in FOREIGN_ERRORS:
        if isinstance(err, kind):
            where = f": {err.filename}" if getattr(err, "filename", None) else ""
            print(f"{prog}: error: {message}{where}", file=sys.stderr)
            return code
    if debug:
        traceback.print_exception(err)
    first = str(err).splitlines()[0] if str(err) else ""
    print(
        f"{prog}: internal error: {type(err).__name__}: {first} (set TFEDGE_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    return INTERNAL
