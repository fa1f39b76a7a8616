"""bench autoattack: AutoAttack (standard, L-inf) in JAX against torchattacks' stages.

    python -m interp_jax.bench autoattack --workdir=runs/demo/adv --aa_images=128

The same weights (a trained small_cnn run, or random ones with the labels
set to the model's own predictions) and the same images on both sides, each
stage at the published budget (100 steps, 9 targets, 5,000 queries), run on
the images every earlier stage left robust. Prints each side's robust
accuracy after each stage, and the time of the whole evaluation: the median
of --repeats interleaved pairs, and their ratio.
"""

import fractions
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from interp_jax import attacks, data, models
from interp_jax.bench.harness import paired, ratio_text, torch_peer

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "bench autoattack: a trained small_cnn run to attack "
                    "(its test split); default: random weights.")
flags.DEFINE_integer("aa_images", 128, "bench autoattack: images attacked.")
flags.DEFINE_string("aa_eps", "", "bench autoattack: L-inf eps (default: the run's "
                    "training eps, or 1/255 for random weights).")


def _subject():
  """(model, variables, x, y, eps, what) of the benchmark."""
  if FLAGS.workdir:
    from interp_jax.training.restore import load_trained
    run = load_trained(FLAGS.workdir)
    source = data.sample_by_content(data.open_split(run.config.dataset, "test"),
                                    FLAGS.aa_images)
    batch = data.to_model_input(source.get(np.arange(len(source))))
    eps = float(fractions.Fraction(FLAGS.aa_eps)) if FLAGS.aa_eps else run.config.adv.eps
    return (run.model, run.variables, batch["image"], batch["label"].astype(np.int32), eps,
            f"{FLAGS.workdir} (step {run.step})")
  model = models.create("small_cnn", num_classes=9)
  x = jax.random.uniform(jax.random.key(0), (FLAGS.aa_images, FLAGS.size, FLAGS.size, 3))
  variables = model.init(jax.random.key(1), x)
  y = np.asarray(jnp.argmax(model.apply(variables, x), -1), np.int32)
  eps = float(fractions.Fraction(FLAGS.aa_eps)) if FLAGS.aa_eps else 1 / 255
  return model, variables, np.asarray(x), y, eps, "random weights (labels: its predictions)"


def bench_autoattack():
  """`python -m interp_jax.bench autoattack` (the module docstring)."""
  model, variables, x, y, eps, what = _subject()
  if model.__class__.__name__ != "SmallCNN":
    raise SystemExit("bench autoattack compares small_cnn runs (the torch peer's architecture)")
  peer = torch_peer()
  theirs = peer.autoattack_stages(variables, x, y, eps, model.num_classes,
                                  tuple(model.widths), model.hidden) if peer else None
  accuracy, seconds = {}, {}

  def ours():
    result = attacks.autoattack(model.apply, variables, x, y, jax.random.key(0), eps=eps,
                                batch_size=len(x), progress=False)
    accuracy.update(result.accuracy_after)
    seconds.update(result.seconds)
    return result.accuracy

  print(f"AutoAttack standard, L-inf eps={eps:.4g}, {len(x)} images, {what}; "
        f"{jax.devices()[0].platform}")
  if theirs is None:
    start = time.perf_counter()
    ours()
    print(f"jax: {time.perf_counter() - start:.1f} s (torchattacks not installed: "
          "pip install 'interp_jax[torch]')")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
    return
  torch_accuracy, torch_seconds = {}, {}

  def peer():
    acc, sec = theirs()
    torch_accuracy.update(acc)
    torch_seconds.update(sec)
    return 0.0

  their_ms, our_ms, ratio, low, high = paired(peer, ours, FLAGS.repeats)
  nan = float("nan")
  print(f"{'after':<10}{'jax':>9}{'torchattacks':>14}{'jax s':>9}{'torch s':>9}  (last repeat)")
  for stage in accuracy:
    print(f"{stage:<10}{accuracy[stage]:>9.4f}{torch_accuracy.get(stage, nan):>14.4f}"
          f"{seconds.get(stage, nan):>9.1f}{torch_seconds.get(stage, nan):>9.1f}")
  print(f"time: jax {our_ms / 1e3:.1f} s, torchattacks {their_ms / 1e3:.1f} s, "
        f"jax/torch {ratio_text(ratio, low, high)} (median of {FLAGS.repeats} interleaved pairs)")
