"""One call analyses a network this library did not train: your Flax module, in memory.

    from interp_jax import analysis, models, report
    model = models.adapt(MyNet(), variables, images[:1])      # features it sows
    results, grids = analysis.analyze_model(model, variables, images, labels,
                                            class_names=("cat", "dog", "car"), eps=8/255)
    report.save_analysis(results, grids, "runs/mynet/analysis")   # results.json + page

Everything `python -m interp_jax.analyze` measures (consistency on real,
adversarial, mixed, successful and by-prediction sets, each beside its
chance level; top-k overlap, feature cosine, the eps curve) comes back in
the same results.json schema. `class_tree` (nested {group: [class, ...]})
gives the hierarchy similarity; without it, classes are compared by
identity (class purity). An imported PyTorch run needs no call of its own:
`load_trained(workdir)` then `analyze(run, cfg)`.
"""

import jax
import numpy as np

from interp_jax import data
from interp_jax.default_config import base_config
from interp_jax.analysis.model_analysis import analyze
from interp_jax.analysis.settings import default_config
from interp_jax.training.restore import TrainedRun


def analyze_model(model, variables, images, labels, class_names, *, eps: float,
                  cfg=None, class_tree=None, progress: bool = True):
  """(results, grids) of `model` (a zoo model or models.adapt(...)) on these images.

  Args:
    images: uint8 [N, H, W, C] or floats in [0, 1]; labels: ints [N].
    eps: the analysis attack's budget, in [0, 1] pixels.
    cfg: analysis settings (analysis.default_config() and its fields); its
      `layers` default to every feature of the model, the eps curve to its last.
  """
  source = data.ArraySource(images, labels)
  cfg = default_config() if cfg is None else cfg
  if not len(source):
    raise ValueError("no images to analyse")
  labels = source.get(np.arange(len(source)))["label"]
  if labels.max() >= len(class_names):
    raise ValueError(f"label {labels.max()} has no class: {len(class_names)} class names given")
  width = jax.eval_shape(model.apply, variables, source.get([0])["image"] / 255.0).shape[-1]
  if width != len(class_names):
    raise ValueError(f"the model has {width} logits and {len(class_names)} class names")
  names = tuple(model.layer_names)
  meta = data.Meta(name="arrays", class_names=tuple(class_names),
                   image_shape=tuple(source.get([0])["image"].shape[1:]),
                   splits={cfg.split: len(source)}, class_tree=class_tree)
  config = base_config()
  config.model.name = type(getattr(model, "module", model)).__name__
  config.dataset.name = "arrays"
  config.adv.eps = float(eps)
  config.consistency.layers = ([n for n in names if n != "logits"] or list(names))[-1:]
  run = TrainedRun(workdir="(in memory)", config=config, meta=meta, model=model,
                   variables=variables, step=0)
  results, grids = analyze(run, cfg, source=source, progress=progress)
  return results, grids
