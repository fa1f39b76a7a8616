"""Pure train and eval steps, built once by factories and jitted by the trainer.

    state = create_train_state(model, tx, image_shape, key)
    train_step = jax.jit(make_train_step(model, objective), donate_argnums=0)
    state, metrics = train_step(state, batch)          # metrics: sums and counts
    state, metrics = train_step(state, batch, run_constants(objective, seed))  # the same
    eval_step = jax.jit(make_eval_step(model))
    sums = eval_step(state, batch)                      # {"correct": ..., "count": ...}
    adv_eval_step = make_adv_eval_step(model, objective)  # None without an attack
    adv_sums = jax.jit(adv_eval_step)(state, batch, key)  # {"adv_correct": ..., "adv_count": ...}

Metrics leave the step as sums with a count, so they merge across batches
and devices by addition (clu's metric habit); the trainer divides at the end.
"""

from typing import Any

from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import optax

from interp_jax import losses
from interp_jax.attacks import batches as attacked_batches
from interp_jax.training.objective import Objective


class TrainState(train_state.TrainState):
  batch_stats: Any = None


def make_optimizer(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """SGD-momentum or AdamW with linear warmup and cosine decay."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.learning_rate,
      warmup_steps=min(cfg.warmup_steps, num_steps // 2), decay_steps=max(num_steps, 1),
      end_value=cfg.learning_rate * cfg.final_lr_fraction)
  if cfg.name == "adamw":
    return optax.adamw(schedule, weight_decay=cfg.weight_decay)
  if cfg.name == "sgd":
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                       optax.sgd(schedule, momentum=cfg.momentum, nesterov=True))
  raise ValueError(f"unknown optimizer {cfg.name!r}")


def create_train_state(model, tx, image_shape, key) -> TrainState:
  variables = model.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)
  return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                           batch_stats=variables.get("batch_stats", {}))


def _variables(state: TrainState, params=None) -> dict:
  return {"params": state.params if params is None else params,
          "batch_stats": state.batch_stats}


def make_adversary(model, objective: Objective, seed: int = 0):
  """Returns adversary(state, x, y, root_key=None) -> x', the training attack's images,
  or None.

  BatchNorm runs in inference mode (model.apply's default) and no gradient
  flows through the attack. The key is fold_in(root_key, state.step), root_key
  being key(seed) unless given (the train step passes it as an argument). With
  eps_warmup_steps, eps grows linearly to its value over the first steps.
  """
  spec = objective.attack_spec
  if spec is None:
    return None

  def adversary(state: TrainState, x, y, root_key=None):
    root_key = jax.random.key(seed) if root_key is None else root_key
    key = jax.random.fold_in(root_key, state.step)
    budget = {}
    if objective.eps_warmup_steps:  # eps is traced by the attacks: no recompilation
      ramp = jnp.minimum(1.0, (state.step + 1) / objective.eps_warmup_steps)
      budget["eps"] = ramp * spec.eps
      if spec.options().get("step_size") is not None:
        budget["step_size"] = ramp * spec.step_size
    return jax.lax.stop_gradient(spec(model.apply, _variables(state), x, y, key, **budget))

  return adversary


def run_constants(objective: Objective, seed: int) -> dict:
  """What differs between the runs of one train step: the seed's key and lambda.

  The trainer passes them to the step as arguments: baked in as constants, they
  made every seed and every lambda a program of its own, compiled again rather
  than read from XLA's persistent cache, whose key covers constants.
  """
  return {"key": jax.random.key(seed), "weight": jnp.float32(objective.weight)}


# Folded into key(seed) for the augmentation's keys, a stream apart from the attack's.
_AUGMENT_STREAM = 0x617567


def make_train_step(model, objective: Objective = Objective(), seed: int = 0, augment=None):
  """Returns train_step(state, batch, run=None) -> (state, metric sums) for `objective`.

  run: run_constants(objective, seed), the default; the trainer passes it so one
  compiled step serves every seed and lambda.

  augment: None, or a function (x, key) -> x applied to the clean batch first
  (data.make_augment), keyed by fold_in(fold_in(key(seed), stream), step).

  With an attack, x' is made against the current parameters (BatchNorm in
  inference mode, no gradient through the attack), then x and x' go through
  the model as one batch of 2B rows: the features of the consistent term come
  from that same forward pass, so the term costs no extra pass. The attack's
  key is fold_in(key(seed), step): a resumed run draws the same random starts.
  """
  adversary = make_adversary(model, objective, seed)

  def loss_fn(params, state, x, x_adv, y, weight):
    inputs = x if x_adv is None else jnp.concatenate([x, x_adv])
    logits, updates = model.apply(_variables(state, params), inputs, train=True,
                                  mutable=["batch_stats", "intermediates"])
    b = x.shape[0]
    ce_clean = losses.cross_entropy(logits[:b], y)
    parts = {"clean_ce": ce_clean.mean(), "clean_correct": losses.correct(logits[:b], y)}
    # Standard training is plain CE; the weights belong to adversarial training.
    total = parts["clean_ce"] if x_adv is None else objective.clean_weight * parts["clean_ce"]
    if x_adv is not None:
      parts["adv_ce"] = losses.cross_entropy(logits[b:], y).mean()
      parts["adv_correct"] = losses.correct(logits[b:], y)
      total = total + objective.adv_weight * parts["adv_ce"]
      if objective.consistent:
        feats = updates["intermediates"]
        anchor = jax.lax.stop_gradient if objective.anchor_clean else (lambda f: f)
        parts["consistency"] = sum(
            losses.feature_distance(anchor(feats[l][:b]), feats[l][b:], objective.distance)
            for l in objective.layers)
        total = total + weight * parts["consistency"]
    return total, (updates["batch_stats"], parts)

  def train_step(state: TrainState, batch, run=None):
    run = run_constants(objective, seed) if run is None else run
    x, y = batch["image"], batch["label"]
    if augment is not None:
      augment_key = jax.random.fold_in(run["key"], _AUGMENT_STREAM)
      x = augment(x, jax.random.fold_in(augment_key, state.step))
    x_adv = None if adversary is None else adversary(state, x, y, run["key"])
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (batch_stats, parts)), grads = grad_fn(state.params, state, x, x_adv, y,
                                                   run["weight"])
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    count = jnp.float32(y.shape[0])
    metrics = {"train_loss": loss * count, "count": count,
               "train_accuracy": parts.pop("clean_correct").sum(),
               "loss_is_finite": jnp.isfinite(loss).astype(jnp.float32)}
    if "adv_correct" in parts:
      metrics["train_adv_accuracy"] = parts.pop("adv_correct").sum()
    metrics.update({k: v * count for k, v in parts.items()})
    return state, metrics

  return train_step


def make_eval_step(model):
  """Returns eval_step(state, batch) -> sums of correct predictions and CE over batch["mask"]."""

  def eval_step(state: TrainState, batch):
    x, y = batch["image"], batch["label"]
    logits = model.apply(_variables(state), x, train=False)
    mask = batch["mask"].astype(jnp.float32)
    return {"correct": (losses.correct(logits, y) * mask).sum(),
            "loss": (losses.cross_entropy(logits, y) * mask).sum(),
            "count": mask.sum()}

  return eval_step


def make_adv_eval_step(model, objective: Objective):
  """Returns adv_eval_step(state, batch, key) -> {"adv_correct", "adv_count"}, or None.

  Attacks the batch with the training attack (None without one), every image
  with `key`, in the attacked-batch step the analysis uses
  (attacks.batches), and counts correct predictions on the rows where
  `batch["attack_mask"]` is 1. It is a program of its own so the trainer runs
  it only on the batches that hold counted images: one program skipping the
  attack with a lax.cond ran slower on XLA CPU (the convolutions
  inside a branch get slow kernels).
  """
  spec = objective.attack_spec
  if spec is None:
    return None

  def counted(variables, seen, batch, extra):
    mask = batch["attack_mask"].astype(jnp.float32)
    return {"adv_correct": (losses.correct(seen.logits["adversarial"], seen.labels)
                            * mask).sum(),
            "adv_count": mask.sum()}

  attacked = attacked_batches.attacked_fn(model, {"adversarial": spec}, forward=("adversarial",),
                                          readout=counted, keyed_by="batch")

  def adv_eval_step(state: TrainState, batch, key):
    return attacked(_variables(state), batch, key)[0]

  return adv_eval_step
