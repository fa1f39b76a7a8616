"""One exception for everything a user can get wrong.

Entry points catch `UserError`, print its message (one sentence saying what is
wrong and what to do) and exit with status 2, before any compute starts and
without touching what is already written.
"""

import sys


class UserError(Exception):
  """A bad input: a config field, a name, a path, a workdir."""


def exit_with(error: UserError, prog: str = "interp_jax") -> None:
  print(f"{prog}: error: {error}", file=sys.stderr)
  sys.exit(2)
