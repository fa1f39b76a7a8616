"""What every command line shares: flag errors and UserErrors become one sentence and exit 2."""

import contextlib
import sys

from absl import flags
from absl import logging

from interp_jax.errors import UserError


def fail(message: str) -> None:
  print(f"{sys.argv[0].split('/')[-1]}: error: {message}", file=sys.stderr)
  sys.exit(2)


def _first_line(error: Exception) -> str:
  text = str(error).strip().strip('"')
  return text.splitlines()[0] if text else type(error).__name__


def parse_flags(argv):
  """absl's parser, but a bad flag or config override exits 2 with one sentence."""
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(_first_line(e.__cause__ or e))


def require(flag_values, config_name: str, *names: str):
  """The parsed config; exits 2 when it or a required flag is missing."""
  for name in (config_name, *names):
    if flag_values[name].value is None:
      fail(f"--{name} is required")
  return flag_values[config_name].value


@contextlib.contextmanager
def user_errors():
  try:
    yield
  except (UserError, FloatingPointError) as e:
    fail(str(e))
