"""Accuracy under attack over a whole split (the attack command's library part).

    report = evaluate_robustness(run, [attacks.AttackSpec("pgd", 8/255, "linf", 10)],
                                 source, batch_size=250, key=jax.random.key(0))
    report["autoattack"] = evaluate_autoattack(run, source, eps=8/255)

The report's schema is the attack command's robustness.json (see attack.py).
"""

import os
import time

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from interp_jax import attacks, data, sharding
from interp_jax.analysis.extraction import content_seeds
from interp_jax.attacks import masking
from interp_jax.errors import UserError


def _attack_step(apply_fn, spec, key, mesh):
  """Jitted: attacks a batch (random starts keyed by each image's pixels, as in the
  analysis) and returns its predictions replicated, the images sharded."""
  everywhere = sharding.replicated(mesh)

  def step(variables, batch):
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(batch["seed"])
    x_adv = spec(apply_fn, variables, batch["image"], batch["label"], keys)
    rows = {"clean": jnp.argmax(apply_fn(variables, batch["image"]), -1),
            "adversarial": jnp.argmax(apply_fn(variables, x_adv), -1),
            "label": batch["label"], "index": batch["index"], "mask": batch["mask"]}
    return rows, x_adv

  return jax.jit(step, out_shardings=(everywhere, sharding.batch_sharded(mesh)))


def evaluate_robustness(run, specs, source, batch_size, key, save_dir=None, progress=True):
  """Clean accuracy and accuracy under each attack over a whole split; see module doc.

  Each process reads its rows of every batch; the counts are made from the
  whole batch's replicated predictions, so every process returns the report.
  Saved images carry the split's index of their source image, also when
  `source` is a subset of the split (data.sample_by_content).
  """
  n = len(source)
  split_index = getattr(source, "indices", None)  # a Subset's ids in the whole split
  mesh = sharding.data_mesh()  # each batch is split over the devices (CPU cores too)
  if batch_size % mesh.size:
    raise UserError(f"batch size {batch_size} is not divisible by the {mesh.size} devices")
  results, clean_correct = {}, 0
  for spec in specs:
    step = _attack_step(run.model.apply, spec, key, mesh)
    correct, clean, kept = 0, 0, {"images": [], "index": [], "label": [], "prediction": []}
    start = time.perf_counter()
    batches = data.eval_batches(source, batch_size, jax.process_index(), jax.process_count())
    for batch in tqdm(batches, total=data.num_eval_batches(source, batch_size),
                      desc=f"{spec.name} eps={spec.eps:.4g}", unit="batch",
                      disable=not progress or jax.process_index() != 0):
      batch["seed"] = content_seeds(batch["image"])
      fields = {f: batch[f] for f in ("image", "label", "index", "mask", "seed")}
      rows, x_adv = step(run.variables, sharding.put_batch(mesh, fields))
      rows = jax.device_get(rows)
      keep = rows["mask"]
      correct += int(((rows["adversarial"] == rows["label"]) & keep).sum())
      clean += int(((rows["clean"] == rows["label"]) & keep).sum())
      if save_dir is not None:
        images = multihost_utils.process_allgather(x_adv, tiled=True)
        for k, v in (("images", images), ("index", rows["index"]), ("label", rows["label"]),
                     ("prediction", rows["adversarial"])):
          kept[k].append(np.asarray(v)[keep])
    clean_correct = clean
    results[spec.name] = {**spec.options(), "accuracy": correct / n,
                          "seconds": time.perf_counter() - start}
    if save_dir is not None and jax.process_index() == 0:
      os.makedirs(save_dir, exist_ok=True)
      saved = {k: np.concatenate(v) for k, v in kept.items()}
      if split_index is not None:
        saved["index"] = split_index[saved["index"]]
      np.savez(os.path.join(save_dir, f"{spec.name}.npz"), **saved)
  return {"checkpoint_step": run.step, "model": run.config.model.name,
          "dataset": run.config.dataset.name, "num_images": n,
          "clean_accuracy": clean_correct / n, "attacks": results}


def evaluate_autoattack(run, source, eps, norm="linf", version="standard", stages=None,
                        batch_size=256, key=None, save_dir=None, transfer=None,
                        progress=True, **overrides) -> dict:
  """AutoAttack over a whole split, with the checks against gradient masking.

  Every image's attack keys are derived from its pixels (as in the analysis),
  so its result does not depend on where the split stores it. `transfer`,
  when given, is (apply_fn, variables, name) of another model: its PGD-10
  images at the same eps give the transfer check its accuracy.

  Returns the "autoattack" section of robustness.json (see attack.py); with
  save_dir, DIR/autoattack.npz holds `images`, `index`, `label`, `prediction`
  and `broken_by` ("clean", the stage that broke the image, or "" if robust).
  """
  if jax.process_count() > 1:
    raise UserError("AutoAttack runs in one process: start the attack command on one host")
  key = jax.random.key(0) if key is None else key
  n = len(source)
  batch = data.to_model_input(source.get(np.arange(n)))
  x, y = batch["image"], batch["label"].astype(np.int32)
  keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.asarray(content_seeds(x)))
  mesh = sharding.data_mesh()
  if batch_size % mesh.size:
    raise UserError(f"batch size {batch_size} is not divisible by the {mesh.size} devices")
  apply_fn, variables = run.model.apply, run.variables
  result = attacks.autoattack(apply_fn, variables, x, y, keys, eps=eps, norm=norm,
                              version=version, stages=stages, batch_size=batch_size, mesh=mesh,
                              progress=progress, **overrides)
  transfer_accuracy, transfer_name = None, "another model"
  if transfer is not None:
    other_apply, other_variables, transfer_name = transfer
    spec = attacks.AttackSpec("pgd", eps, norm, 10)
    predict = jax.jit(lambda v, z: jnp.argmax(apply_fn(v, z), -1))
    hits = 0
    for s in range(0, n, batch_size):
      xs, ys = x[s:s + batch_size], y[s:s + batch_size]
      moved = spec(other_apply, other_variables, jnp.asarray(xs), jnp.asarray(ys), keys[s:s + len(xs)])
      hits += int((np.asarray(predict(variables, moved)) == ys).sum())
    transfer_accuracy = hits / n
  verdicts = masking.run_checks(apply_fn, variables, x, y, result, transfer_accuracy,
                                transfer_name)
  if save_dir is not None:
    os.makedirs(save_dir, exist_ok=True)
    index = getattr(source, "indices", np.arange(n))
    np.savez(os.path.join(save_dir, "autoattack.npz"), images=result.images,
             index=np.asarray(index), label=y, prediction=result.prediction,
             broken_by=result.broken_by)
  return {"version": version if stages is None else "custom", "eps": float(eps), "norm": norm,
          "stages": list(result.stages), "options": result.options,
          "accuracy": result.accuracy, "accuracy_after": result.accuracy_after,
          "broken": result.broken_counts(), "seconds": result.seconds,
          "transfer_accuracy": transfer_accuracy, "checks": verdicts}
