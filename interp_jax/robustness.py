"""Accuracy under attack over a whole split (the attack command's library part).

    report = evaluate_robustness(run, [attacks.AttackSpec("pgd", 8/255, "linf", 10)],
                                 source, batch_size=250, key=jax.random.key(0))

The report's schema is the attack command's robustness.json (see attack.py).
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from interp_jax import attacks, data, sharding
from interp_jax.errors import UserError


def evaluate_robustness(run, specs, source, batch_size, key, save_dir=None, progress=True):
  """Clean accuracy and accuracy under each attack over a whole split; see module doc."""
  apply_fn = run.model.apply
  predict = jax.jit(lambda v, x: jnp.argmax(apply_fn(v, x), -1))
  n = len(source)
  mesh = sharding.data_mesh()  # each batch is split over the devices (CPU cores too)
  if batch_size % mesh.size:
    raise UserError(f"batch size {batch_size} is not divisible by the {mesh.size} devices")
  results, clean_correct = {}, None
  for spec in specs:
    correct, clean, kept = 0, 0, {"images": [], "index": [], "label": [], "prediction": []}
    start = time.perf_counter()
    batches = data.eval_batches(source, batch_size)
    for i, batch in enumerate(tqdm(batches, total=data.num_eval_batches(source, batch_size),
                                   desc=f"{spec.name} eps={spec.eps:.4g}", disable=not progress,
                                   unit="batch")):
      y, mask = batch["label"], batch["mask"]
      on_devices = sharding.put_batch(mesh, {"image": batch["image"], "label": y})
      x = on_devices["image"]
      x_adv = spec(apply_fn, run.variables, x, on_devices["label"], jax.random.fold_in(key, i))
      pred = np.asarray(predict(run.variables, x_adv))
      correct += int(((pred == y) & mask).sum())
      if clean_correct is None:
        clean += int(((np.asarray(predict(run.variables, x)) == y) & mask).sum())
      if save_dir is not None:
        for k, v in (("images", np.asarray(x_adv)), ("index", batch["index"]), ("label", y),
                     ("prediction", pred)):
          kept[k].append(v[mask])
    if clean_correct is None:
      clean_correct = clean
    results[spec.name] = {**spec.options(), "accuracy": correct / n,
                          "seconds": time.perf_counter() - start}
    if save_dir is not None:
      os.makedirs(save_dir, exist_ok=True)
      np.savez(os.path.join(save_dir, f"{spec.name}.npz"),
               **{k: np.concatenate(v) for k, v in kept.items()})
  return {"checkpoint_step": run.step, "model": run.config.model.name,
          "dataset": run.config.dataset.name, "num_images": n,
          "clean_accuracy": clean_correct / n, "attacks": results}
