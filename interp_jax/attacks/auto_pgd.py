"""Auto-PGD: PGD without a step size to tune (Croce and Hein 2020), on CE or DLR losses.

    x_adv = apgd(apply_fn, variables, x, y, key, eps=8/255)                # APGD-CE
    x_adv = apgd(apply_fn, variables, x, y, key, eps=8/255, loss="dlr")    # APGD-DLR
    x_adv = apgd_targeted(apply_fn, variables, x, y, key, eps=8/255)       # APGD-T, 9 targets

Each run starts from a random point on the eps-sphere and takes `steps`
steps of size eta (2 eps at first) with momentum 0.75. At checkpoints
w_0 = 0, w_1 = 0.22 N, w_{j+1} = w_j + max(w_j - w_{j-1} - 0.03 N, 0.06 N),
an image's step size is halved, and its search restarts from its best
point, when the loss rose in at most rho = 75% of the steps since the last
checkpoint, or when the step was not halved last time and the best loss has
not improved since. Everything is per image.

APGD-T runs once per target: the 2nd, 3rd, ... largest clean logit, on the
targeted DLR loss -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2); a run (and a
restart) attacks only the images every earlier run left robust.

A model with a random forward pass (`eot_iter` > 1, AutoAttack's "rand"
version) is called as apply_fn(variables, x, key): each image draws its own
randomness from its own key, and every step ascends the mean loss of
`eot_iter` draws, with their mean gradient (expectation over transformation,
Athalye et al. 2018); its class is read from the mean logits of the draws.

Returns, per image: the iterate that broke it (the model's class differs
from y), else the point of highest loss of the first run. Called with
concrete arrays on CPU, each run attacks only the still-robust images,
gathered into a smaller batch (sizes halve, so few shapes compile), and the
steps are driven by `loop.fori`; traced, it runs on the whole batch.

References: Croce and Hein 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks" (ICML).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from interp_jax import losses
from interp_jax.attacks import checks, loop
from interp_jax.attacks.gradient import attack_loss
from interp_jax.attacks.projections import _per_example, is_key_batch, l2_norm
from interp_jax.errors import UserError

LOSSES = ("ce", "dlr", "dlr_targeted")
_TINY = 1e-12


def dlr_loss(logits: jax.Array, y: jax.Array) -> jax.Array:
  """Difference of logits ratio: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3), per example.

  Invariant to shifting and scaling the logits, so it cannot be escaped by a
  model that inflates them. Needs 3 classes or more.
  """
  z = logits.astype(jnp.float32)
  top = jax.lax.top_k(z, 3)[0]
  z_y = jnp.take_along_axis(z, y[:, None], 1)[:, 0]
  best_other = jnp.where(top[:, 0] == z_y, top[:, 1], top[:, 0])
  return -(z_y - best_other) / (top[:, 0] - top[:, 2] + _TINY)


def dlr_targeted_loss(logits: jax.Array, y: jax.Array, target: jax.Array) -> jax.Array:
  """Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2); needs 4 classes or more."""
  z = logits.astype(jnp.float32)
  top = jax.lax.top_k(z, 4)[0]
  z_y = jnp.take_along_axis(z, y[:, None], 1)[:, 0]
  z_t = jnp.take_along_axis(z, target[:, None], 1)[:, 0]
  return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + _TINY)


def schedule(steps: int) -> tuple[np.ndarray, np.ndarray]:
  """(is_checkpoint [steps] bool, window [steps] int): where the step size is reviewed,
  and over how many steps since the last review, as the published code counts them."""
  first, least, shrink = (max(int(f * steps), 1) for f in (0.22, 0.06, 0.03))
  check, window = np.zeros(steps, bool), np.zeros(steps, np.int32)
  k, since = first, 0
  for i in range(steps):
    since += 1
    if since == k:
      check[i], window[i] = True, k
      k, since = max(k - shrink, least), 0
  return check, window


def random_logits(apply_fn, variables, x, keys):
  """Logits of a random model, apply_fn(variables, x, key), each image drawing from its own
  key: an image's logits do not depend on the rest of its batch."""
  return jax.vmap(lambda xi, k: apply_fn(variables, xi[None], k)[0])(x, keys)


def _loss(apply_fn, variables, x, y, target, loss, keys=None):
  if keys is not None:
    logits = random_logits(apply_fn, variables, x, keys)
  else:
    logits = apply_fn(variables, x)
  if loss == "ce":
    if keys is None:
      return attack_loss(apply_fn, variables, x, y), logits
    return losses.cross_entropy(logits, y), logits
  if loss == "dlr":
    return dlr_loss(logits, y), logits
  return dlr_targeted_loss(logits, y, target), logits


def _loss_and_grad(apply_fn, variables, x, y, target, loss, draw_keys=None):
  """Per-example loss, logits, and the input gradient of the summed loss.

  draw_keys [E, B] (a random model): the means over the E draws of the loss, the
  logits and the gradient.
  """
  def one(keys):
    (_, (each, logits)), grad = jax.value_and_grad(
        lambda z: (lambda l: (l[0].sum(), l))(_loss(apply_fn, variables, z, y, target, loss,
                                                     keys)),
        has_aux=True)(x)
    return each, logits, grad
  if draw_keys is None:
    return one(None)
  return jax.tree.map(lambda a: a.mean(0), jax.vmap(one)(draw_keys))


def _draw_keys(model_keys, index, eot_iter):
  """[eot_iter, B] keys of the draws at `index` (0: the start, i + 1: step i) from each
  image's key."""
  if model_keys is None:
    return None
  at_step = jax.vmap(lambda k: jax.random.fold_in(k, index))(model_keys)
  return jax.vmap(lambda j: jax.vmap(lambda k: jax.random.fold_in(k, j))(at_step))(
      jnp.arange(eot_iter))


def _project(z, x, eps, norm):
  """Into the eps-ball around x (L2: rescaled onto it when outside), then the box."""
  d = z - x
  if norm == "linf":
    return jnp.clip(x + jnp.clip(d, -eps, eps), 0.0, 1.0)
  n = l2_norm(d)
  scale = jnp.minimum(eps, n) / (n + _TINY)
  return jnp.clip(x + d * _per_example(scale, d), 0.0, 1.0)


def _start(key, x, eps, norm):
  """A random point on the eps-sphere (L-inf: uniform noise rescaled to max |t| = eps)."""
  def one(k, xi):
    if norm == "linf":
      t = jax.random.uniform(k, xi.shape, jnp.float32, -1.0, 1.0)
      return t / (jnp.max(jnp.abs(t)) + _TINY)
    t = jax.random.normal(k, xi.shape, jnp.float32)
    return t / (jnp.sqrt(jnp.sum(t * t)) + _TINY)
  t = jax.vmap(one)(key, x)
  return jnp.clip(x + eps * t, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=("steps", "eot_iter"))
def _all_draw_keys(model_keys, *, steps, eot_iter):
  """[steps + 1, eot_iter, B]: the draws of the start and of each step, made once, outside
  the step (threefry inside it lengthened its compile by seconds)."""
  return jax.vmap(lambda i: _draw_keys(model_keys, i, eot_iter))(jnp.arange(steps + 1))


@functools.partial(jax.jit, static_argnames=("apply_fn", "norm", "loss"))
def _init(apply_fn, variables, x, y, target, keys, eps, draws=None, *, norm, loss):
  x0 = _start(keys, x, eps, norm)
  each, logits, grad = _loss_and_grad(apply_fn, variables, x0, y, target, loss,
                                      None if draws is None else draws[0])
  b = x.shape[0]
  return {"x": x0, "x_prev": x0, "grad": grad, "x_best": x0, "grad_best": grad,
          "loss_best": each, "x_broken": x0, "robust": jnp.argmax(logits, -1) == y,
          "eta": jnp.full((b,), 2.0, jnp.float32) * eps, "loss_prev": each,
          "rises": jnp.zeros((b,), jnp.int32), "loss_at_check": each,
          "halved_at_check": jnp.ones((b,), bool)}


@functools.partial(jax.jit, static_argnames=("apply_fn", "norm", "loss", "steps", "rho"))
def _step(i, s, apply_fn, variables, x, y, target, eps, draws=None, *, norm, loss, steps, rho):
  """One APGD iteration for every image of the batch; see the module docstring."""
  check, window = (jnp.asarray(a) for a in schedule(steps))
  momentum = jnp.where(i > 0, 0.75, 1.0)
  previous_move = s["x"] - s["x_prev"]
  if norm == "linf":
    direction = jnp.sign(s["grad"])
  else:
    direction = s["grad"] / _per_example(l2_norm(s["grad"]) + _TINY, s["grad"])
  z = _project(s["x"] + _per_example(s["eta"], x) * direction, x, eps, norm)
  x_new = _project(s["x"] + momentum * (z - s["x"]) + (1 - momentum) * previous_move,
                   x, eps, norm)
  each, logits, grad = _loss_and_grad(apply_fn, variables, x_new, y, target, loss,
                                      None if draws is None else draws[i + 1])
  fooled = jnp.argmax(logits, -1) != y
  better = each > s["loss_best"]
  pick = lambda m, a, b: jnp.where(_per_example(m, a), a, b)
  s = {**s, "x_prev": s["x"], "robust": s["robust"] & ~fooled,
       "x_broken": pick(fooled, x_new, s["x_broken"]),
       "x_best": pick(better, x_new, s["x_best"]), "grad_best": pick(better, grad, s["grad_best"]),
       "loss_best": jnp.where(better, each, s["loss_best"]),
       "rises": s["rises"] + (each > s["loss_prev"]), "loss_prev": each}
  # The checkpoint: halve eta and go back to the best point where the loss rose too
  # rarely, or where nothing improved since a checkpoint that left eta alone.
  at = check[i]
  stalled = ~s["halved_at_check"] & (s["loss_at_check"] >= s["loss_best"])
  halve = at & ((s["rises"] <= window[i] * rho) | stalled)
  return {**s, "x": pick(halve, s["x_best"], x_new), "grad": pick(halve, s["grad_best"], grad),
          "eta": jnp.where(halve, s["eta"] / 2, s["eta"]),
          "rises": jnp.where(at, 0, s["rises"]),
          "loss_at_check": jnp.where(at, s["loss_best"], s["loss_at_check"]),
          "halved_at_check": jnp.where(at, halve, s["halved_at_check"])}


def single_run(apply_fn, variables, x, y, keys, eps, *, norm="linf", loss="ce", steps=100,
               rho=0.75, target=None, model_keys=None, eot_iter=1):
  """One APGD run on every image: (images, still robust [B], best loss [B]).

  keys: one PRNG key per image. images: the breaking iterate where broken,
  else the point of highest loss. model_keys: one per image, for a random model.
  """
  target = y if target is None else target
  eps = jnp.float32(eps)
  draws = (None if model_keys is None else
           _all_draw_keys(model_keys, steps=steps, eot_iter=eot_iter))
  s = _init(apply_fn, variables, x, y, target, keys, eps, draws, norm=norm, loss=loss)
  step = functools.partial(_step, apply_fn=apply_fn, variables=variables, x=x, y=y,
                           target=target, eps=eps, draws=draws, norm=norm, loss=loss,
                           steps=steps, rho=float(rho))
  s = loop.fori(step, steps, s)
  out = jnp.where(_per_example(s["robust"], x), s["x_best"], s["x_broken"])
  return out, s["robust"], s["loss_best"]


def bucket(n: int, full: int, multiple: int = 1, least: int = 8) -> int:
  """The padded size of a subset of n images: `full`, halved while n fits and the size stays
  a multiple of `multiple` and at least `least` (so at most a few shapes compile)."""
  size = full
  while size % 2 == 0 and size // 2 >= max(n, least) and (size // 2) % multiple == 0:
    size //= 2
  return size


_MODEL_STREAM = 1 << 20   # folded into an image's key for its random model's draws
_CLEAN_DRAWS = 1 << 30    # the draws that rank the clean classes


def _fold(keys, data):
  return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


def _per_image_keys(key, n):
  if key is None:
    raise UserError("APGD starts from a random point: it needs a PRNG key (jax.random.key(0))")
  return key if is_key_batch(key) else jax.random.split(key, n)


def _runs(num_classes, loss, restarts, targets):
  """(restart, target rank) of each run: rank 0 = untargeted, r = the r-th largest logit."""
  if loss != "dlr_targeted":
    return [(r, 0) for r in range(restarts)]
  return [(r, t) for t in range(2, targets + 2) for r in range(restarts)]


def _check(apply_fn, variables, x, y, eps, norm, steps, loss, restarts, targets, eot_iter):
  checks.check_budget(x, eps, None, steps, norm)
  if int(eot_iter) != eot_iter or eot_iter < 1:
    raise UserError(f"eot_iter must be a positive integer, got {eot_iter}")
  random = eot_iter > 1
  checks.check_inputs(apply_fn, variables, x, y, random=random)
  if loss not in LOSSES:
    raise UserError(f"unknown APGD loss {loss!r}; use one of {', '.join(LOSSES)}")
  if int(restarts) != restarts or restarts < 1:
    raise UserError(f"restarts must be a positive integer, got {restarts}")
  num_classes = checks._num_classes(apply_fn, variables, x, random=random)
  need = {"ce": 2, "dlr": 3, "dlr_targeted": 4}[loss]
  if num_classes < need:
    raise UserError(f"the {loss} loss needs at least {need} classes; the model has "
                    f"{num_classes}: use loss='ce'")
  if loss == "dlr_targeted" and not 1 <= targets <= num_classes - 1:
    raise UserError(f"targets must be in [1, {num_classes - 1}] for a model of "
                    f"{num_classes} classes, got {targets}")
  return num_classes


def apgd(apply_fn, variables, x, y, key=None, *, eps, norm="linf", steps=100, loss="ce",
         restarts=1, targets=9, rho=0.75, eot_iter=1):
  """APGD on `loss` ("ce", "dlr", or "dlr_targeted" over `targets` targets); see module doc.

  Args:
    key: one PRNG key, or one per image (then an image's result does not
      depend on where it sits in the batch).
    restarts: runs from new random starts (per target), each on the images
      all earlier runs left robust.
    eot_iter: draws of a random model per step; above 1, apply_fn is called
      as apply_fn(variables, x, key).
  Returns:
    float32 images in [0, 1] within eps of x.
  """
  num_classes = _check(apply_fn, variables, x, y, eps, norm, steps, loss, restarts, targets,
                       eot_iter)
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.int32)
  keys = _per_image_keys(key, x.shape[0])
  runs = _runs(num_classes, loss, restarts, min(int(targets), num_classes - 1))
  eot_iter = int(eot_iter)
  # A random model's draws: keys of their own, apart from the random starts'.
  model_keys = _fold(keys, _MODEL_STREAM) if eot_iter > 1 else None
  if model_keys is None:
    clean = apply_fn(variables, x)
  else:
    clean = jnp.mean(jax.vmap(lambda ks: random_logits(apply_fn, variables, x, ks))(
        _draw_keys(model_keys, _CLEAN_DRAWS, eot_iter)), 0)
  order = jnp.argsort(-clean, axis=-1)   # the clean logits' classes, likeliest first
  robust = jnp.argmax(clean, -1) == y
  out = x
  for n, (restart, rank) in enumerate(runs):
    run_keys = _fold(keys, restart)
    target = order[:, rank - 1] if rank else y
    if loop.on_host((x, variables)):
      idx = np.flatnonzero(np.asarray(robust))
      if idx.size == 0:
        break
      pad = np.resize(idx, bucket(idx.size, x.shape[0]))  # repeats: results unread
      img, still, _ = single_run(
          apply_fn, variables, x[pad], y[pad], run_keys[pad], eps, norm=norm, loss=loss,
          steps=steps, rho=rho, target=target[pad], eot_iter=eot_iter,
          model_keys=None if model_keys is None else _fold(model_keys, restart)[pad])
      img, still = img[:idx.size], still[:idx.size]
      broken = ~still
      keep = jnp.zeros(x.shape[0], bool).at[idx].set(broken)
      out = out.at[idx].set(jnp.where(_per_example(broken | (n == 0), img), img, out[idx]))
      robust = robust & ~keep
    else:
      img, still, _ = single_run(
          apply_fn, variables, x, y, run_keys, eps, norm=norm, loss=loss, steps=steps, rho=rho,
          target=target, eot_iter=eot_iter,
          model_keys=None if model_keys is None else _fold(model_keys, restart))
      take = robust & (~still | (n == 0))
      out = jnp.where(_per_example(take, x), img, out)
      robust = robust & still
  return out


def apgd_targeted(apply_fn, variables, x, y, key=None, *, eps, norm="linf", steps=100,
                  targets=9, restarts=1, rho=0.75, eot_iter=1):
  """APGD-T: APGD on the targeted DLR loss toward each of the `targets` likeliest classes."""
  return apgd(apply_fn, variables, x, y, key, eps=eps, norm=norm, steps=steps,
              loss="dlr_targeted", restarts=restarts, targets=targets, rho=rho,
              eot_iter=eot_iter)
