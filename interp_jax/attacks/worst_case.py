"""AutoAttack: each image's worst case over a fixed ensemble of attacks (Croce and Hein 2020).

    result = autoattack(model.apply, variables, x, y, key, eps=8/255)      # "standard"
    result.accuracy          # robust accuracy: the share no attack broke
    result.accuracy_after    # {"clean": ..., "apgd_ce": ..., "apgd_t": ..., ...}
    result.broken_by         # [N] "clean", the stage that broke the image, or "" (robust)
    result.images            # [N] the worst case of each image

The stages run in order, each only on the images every earlier stage left
robust (gathered into batches of `batch_size`; the last one padded to a
smaller size that halves, so few shapes compile). Versions, as published:

  standard  APGD-CE; APGD-T (9 targets); FAB-T (9 targets); Square (5,000 queries)
  plus      APGD-CE and APGD-DLR (5 restarts each); FAB (5 restarts); Square;
            APGD-T; FAB-T
  rand      APGD-CE and APGD-DLR, each step on the mean over 20 draws of a model
            with a random forward pass (expectation over transformation), which
            is called as apply_fn(variables, x, key); each image draws from its
            own key, also for the class read after each stage
  custom    `stages=("apgd_ce", "square", ...)`, with their standard options

Targets are capped at the number of classes minus one. A stage's result
counts only when the model's class differs from y and the image is within
eps of x. Robust images keep APGD-CE's point of highest loss.

x and y are whole arrays (a split, or a part of one); key is one PRNG key
or one per image: give per-image keys derived from the pixels and an
image's result does not depend on where the split stores it.

References: Croce and Hein 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks" (ICML);
RobustBench (Croce et al. 2021) accepts only the standard version.
"""

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from interp_jax import sharding
from interp_jax.attacks import checks
from interp_jax.attacks.auto_pgd import apgd, apgd_targeted, bucket, random_logits
from interp_jax.attacks.boundary import fab
from interp_jax.attacks.projections import is_key_batch
from interp_jax.attacks.random_search import square
from interp_jax.errors import UserError

# name -> (attack, its options in the standard version)
STAGES = {
    "apgd_ce": (apgd, {"loss": "ce", "steps": 100, "restarts": 1, "eot_iter": 1}),
    "apgd_dlr": (apgd, {"loss": "dlr", "steps": 100, "restarts": 1, "eot_iter": 1}),
    "apgd_t": (apgd_targeted, {"steps": 100, "targets": 9, "restarts": 1, "eot_iter": 1}),
    "fab": (fab, {"targeted": False, "steps": 100, "restarts": 1}),
    "fab_t": (fab, {"targeted": True, "steps": 100, "targets": 9, "restarts": 1}),
    "square": (square, {"queries": 5000, "p_init": 0.8}),
}
VERSIONS = {
    "standard": (("apgd_ce", {}), ("apgd_t", {}), ("fab_t", {}), ("square", {})),
    "plus": (("apgd_ce", {"restarts": 5}), ("apgd_dlr", {"restarts": 5}),
             ("fab", {"restarts": 5}), ("square", {}), ("apgd_t", {}), ("fab_t", {})),
    "rand": (("apgd_ce", {"eot_iter": 20}), ("apgd_dlr", {"eot_iter": 20})),
}
_SLACK = 1e-5  # float32 rounding of a perturbation measured at the radius
_PREDICT_STREAM = 1 << 21  # folded into an image's key for a random model's class draws


@dataclasses.dataclass
class AutoAttackResult:
  """Per-image outcome of an AutoAttack evaluation; arrays are numpy, indexed like x."""
  images: np.ndarray         # [N, H, W, C] float32: the image that broke it, else the best try
  prediction: np.ndarray     # [N] the model's class for `images`
  clean_correct: np.ndarray  # [N] bool
  broken_by: np.ndarray      # [N] str: "clean" (wrong already), a stage, or "" (robust)
  stages: tuple              # the stages run, in order
  accuracy_after: dict       # "clean" and each stage -> robust accuracy after it
  seconds: dict              # stage -> seconds
  options: dict              # stage -> the options it ran with

  @property
  def robust(self) -> np.ndarray:
    return self.broken_by == ""

  @property
  def accuracy(self) -> float:
    return float(self.robust.mean()) if len(self.robust) else 0.0

  def broken_counts(self) -> dict:
    """Images each stage broke (and "clean": wrong without an attack)."""
    return {s: int((self.broken_by == s).sum()) for s in ("clean",) + self.stages}


def plan(version: str = "standard", stages=None, num_classes: int | None = None,
         **overrides) -> tuple:
  """((stage name, attack, options), ...) of a version, or of a custom list of stages.

  overrides: options set for every stage that takes them (e.g. steps=20 for a quick look).
  """
  if stages is not None:
    chosen = tuple((s, {}) for s in stages)
  elif version in VERSIONS:
    chosen = VERSIONS[version]
  else:
    raise UserError(f"unknown AutoAttack version {version!r}; use one of "
                    f"{', '.join(VERSIONS)} or give stages=")
  out = []
  for name, extra in chosen:
    if name not in STAGES:
      raise UserError(f"unknown AutoAttack stage {name!r}; use some of {', '.join(STAGES)}")
    fn, options = STAGES[name]
    options = {**options, **extra}
    options.update({k: v for k, v in overrides.items() if k in options})
    if num_classes is not None and "targets" in options:
      options["targets"] = min(options["targets"], num_classes - 1)
    out.append((name, fn, options))
  return tuple(out)


@functools.partial(jax.jit, static_argnames="apply_fn")
def _classes(apply_fn, variables, x, draws=None):
  """The model's class per image (a random model: from one draw per image's key); compiled
  once per model and batch shape, not once per call."""
  logits = apply_fn(variables, x) if draws is None else random_logits(apply_fn, variables, x,
                                                                      draws)
  return jnp.argmax(logits, -1)


def _distance(a, b, norm):
  d = (np.asarray(a, np.float32) - np.asarray(b, np.float32)).reshape(len(a), -1)
  return np.abs(d).max(1) if norm == "linf" else np.sqrt((d * d).sum(1))


def autoattack(apply_fn, variables, x, y, key, *, eps, norm="linf", version="standard",
               stages=None, batch_size=256, mesh=None, progress=True,
               **overrides) -> AutoAttackResult:
  """Each image's worst case over the stages of `version` (or `stages`); see module doc.

  Args:
    x, y: [N, H, W, C] images in [0, 1] and [N] labels (numpy or jax arrays).
    key: a PRNG key, or one per image.
    batch_size: images per attack call (a multiple of the mesh's devices).
    mesh: a device mesh to split each batch over (sharding.data_mesh()); None: default device.
    overrides: options for every stage that takes them, such as steps or queries.
  """
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int32)
  checks.check_budget(x, eps, None, None, norm)
  steps = plan(version, stages, None, **overrides)
  random = any(opts.get("eot_iter", 1) > 1 for _, _, opts in steps)
  if random and any("eot_iter" not in opts for _, _, opts in steps):
    raise UserError("a random model (eot_iter > 1) can be attacked by the APGD stages only, "
                    f"got {', '.join(name for name, _, _ in steps)}")
  checks.check_inputs(apply_fn, variables, x[:batch_size], y[:batch_size], random=random)
  devices = mesh.size if mesh is not None else 1
  if batch_size < 1 or batch_size % devices:
    raise UserError(f"batch_size must be a positive multiple of the {devices} devices, "
                    f"got {batch_size}")
  n = len(x)
  keys = key if is_key_batch(key) else jax.random.split(key, n)
  if len(keys) != n:
    raise UserError(f"{len(keys)} keys for {n} images: give one key, or one per image")
  num_classes = checks._num_classes(apply_fn, variables, x[:1], random=random)
  steps = plan(version, stages, num_classes, **overrides)

  place = (lambda a: jax.device_put(a, sharding.batch_sharded(mesh))) if mesh else jnp.asarray
  if random:  # one draw per image, from the image's own key (a stage's draws differ)
    predict = lambda v, z, k: _classes(apply_fn, v, z, place(k))
  else:
    predict = lambda v, z, k: _classes(apply_fn, v, z)
  draws = lambda number: jax.vmap(lambda k: jax.random.fold_in(k, _PREDICT_STREAM + number))(
      keys)

  def chunks(idx):
    """(index of the images, padded index) per batch of `idx`."""
    for s in range(0, len(idx), batch_size):
      part = idx[s:s + batch_size]
      yield part, np.resize(part, bucket(len(part), batch_size, devices))

  prediction = np.empty(n, np.int32)
  clean_draws = draws(0)
  for part, padded in chunks(np.arange(n)):
    prediction[part] = np.asarray(predict(variables, place(x[padded]),
                                          clean_draws[padded]))[:len(part)]
  clean_correct = prediction == y
  broken_by = np.where(clean_correct, "", "clean").astype(object)
  images = x.copy()
  accuracy_after = {"clean": float(clean_correct.mean()) if n else 0.0}
  seconds, options = {}, {}
  for number, (name, fn, opts) in enumerate(steps):
    start = time.perf_counter()
    idx = np.flatnonzero(broken_by == "")
    bar = tqdm(total=len(idx), desc=f"autoattack {name} ({number + 1}/{len(steps)})",
               unit="img", disable=not progress or jax.process_index() != 0)
    stage_keys = jax.vmap(lambda k: jax.random.fold_in(k, number))(keys)
    stage_draws = draws(number + 1)
    for part, padded in chunks(idx):
      out = np.asarray(fn(apply_fn, variables, place(x[padded]), place(y[padded]),
                          stage_keys[padded], eps=eps, norm=norm, **opts), np.float32)
      # The padded batch's shape, so the prediction compiles once.
      pred = np.asarray(predict(variables, place(out), stage_draws[padded]))[:len(part)]
      out = out[:len(part)]
      hit = (pred != y[part]) & (_distance(out, x[part], norm) <= eps + _SLACK)
      broken_by[part[hit]] = name
      prediction[part[hit]] = pred[hit]
      # Robust images keep the first stage's try (APGD-CE: its point of highest loss).
      take = hit | (number == 0)
      images[part[take]] = out[take]
      bar.update(len(part))
    bar.close()
    seconds[name] = time.perf_counter() - start
    options[name] = dict(opts)
    accuracy_after[name] = float((broken_by == "").mean()) if n else 0.0
  return AutoAttackResult(images=images, prediction=prediction, clean_correct=clean_correct,
                          broken_by=broken_by.astype(str), stages=tuple(s[0] for s in steps),
                          accuracy_after=accuracy_after, seconds=seconds, options=options)
