"""The evaluation that decides the robust-gain criterion under protocol 2, as declared.

    out = evaluate(run, analysis_cfg, criteria)   # DIR/robust_eval.json, reused when the same
    out.accuracy                                   # robust accuracy on the seed's images
    describe(criteria).text                        # "AutoAttack (standard) on 1000 images ..."

criteria.robust_attack: "autoattack" (each image's worst case over the stages
of criteria.robust_version, analysis.robustness.evaluate_autoattack) or "pgd20"
(PGD, 20 steps of 2.5 eps / 20 from a random start); at the analysis eps and
norm, on criteria.robust_images images of the run's test share chosen by content
(data.sample_by_content; 0 = the whole share), each image's keys from its pixels.
"""

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np

from interp_jax.records import Record, as_saved, record
from interp_jax.reproduction.summary import RobustEvaluation

FILE = "robust_eval.json"


@record
class RobustEval(Record):
  """DIR/robust_eval.json: the declared evaluation of one run, and what was asked of it."""
  requested: dict[str, Any]          # the declaration, eps, norm, seed and images: the
  checkpoint_step: int               # file is reused while both are the run's
  text: str                          # the declaration in words
  accuracy: float                    # robust: each image's worst case
  clean_accuracy: float
  num_images: int
  detail: dict[str, Any]             # the AutoAttackReport's (or, for PGD, the
                                     # RobustnessReport's) JSON


def describe(criteria) -> RobustEvaluation:
  """The declared evaluation (a RobustEvaluation), with a phrase naming it for the page
  and the evidence."""
  attack, steps = criteria.robust_attack, int(criteria.robust_steps)
  stages = list(criteria.robust_stages)
  if attack == "autoattack":
    name = f"AutoAttack ({criteria.robust_version}" + (
        f", stages {', '.join(stages)}" if stages else "") + (
        f", {steps} steps" if steps else "") + ")"
  else:
    name = f"PGD-{steps or 20}"
  images = int(criteria.robust_images)
  where = f"{images} images of each seed's test share" if images else "each seed's test share"
  return RobustEvaluation(attack, criteria.robust_version if attack == "autoattack" else None,
                          tuple(stages), steps, images, f"{name} on {where}")


def images_digest(source) -> str:
  """A fingerprint of a set of images that ignores their order: the sorted content digests."""
  from interp_jax import data
  digests = data.content_digests(source.get(np.arange(len(source)))["image"])
  return hashlib.sha256(np.sort(digests).tobytes()).hexdigest()[:16]


def images(run, analysis_cfg, criteria):
  """The images the evaluation attacks: the run's test share, or robust_images of it."""
  from interp_jax import data
  from interp_jax.analysis import evaluation_source
  source = evaluation_source(run, analysis_cfg)
  if criteria.robust_images:
    source = data.sample_by_content(source, int(criteria.robust_images))
  return source


def evaluate(run, analysis_cfg, criteria, progress: bool = True) -> RobustEval:
  """The declared evaluation of one run (see the module docstring); cached in its workdir."""
  from interp_jax import attacks
  from interp_jax.analysis import resolved_eps
  from interp_jax.analysis.robustness import evaluate_autoattack, evaluate_robustness
  source = images(run, analysis_cfg, criteria)
  eps = resolved_eps(analysis_cfg, run.config)
  declared = describe(criteria)
  requested = as_saved({
      **{k: v for k, v in declared.to_json().items() if k not in ("text", "variants")},
      "eps": eps, "norm": analysis_cfg.norm, "seed": analysis_cfg.seed,
      "images_digest": images_digest(source), "num_images": len(source)})
  path = os.path.join(run.workdir, FILE)
  saved = RobustEval.saved(path)
  if saved is not None and saved.requested == requested and saved.checkpoint_step == run.step:
    return saved
  key = jax.random.key(analysis_cfg.seed)
  if criteria.robust_attack == "autoattack":
    overrides = {"steps": declared.steps} if declared.steps else {}
    detail = evaluate_autoattack(run, source, eps, analysis_cfg.norm,
                                 version=criteria.robust_version,
                                 stages=declared.stages or None,
                                 batch_size=analysis_cfg.batch_size, key=key,
                                 progress=progress, **overrides)
    accuracy, clean = detail.accuracy, detail.accuracy_after["clean"]
  else:
    steps = declared.steps or 20
    spec = attacks.AttackSpec("pgd", eps, analysis_cfg.norm, steps, 2.5 * eps / steps)
    detail = evaluate_robustness(run, [spec], source, analysis_cfg.batch_size, key,
                                 progress=progress)
    accuracy, clean = detail.attacks["pgd"].accuracy, detail.clean_accuracy
  out = RobustEval(requested, run.step, declared.text, accuracy, clean, len(source),
                   json.loads(json.dumps(detail.to_json(), default=str)))
  if jax.process_index() == 0:
    with open(path, "w") as f:
      json.dump(out.to_json(), f, indent=2)
  return out
