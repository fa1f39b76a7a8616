"""Pure train and eval steps, built once by factories and jitted by the trainer.

    state = create_train_state(model, tx, image_shape, key)
    train_step = jax.jit(make_train_step(model), donate_argnums=0)
    state, metrics = train_step(state, batch)          # metrics: sums and counts
    eval_step = jax.jit(make_eval_step(model))
    sums = eval_step(state, batch)                      # {"correct": ..., "count": ...}

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


class TrainState(train_state.TrainState):
  batch_stats: Any = None


def make_optimizer(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """SGD-momentum or AdamW with linear warmup and cosine decay."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.learning_rate,
      warmup_steps=min(cfg.warmup_steps, num_steps), decay_steps=max(num_steps, 1),
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


def make_train_step(model):
  """Returns train_step(state, batch) -> (state, metric sums): one SGD step on CE."""

  def loss_fn(params, state, batch):
    logits, updates = model.apply(_variables(state, params), batch["image"], train=True,
                                  mutable=["batch_stats"])
    ce = losses.cross_entropy(logits, batch["label"])
    return ce.mean(), (updates["batch_stats"], ce, logits)

  def train_step(state: TrainState, batch):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (batch_stats, ce, logits)), grads = grad_fn(state.params, state, batch)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    metrics = {"train_loss": ce.sum(),
               "train_accuracy": losses.correct(logits, batch["label"]).sum(),
               "count": jnp.float32(ce.shape[0]),
               "loss_is_finite": jnp.isfinite(loss).astype(jnp.float32)}
    return state, metrics

  return train_step


def make_eval_step(model):
  """Returns eval_step(state, batch) -> sums of correct predictions and CE over kept rows."""

  def eval_step(state: TrainState, batch):
    logits = model.apply(_variables(state), batch["image"], train=False)
    mask = batch["mask"].astype(jnp.float32)
    return {"correct": (losses.correct(logits, batch["label"]) * mask).sum(),
            "loss": (losses.cross_entropy(logits, batch["label"]) * mask).sum(),
            "count": mask.sum()}

  return eval_step
