"""What every command line shares: flag errors and UserErrors become one sentence and exit 2.

Its flag parser (parse_flags, which every command gives absl) also makes the
command line's global settings before JAX computes anything: a CPU host is
split into one XLA device per core, and compiled programs are kept on disk
(cpu_devices.py). Importing any module of interp_jax sets nothing.
"""

import contextlib
import os
import sys
import traceback

from absl import flags
from absl import logging

from interp_jax import cpu_devices
from interp_jax.errors import UserError



def fail(message: str) -> None:
  print(f"{sys.argv[0].split('/')[-1]}: error: {message}", file=sys.stderr)
  sys.exit(2)


def _root_cause(error: BaseException) -> BaseException:
  while error.__cause__ or error.__context__:
    error = error.__cause__ or error.__context__
  return error


def _sentence(error: BaseException) -> str:
  text = str(error).strip()
  while len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":  # KeyError quotes
    text = text[1:-1]
  return text.splitlines()[0] if text else type(error).__name__


def _unknown_field(error: BaseException, argv) -> None:
  name = _sentence(_root_cause(error))
  where = [a for a in argv if a.startswith("--config.") and name in a.split("=")[0]]
  fail(f"unknown config field {name!r}" + (f" in {where[0]}" if where else "")
       + "; check its spelling against the config")


def _chain(error: BaseException):
  while error is not None:
    yield error
    error = error.__cause__ or error.__context__


def _in_library(filename: str) -> bool:
  return any(part in filename for part in (
      f"{os.sep}ml_collections{os.sep}", f"{os.sep}absl{os.sep}", "<frozen importlib"))


def _config_file_error(error: BaseException) -> str | None:
  """'cannot load the config file F: ...' when `error` came from running a config file.

  ml_collections runs the file's get_config() while parsing the flags, so a
  bug there (a NameError, a misspelt field of a locked ConfigDict...) arrives
  here like a flag error; the frames after ml_collections' loader say whose it is.
  """
  for e in _chain(error):
    frames = traceback.extract_tb(e.__traceback__)
    loader = [i for i, f in enumerate(frames)
              if f"config_flags{os.sep}config_flags.py" in f.filename]
    if not loader:
      continue
    if isinstance(e, SyntaxError):
      return f"cannot load the config file {e.filename!r}: SyntaxError at line {e.lineno}"
    user = [f for f in frames[loader[0] + 1:] if not _in_library(f.filename)]
    if user:
      inside = [f for f in user if f.filename == user[0].filename]
      what = f"{type(e).__name__}: {_sentence(e)}"
      if isinstance(e, (AttributeError, KeyError)) and "ml_collections" in frames[-1].filename:
        what = f"unknown config field {_sentence(e)!r}"  # a locked ConfigDict's typo
      return f"cannot load the config file {user[0].filename!r}: {what} (line {inside[-1].lineno})"
  return None


def _is_unknown_field(error: BaseException) -> bool:
  """ml_collections' answer to an override of a field a locked config lacks.

  `--config.kk=3` raises AttributeError(KeyError('kk')) from its override
  path (config_path.py); the same error raised inside a config file is that
  file's bug, reported by _config_file_error instead.
  """
  return (isinstance(error, (AttributeError, KeyError)) and _config_file_error(error) is None
          and any(f"config_flags{os.sep}" in f.filename
                  for e in _chain(error) for f in traceback.extract_tb(e.__traceback__)))


def define_config_dict(name: str, default, help_text: str) -> None:
  """config_flags.DEFINE_config_dict, locked; a misspelt --NAME.field exits 2.

  DEFINE_config_dict reads its overrides from sys.argv when it is defined, so
  this check runs at import time rather than in parse_flags.
  """
  from ml_collections import config_flags
  try:
    config_flags.DEFINE_config_dict(name, default, help_text, lock_config=True)
  except (AttributeError, KeyError) as e:
    if not _is_unknown_field(e):
      raise
    _unknown_field(e, sys.argv)


def parse_flags(argv):
  """absl's parser, but a bad flag, config override or config file exits 2 with one sentence.

  Anything else raised while parsing is a bug of ours and keeps its traceback.
  """
  # The command line's settings, before JAX computes anything (never on import):
  cpu_devices.split_cpu_into_cores()
  cpu_devices.cache_compilations()  # the three models of a reproduction share programs
  logging.set_verbosity(logging.ERROR)  # Orbax logs every save; TFDS warns on probes
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # a config file's get_config() may raise anything: classified here
    if _is_unknown_field(e):
      _unknown_field(e, argv)
    loading = _config_file_error(e)
    if loading:
      fail(loading)
    if not isinstance(e, flags.Error):
      raise
    cause = _root_cause(e)
    fail(_sentence(cause) if cause is not e else _sentence(e))


def expect(argv, flag_values, *required: str) -> None:
  """Exits 2 on positional arguments or a required flag left unset."""
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]}; pass options as --flag=value")
  for name in required:
    if not flag_values[name].value:
      fail(f"--{name} is required")


def require(flag_values, config_name: str):
  """The parsed config file; exits 2 when it is missing or fails to load."""
  if flag_values[config_name].value is None:
    fail(f"--{config_name} is required")
  config = flag_values[config_name].value
  try:
    config.keys()  # config_flags reports a file that failed to load only on first use
  except OSError:
    fail(f"cannot load the config file {flag_values[config_name].config_filename!r}; "
         "check the path (for example configs/concepts.py:standard)")
  return config


@contextlib.contextmanager
def user_errors():
  try:
    yield
  except (UserError, FloatingPointError) as e:
    fail(str(e))
