"""The protocol a reproduction follows: its checks, what protocol 2 asks of the analysis,
and the record summary.json keeps.

    check_criteria(criteria)                       # UserError before any compute
    cfg = analysis_for(analysis_cfg, criteria)     # protocol 2: the declared sweep and share
    record(criteria)                               # -> Summary.protocol, a Protocol

Protocol 2 fixes three analysis settings from the criteria: eps_curve =
criteria.match_factors, test_share = criteria.test_share and successful =
"right_to_wrong". An analysis setting left at its default takes the
criteria's value; one set to anything else contradicts the declaration and
is refused. The rules themselves: findings.py's docstring.
"""

import os
import subprocess

from interp_jax.errors import UserError
from interp_jax.records import as_saved
from interp_jax.reproduction.summary import Protocol

# The commit whose default_criteria declared each protocol: protocol 1's last change
# of its criteria; protocol 2's is filled in by the commit after the one declaring it.
DECLARED_IN = {1: "d14616325a46770513361e58d6cf71ad590febd9", 2: "f18c964e2bc5b55584c30801a86ac5fd7a3eea89"}
ROBUST_ATTACKS = ("autoattack", "pgd20")
MEASURES = ("mean", "paired_mean")


def _fixed(criteria) -> dict:
  """The analysis settings protocol 2 takes from the criteria."""
  return {"eps_curve": tuple(float(f) for f in criteria.match_factors),
          "test_share": float(criteria.test_share), "successful": "right_to_wrong"}


def check_criteria(criteria) -> None:
  """Every criteria value a user can get wrong; raises UserError."""
  if not 0 < criteria.confidence < 1 or int(criteria.min_seeds) < 1:
    raise UserError(f"config.criteria.confidence must be in (0, 1) and "
                    f"config.criteria.min_seeds at least 1, got {criteria.confidence} and {criteria.min_seeds}")
  if criteria.repair_measure not in ("adversarial", "exposure"):
    raise UserError("config.criteria.repair_measure must be 'adversarial' or 'exposure', got "
                    f"{criteria.repair_measure!r}")
  protocol = criteria.get("protocol", 1)
  if protocol not in (1, 2):
    raise UserError(f"config.criteria.protocol must be 1 or 2, got {protocol!r}")
  if protocol == 1:
    return
  from interp_jax import attacks
  factors = list(criteria.match_factors)
  if (len(factors) < 2 or factors[0] != 0
      or any(b <= a for a, b in zip(factors, factors[1:]))):
    raise UserError("config.criteria.match_factors must rise from 0 (the real images) through at "
                    f"least one more multiple of eps, got {tuple(factors)}")
  if not 0 < criteria.match_rate < 1 or criteria.match_measure not in MEASURES:
    raise UserError(f"config.criteria.match_rate must be in (0, 1) and "
                    f"config.criteria.match_measure one of {', '.join(MEASURES)}, got {criteria.match_rate} and "
                    f"{criteria.match_measure!r}")
  if not criteria.test_share > 0:
    raise UserError("protocol 2 scores each seed on its own share of the test split: "
                    f"config.criteria.test_share must be positive, got {criteria.test_share}")
  if criteria.robust_attack not in ROBUST_ATTACKS:
    raise UserError(f"config.criteria.robust_attack must be one of {', '.join(ROBUST_ATTACKS)}, "
                    f"got {criteria.robust_attack!r}")
  if (int(criteria.robust_images) != criteria.robust_images or criteria.robust_images < 0
      or int(criteria.robust_steps) != criteria.robust_steps or criteria.robust_steps < 0):
    raise UserError("config.criteria.robust_images and config.criteria.robust_steps must be whole "
                    f"numbers >= 0, got {criteria.robust_images} and {criteria.robust_steps}")
  if criteria.robust_attack == "autoattack":
    attacks.autoattack_plan(criteria.robust_version, tuple(criteria.robust_stages) or None)
    if criteria.robust_version == "rand" and not criteria.robust_stages:
      raise UserError("config.criteria.robust_version=rand is AutoAttack's version for models with "
                      "a random forward pass; the protocol's models are deterministic: use "
                      "standard or plus")
    import jax
    if jax.process_count() > 1:
      raise UserError("AutoAttack runs in one process; use config.criteria.robust_attack=pgd20 "
                      "on several hosts")


def analysis_for(analysis_cfg, criteria):
  """The analysis settings the protocol reads with; see the module docstring."""
  if criteria.get("protocol", 1) != 2:
    return analysis_cfg
  from interp_jax.analysis import default_config
  default, cfg = default_config(), analysis_cfg.copy_and_resolve_references()
  for field, value in _fixed(criteria).items():
    have = analysis_cfg[field]
    have = tuple(float(f) for f in have) if field == "eps_curve" else have
    if have != value and analysis_cfg[field] != default[field]:
      raise UserError(f"config.analysis.{field}={analysis_cfg[field]!r} contradicts protocol 2, "
                      f"which declares {value!r} (criteria); leave it unset")
    cfg[field] = value
  if cfg.num_images:
    raise UserError("protocol 2 analyses each seed's test share (config.criteria.test_share); "
                    "leave config.analysis.num_images unset")
  return cfg


def _git(*args):
  """A git command's output in the package's checkout, or None outside one."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
  except (OSError, subprocess.TimeoutExpired):
    return None
  return out.stdout.strip() if out.returncode == 0 else None


def record(criteria) -> Protocol:
  """Summary.protocol (a Protocol): the version, the commit that declared it, the commit the run
  ran from (and whether its tree had changes), and the criteria that differ from the
  declared ones (the declaration holds only for "as_declared": true)."""
  from interp_jax.reproduction.findings import default_criteria
  version = criteria.get("protocol", 1)
  declared = default_criteria()
  declared.protocol = version
  used, want = criteria.to_dict(), declared.to_dict()
  changed = {k: [want.get(k), used.get(k)] for k in sorted(set(used) | set(want))
             if _plain(want.get(k)) != _plain(used.get(k))}
  head, status = _git("rev-parse", "HEAD"), _git("status", "--porcelain", "--untracked-files=no")
  return Protocol(version, DECLARED_IN.get(version), head,
                  None if status is None else bool(status), not changed,
                  as_saved(changed))   # as summary.json reads back


# The libraries whose versions can move a number: XLA's code generation (jax, jaxlib) and
# everything a run's arithmetic or data passes through.
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "orbax-checkpoint",
             "tensorflow-datasets")
# CPU features that change XLA:CPU's vectorised code, and so the rounding of a sum.
_CPU_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def environment() -> dict:
  """Summary.environment: where the numbers were computed. Floating-point results
  differ in their last bits between library versions and between CPUs (XLA compiles
  for the host's instruction set), and over a thousand training steps such
  differences grow into other models: a reproduction on another machine is another
  draw of the same protocol, not the same numbers."""
  import platform
  from importlib import metadata
  import jax
  versions = {}
  for name in _PACKAGES:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  cpu, features = platform.processor() or platform.machine(), []
  try:
    with open("/proc/cpuinfo") as f:
      info = f.read()
    names = [l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")]
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines()
                  if l.startswith("flags")), [])
    cpu, features = (names[0] if names else cpu), [f for f in _CPU_FEATURES if f in flags]
  except OSError:  # not Linux
    pass
  devices = jax.devices()
  return {"python": platform.python_version(), "packages": versions,
          "backend": devices[0].platform, "device_kind": devices[0].device_kind,
          "devices": len(devices), "processes": jax.process_count(),
          "cpu": cpu, "cpu_features": features, "cores": os.cpu_count()}


def _plain(v):
  return list(v) if isinstance(v, (tuple, list)) else v
