"""The folders show the architecture: data -> models -> attacks -> measures -> training
-> analysis -> report -> reproduction, and imports only point down that list."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "interp_jax")
# Bottom to top; a module may import its own layer and the layers below it.
LAYERS = (
    ("__init__", "errors", "records", "cpu_devices", "sharding", "default_config"),
    ("data",), ("models",), ("losses",), ("attacks",), ("measures",), ("training",),
    ("analysis",), ("report",), ("reproduction",), ("bench",), ("cli",),
    ("train", "analyze", "attack", "reproduce", "select", "import_weights", "dissect", "explain",
     "compare"),
)
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules():
  """{dotted module name: path} of every module of the package."""
  out = {}
  for root, _, files in os.walk(PACKAGE):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, f), os.path.dirname(PACKAGE))[:-3]
        name = rel.replace(os.sep, ".")
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = os.path.join(
            root, f)
  return out


def _imports(path: str, modules) -> set[str]:
  """The package's modules `path` imports, at module level or inside functions."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.startswith("interp_jax")}
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("interp_jax"):
      for a in node.names:
        sub = f"{node.module}.{a.name}"
        found.add(sub if sub in modules else node.module)
  return found - {"interp_jax"}


def _level(module: str) -> int:
  parts = module.split(".")
  return LEVEL[parts[1] if len(parts) > 1 else "__init__"]


def test_every_module_belongs_to_a_layer():
  for module in _modules():
    if module != "interp_jax":
      assert module.split(".")[1] in LEVEL, f"{module} is in no layer of LAYERS"


def test_imports_point_down_and_have_no_cycle():
  modules = _modules()
  graph = {m: _imports(p, modules) for m, p in modules.items()}
  upward = [(m, i) for m, deps in graph.items() for i in deps
            if m != "interp_jax" and _level(i) > _level(m)]
  assert not upward, f"upward imports: {upward}"
  state = {}

  def visit(m, path):
    if state.get(m) == "done":
      return
    if state.get(m) == "open":
      pytest.fail(f"import cycle: {' -> '.join(path + [m])}")
    state[m] = "open"
    for dep in graph.get(m, ()):
      # A package's __init__ re-exporting its own modules is the one edge left
      # out; a module importing names from its own package's __init__ is kept.
      if not dep.startswith(m + ".") and dep in graph:
        visit(dep, path + [m])
    state[m] = "done"

  for m in graph:
    visit(m, [])
