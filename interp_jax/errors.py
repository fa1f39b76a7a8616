"""One exception for everything a user can get wrong.

Entry points catch `UserError`, print its message (one sentence saying what is
wrong and what to do) and exit with status 2, before any compute starts and
without touching what is already written (cli.user_errors). It is a
ValueError, so a library user's `except ValueError` around, say,
`attacks.pgd(..., eps=-1)` catches it as Python's convention for a bad
argument value says it should.
"""


class UserError(ValueError):
  """A bad input: a config field, a name, a path, a workdir."""
