"""Whether a workdir's run is the run a config asks for: reuse, or refuse before compute.

    check_reusable(config, "runs/demo/adv")   # raises UserError on a mismatch

A reproduction or a selection reuses every run it finds finished; a run
trained under other settings would report numbers of a model the config does
not describe, and retraining would destroy it, so the user chooses.
"""

import json
import os

from flax import traverse_util

from interp_jax.default_config import EVALUATION_SECTIONS
from interp_jax.records import as_saved

# Config fields that change nothing a run learns: a run saved under other
# values of these is still the run the config asks for.
_BOOKKEEPING = ("log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                "keep_checkpoints", "eval_batch_size", "adv.eval_images", "eval_split",
                "selection.") + tuple(f"{name}." for name in EVALUATION_SECTIONS)
# ... and the fields a variant's objective does not read (prefixes).
_UNUSED = {"standard": ("adv.", "loss.adv_weight", "consistency."),
           "adv": ("consistency.",), "adv_consistent": ()}


def check_reusable(config, workdir: str) -> None:
  """Raises UserError when workdir holds a run trained under other settings."""
  from interp_jax.training.checkpointing import Checkpoints
  from interp_jax.errors import UserError
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return
  ckpt = Checkpoints(directory, async_save=False)
  try:
    saved = ckpt.saved_config()
  finally:
    ckpt.close()
  if saved is None:
    return
  from interp_jax.default_config import base_config
  have, want, default = (traverse_util.flatten_dict(t, sep=".") for t in (
      saved, json.loads(config.to_json()), json.loads(base_config().to_json())))
  # A field added to the config after the run was saved, asked at its default,
  # is the behaviour the run was trained with (defaults keep the old behaviour).
  have.update({k: default[k] for k in want.keys() - have.keys() if k in default})
  ignored = _BOOKKEEPING + _UNUSED.get(config.variant, ())
  differ = [k for k in sorted(have.keys() | want.keys())
            if not k.startswith(ignored) and have.get(k) != want.get(k)]
  if differ:
    shown = "; ".join(f"{k} = {have.get(k)!r} there, {want.get(k)!r} asked" for k in differ[:3])
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    raise UserError(f"{workdir} holds a run trained with other settings ({shown}{more}); "
                    "use another --workdir, or delete that run to train it again")


def same_request(saved, requested: dict) -> bool:
  """Whether a saved analysis was asked with these settings; a setting added to the
  analysis after it was saved counts as asked at its default (defaults keep the old
  behaviour)."""
  if saved is None:
    return False
  from interp_jax.analysis import default_config
  default = as_saved(default_config().to_dict())
  return {**{k: v for k, v in default.items() if k not in saved}, **saved} == requested
