"""What every command line shares: flag errors and UserErrors become one sentence and exit 2.

Config files and config dicts are defined through define_config_file and
define_config_dict: before absl parses the command line, the file is run by
load_config_file (an error in it names the file and line) and every
--NAME.field override is checked against the config, so nothing has to be
recognised from ml_collections' tracebacks afterwards.

Its flag parser (parse_flags, which every command gives absl) also makes the
command line's global settings before JAX computes anything: a CPU host is
split into one XLA device per core, and compiled programs are kept on disk
(cpu_devices.py). Importing any module of interp_jax sets nothing.
"""

import contextlib
import importlib.util
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


def _sentence(error: BaseException) -> str:
  text = str(error).strip()
  while len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":  # KeyError quotes
    text = text[1:-1]
  return text.splitlines()[0] if text else type(error).__name__


# The config files of the running command, {flag name: default path}: parse_flags loads
# each and checks its overrides before absl parses, so no error has to be recognised
# after the fact. (Config dicts are checked when defined: define_config_dict.)
_FILES: dict = {}


def _overrides(argv, name: str) -> list[str]:
  """The field paths a command line overrides in --NAME.field=value (or --NAME.field value)."""
  prefix = f"--{name}."
  return [a[len(prefix):].split("=")[0] for a in argv if a.startswith(prefix)]


def _check_fields(config, name: str, argv) -> None:
  """Exits 2 on an override of a field the config lacks."""
  for path in _overrides(argv, name):
    node = config
    for part in path.split("."):
      if not hasattr(node, "keys") or part not in node.keys():
        fail(f"unknown config field {part!r} in --{name}.{path}; check its spelling "
             "against the config")
      node = node[part]


def _flag_value(argv, name: str, default):
  for i, a in enumerate(argv):
    if a.startswith(f"--{name}="):
      return a.split("=", 1)[1]
    if a == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return default


def load_config_file(spec: str):
  """Runs a config file's get_config() (`PATH` or `PATH:ARG`, ARG passed to it).

  Raises UserError naming the file, the error and its line, for a missing file
  or any error the file's code raises (a misspelt field of a locked ConfigDict
  reads as an unknown config field).
  """
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise UserError(f"cannot load the config file {path!r}; check the path (for example "
                    "configs/concepts.py:standard)")
  where = f"cannot load the config file {path!r}"
  try:
    module_spec = importlib.util.spec_from_file_location("_interp_jax_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
  except SyntaxError as e:
    raise UserError(f"{where}: SyntaxError at line {e.lineno}") from None
  except Exception as e:  # the file's own code may raise anything
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__)
             if os.path.abspath(f.filename) == os.path.abspath(path)]
    what = f"{type(e).__name__}: {_sentence(e)}"
    if isinstance(e, AttributeError) and isinstance(e.__cause__ or e.__context__, KeyError):
      what = f"unknown config field {_sentence(e)!r}"  # a locked ConfigDict's typo
    line = f" (line {lines[-1]})" if lines else ""
    raise UserError(f"{where}: {what}{line}") from None


def define_config_file(name: str, default, help_text: str) -> None:
  """config_flags.DEFINE_config_file, locked; parse_flags loads the file first, so a
  missing file, a bug in it or a misspelt --NAME.field exits 2 with one sentence."""
  from ml_collections import config_flags
  config_flags.DEFINE_config_file(name, default, help_text, lock_config=True)
  _FILES[name] = default


def define_config_dict(name: str, default, help_text: str) -> None:
  """config_flags.DEFINE_config_dict, locked; a misspelt --NAME.field exits 2.

  DEFINE_config_dict reads its overrides from sys.argv when it is defined, so
  this check runs at import time rather than in parse_flags.
  """
  from ml_collections import config_flags
  _check_fields(default, name, sys.argv)
  config_flags.DEFINE_config_dict(name, default, help_text, lock_config=True)


def parse_flags(argv):
  """absl's parser, but a bad flag, config override or config file exits 2 with one sentence.

  Anything else raised while parsing is a bug of ours and keeps its traceback.
  """
  # The command line's settings, before JAX computes anything (never on import):
  cpu_devices.split_cpu_into_cores()
  cpu_devices.cache_compilations()  # the three models of a reproduction share programs
  logging.set_verbosity(logging.ERROR)  # Orbax logs every save; TFDS warns on probes
  for name, default in _FILES.items():
    spec = _flag_value(argv, name, default)
    if spec is None:
      continue  # require() says it is missing, after absl's own flags
    try:
      _check_fields(load_config_file(spec), name, argv)
    except UserError as e:
      fail(str(e))
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # a bad value of a flag or of a config field: absl names it
    fail(_sentence(e))


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
