"""Accuracy under attack over a whole split (the attack command's library part).

    report = evaluate_robustness(run, [attacks.AttackSpec("pgd", 8/255, "linf", 10)],
                                 source, batch_size=250, key=jax.random.key(0))
    report.attacks["pgd"].accuracy                           # a RobustnessReport
    auto = evaluate_autoattack(run, source, eps=8/255)       # an AutoAttackReport
    dataclasses.replace(report, autoattack=auto)

The report is the attack command's robustness.json (see report/robustness.py).
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from interp_jax import attacks, data, sharding
from interp_jax.attacks import batches as ab
from interp_jax.analysis.results import AttackAccuracy, AutoAttackReport, RobustnessReport
from interp_jax.attacks import masking
from interp_jax.errors import UserError


def _attack_step(model, spec, mesh):
  """Jitted (attacks.batches): attacks a batch, random starts keyed by each image's
  pixels as in the analysis; its predictions leave replicated, the images sharded."""

  def readout(variables, seen, batch, extra):
    return {"clean": jnp.argmax(seen.logits["clean"], -1),
            "adversarial": jnp.argmax(seen.logits["adversarial"], -1),
            "label": batch["label"], "index": batch["index"], "mask": batch["mask"]}

  return ab.attacked_step(model, {"adversarial": spec}, readout=readout, mesh=mesh)


def evaluate_robustness(run, specs, source, batch_size, key, save_dir=None,
                        progress=True) -> RobustnessReport:
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
    step = _attack_step(run.model, spec, mesh)
    start = time.perf_counter()
    acc = ab.Accumulator(n)
    for _, placed in ab.over(source, batch_size, desc=f"{spec.name} eps={spec.eps:.4g}",
                             mesh=mesh, progress=progress,
                             fields=("image", "label", "index", "mask", "seed")):
      out, made = step(run.variables, placed, key)
      acc.add_rows(out, made["adversarial"] if save_dir is not None else None)
    rows = acc.rows
    clean_correct = int((rows["clean"] == rows["label"]).sum())
    results[spec.name] = AttackAccuracy(
        int((rows["adversarial"] == rows["label"]).sum()) / n, time.perf_counter() - start,
        spec.options())
    if save_dir is not None and jax.process_index() == 0:
      os.makedirs(save_dir, exist_ok=True)
      index = np.arange(n, dtype=np.int32) if split_index is None else split_index
      np.savez(os.path.join(save_dir, f"{spec.name}.npz"), images=acc.images, index=index,
               label=rows["label"], prediction=rows["adversarial"])
  return RobustnessReport(run.step, run.config.model.name, run.config.dataset.name, n,
                          clean_correct / n, results)


def evaluate_autoattack(run, source, eps, norm="linf", version="standard", stages=None,
                        batch_size=256, key=None, save_dir=None, transfer=None,
                        progress=True, **overrides) -> AutoAttackReport:
  """AutoAttack over a whole split, with the checks against gradient masking.

  Every image's attack keys are derived from its pixels (as in the analysis),
  so its result does not depend on where the split stores it. `transfer`,
  when given, is (apply_fn, variables, name) of another model: its PGD-10
  images at the same eps give the transfer check its accuracy.

  Returns robustness.json's "autoattack" section (report/robustness.py); with
  save_dir, DIR/autoattack.npz holds `images`, `index`, `label`, `prediction`
  and `broken_by` ("clean", the stage that broke the image, or "" if robust).
  """
  if jax.process_count() > 1:
    raise UserError("AutoAttack runs in one process: start the attack command on one host")
  key = jax.random.key(0) if key is None else key
  n = len(source)
  batch = data.to_model_input(source.get(np.arange(n)))
  x, y = batch["image"], batch["label"].astype(np.int32)
  keys = ab.image_keys(key, ab.content_seeds(x))
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
    transfer_accuracy = _transfer_accuracy(run, source, attacks.AttackSpec("pgd", eps, norm, 10),
                                           other_apply, other_variables, batch_size, key, mesh,
                                           progress)
  verdicts = masking.run_checks(apply_fn, variables, x, y, result, transfer_accuracy,
                                transfer_name)
  if save_dir is not None:
    os.makedirs(save_dir, exist_ok=True)
    index = getattr(source, "indices", np.arange(n))
    np.savez(os.path.join(save_dir, "autoattack.npz"), images=result.images,
             index=np.asarray(index), label=y, prediction=result.prediction,
             broken_by=result.broken_by)
  return AutoAttackReport(
      version=version if stages is None else "custom", eps=float(eps), norm=norm,
      stages=tuple(result.stages), options=result.options, accuracy=result.accuracy,
      accuracy_after=result.accuracy_after, broken=result.broken_counts(),
      seconds=result.seconds, transfer_accuracy=transfer_accuracy, checks=verdicts)


def _transfer_accuracy(run, source, spec, other_apply, other_variables, batch_size, key, mesh,
                       progress) -> float:
  """The run's accuracy on `spec`'s images made against another model (same image keys)."""
  against = ab.Attack(spec, other_apply, lambda variables, other: other)

  def readout(variables, seen, batch, extra):
    return {"hit": jnp.argmax(seen.logits["transfer"], -1) == batch["label"],
            "index": batch["index"], "mask": batch["mask"]}

  step = ab.attacked_step(run.model, {"transfer": against}, forward=("transfer",),
                          readout=readout, mesh=mesh)
  acc = ab.Accumulator(len(source))
  for _, placed in ab.over(source, batch_size, desc="transfer images", mesh=mesh,
                           progress=progress, fields=("image", "label", "index", "mask", "seed")):
    acc.add_rows(step(run.variables, placed, key, extra=other_variables)[0])
  return int(acc.rows["hit"].sum()) / len(source)
