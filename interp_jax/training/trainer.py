"""train_and_evaluate(config, workdir): the training loop, resumable from its workdir.

    final = train_and_evaluate(configs.concepts.get_config(), "runs/standard")

The workdir holds `checkpoints/` (Orbax: state, data position, config),
`metrics.jsonl` (one JSON object a line: `step`, then `train_loss`,
`train_accuracy`, `eval_loss`, `eval_accuracy`, `steps_per_second` where
measured) and the same values as TensorBoard event files in `tensorboard/`
(metric_writers.py). Running again on the same workdir resumes from the last
checkpoint; a finished run returns its final metrics without training.
Everything a user can get wrong is checked before anything is written.
"""

import json
import os
import time

from etils import epath
import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from interp_jax import data, models, sharding
from interp_jax.attacks import batches as attacked_batches
from interp_jax.training import metric_writers, steps
from interp_jax.training import objective as objective_lib
from interp_jax.training.checkpointing import Checkpoints, abstract_like
from interp_jax.errors import UserError
from interp_jax.training.objective import Objective

# The parts of a config that fix the shape of the state: a checkpoint written
# under other values cannot be resumed under these.
_IDENTITY = ("variant", "model", "dataset.name", "dataset.image_size")


def _get(cfg: dict, dotted: str):
  for part in dotted.split("."):
    cfg = cfg.get(part) if isinstance(cfg, dict) else None
  return cfg


def check_config(config: ml_collections.ConfigDict) -> Objective:
  """Raises UserError for values that would fail later, before compute starts."""
  layer_names = models.create(config.model.name, 1, **config.model.options).layer_names
  for field in ("batch_size", "eval_batch_size", "num_train_steps", "log_every_steps",
                "eval_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    if int(config[field]) < 1:
      raise UserError(f"config.{field} must be a positive integer, got {config[field]}")
  if config.checkpoint_every_steps % config.log_every_steps:
    raise UserError("config.checkpoint_every_steps must be a multiple of "
                    "config.log_every_steps, so a resumed run logs the same windows")
  if config.optimizer.name not in ("adamw", "sgd"):
    raise UserError(f"unknown optimizer {config.optimizer.name!r}; use adamw or sgd")
  try:
    data.make_augment(config.augment, config.augment_pad)
  except ValueError as e:
    raise UserError(f"config.augment: {e}") from None
  if config.batch_size % jax.device_count() or config.eval_batch_size % jax.device_count():
    raise UserError(f"batch sizes must be divisible by the {jax.device_count()} devices")
  return objective_lib.from_config(config, layer_names)


def check_workdir(ckpt: Checkpoints, config_json: dict) -> None:
  """A workdir may only be resumed by a config of the same model and data."""
  saved = ckpt.saved_config()
  if saved is None:
    return
  for key in _IDENTITY:
    if _get(saved, key) != _get(config_json, key):
      raise UserError(
          f"workdir {os.path.dirname(ckpt.directory)} holds a checkpoint of another run "
          f"({key} = {_get(saved, key)!r}, this config has {_get(config_json, key)!r}); "
          f"use a new --workdir or the config that wrote it")


def evaluate(eval_step, state, source, mesh, batch_size: int, adv_eval_step=None,
             attack_images: int = 0, seed: int = 0) -> dict[str, float]:
  """Accuracy and mean CE over a whole split; with `adv_eval_step`, the accuracy
  under its attack on the first `attack_images` examples (0: all).

  Only the batches holding those examples are attacked; batch i's attack key
  is fold_in(key(seed), i), so the number does not depend on how many are skipped.
  """
  key = jax.random.key(seed)
  limit = attack_images or len(source)
  acc = attacked_batches.Accumulator(len(source))
  batches = data.eval_batches(source, batch_size, jax.process_index(), jax.process_count())
  counted = lambda b: {"attack_mask": b["mask"] & (b["index"] < limit)}
  for i, (_, batch) in enumerate(attacked_batches.stream(
      batches, desc="evaluate", mesh=mesh, fields=("image", "label", "mask"), extend=counted,
      seeds=False, progress=False)):
    sums = dict(eval_step(state, batch))
    if adv_eval_step is not None and i * batch_size < limit:  # same on every process
      sums.update(adv_eval_step(state, batch, jax.random.fold_in(key, i)))
    acc.add_sums(sums)  # the adv sums come from the first batches only
  totals = acc.sums
  out = {"eval_accuracy": totals["correct"] / totals["count"],
         "eval_loss": totals["loss"] / totals["count"]}
  if "adv_correct" in totals:
    out["eval_adv_accuracy"] = totals["adv_correct"] / totals["adv_count"]
  return out


def _summarise(window: list[dict], first_step: int) -> dict[str, float]:
  """Means over the steps of a logging window; stops on a non-finite loss."""
  # Fetched first, stacked on the host: eager jnp ops on replicated arrays dispatch
  # small multi-device programs between the train steps' collectives, and a run
  # on a loaded 2-core host was seen to deadlock inside XLA CPU's all-reduce there.
  stacked = jax.tree.map(lambda *xs: np.stack(xs), *jax.device_get(window))
  finite = stacked.pop("loss_is_finite")
  if not finite.all():
    bad = first_step + int(np.argmin(finite)) + 1
    raise FloatingPointError(f"the training loss became NaN or inf at step {bad}; "
                             "the last good checkpoint is kept")
  count = stacked.pop("count").sum()
  return {k: v.sum() / count for k, v in stacked.items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains config's model on config's data in workdir; returns the final metrics."""
  objective = check_config(config)
  config_json = json.loads(config.to_json())
  workdir = workdir if "://" in workdir else os.path.abspath(workdir)
  ckpt = Checkpoints(os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
  check_workdir(ckpt, config_json)
  meta = data.describe(config.dataset)
  model = models.create(config.model.name, meta.num_classes, **config.model.options)

  mesh = sharding.data_mesh()
  tx = steps.make_optimizer(config.optimizer, config.num_train_steps)
  init_key = jax.random.key(config.seed)
  state = jax.jit(lambda k: steps.create_train_state(model, tx, meta.image_shape, k),
                  out_shardings=sharding.replicated(mesh))(init_key)
  train_src = data.open_split(config.dataset, "train")
  test_src = data.open_split(config.dataset, config.get("eval_split", "test"))
  batches = data.TrainBatches(train_src, config.batch_size, seed=config.seed,
                              process_index=jax.process_index(),
                              process_count=jax.process_count())
  latest = ckpt.latest_step()
  start = latest or 0
  if latest is not None:  # also step 0: a run of imported weights (import_weights.py)
    state, data_state = ckpt.restore(abstract_like(state))
    batches.set_state(data_state)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  jsonl = metric_writers.JsonlWriter(os.path.join(workdir, "metrics.jsonl"), resume_step=start)
  if start >= config.num_train_steps:
    print(f"{workdir} is already trained to step {start}; nothing to do.")
    return _latest(jsonl)

  augment = data.make_augment(config.augment, config.augment_pad)
  jitted_step = jax.jit(steps.make_train_step(model, objective, config.seed, augment),
                        donate_argnums=0)
  # The seed's key and lambda go in as arguments: one compiled step for every seed and
  # lambda (XLA's persistent cache then serves the next run of a reproduction).
  run = jax.device_put(steps.run_constants(objective, config.seed), sharding.replicated(mesh))
  train_step = lambda state, batch: jitted_step(state, batch, run)
  eval_step = jax.jit(steps.make_eval_step(model))
  adv_eval_step = steps.make_adv_eval_step(model, objective)
  eval_steps = (eval_step, adv_eval_step and jax.jit(adv_eval_step))
  writer = metric_writers.MultiWriter([jsonl, metric_writers.TensorBoardWriter(
      os.path.join(workdir, "tensorboard"), resume_step=start)])
  try:
    _loop(config, state, batches, train_step, eval_steps, test_src, mesh, ckpt, writer,
          config_json, start)
  finally:
    ckpt.wait()  # a save in flight completes even when the loop stops on an error
    ckpt.close()
    writer.close()
  return _latest(jsonl)


def _loop(config, state, batches, train_step, eval_steps, test_src, mesh, ckpt, writer,
          config_json, start):
  """Steps start+1 .. num_train_steps: log, evaluate and checkpoint on schedule."""
  window, window_start, tick = [], start, time.perf_counter()
  with tqdm(total=config.num_train_steps, initial=start, desc="train", unit="step",
            disable=jax.process_index() != 0) as bar:
    for step in range(start + 1, config.num_train_steps + 1):
      state, metrics = train_step(state, sharding.put_batch(mesh, next(batches)))
      window.append(metrics)
      bar.update(1)
      last = step == config.num_train_steps
      record = {}
      if step % config.log_every_steps == 0 or last:
        record.update(_summarise(window, window_start))  # raises on a NaN loss
        record["steps_per_second"] = len(window) / (time.perf_counter() - tick)
        window, window_start = [], step
      if step % config.eval_every_steps == 0 or last:
        record.update(evaluate(eval_steps[0], state, test_src, mesh, config.eval_batch_size,
                               eval_steps[1], config.adv.eval_images, config.seed))
      if record:
        writer.write_scalars(step, record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items()
                         if k in ("train_loss", "eval_accuracy", "eval_adv_accuracy")})
        tick = time.perf_counter()
      if step % config.checkpoint_every_steps == 0 or last:
        ckpt.save(step, state, batches.get_state(), config_json)


def _latest(jsonl: metric_writers.JsonlWriter) -> dict[str, float]:
  """The newest value of every metric in metrics.jsonl."""
  return {k: v for r in jsonl.records() for k, v in r.items()}
