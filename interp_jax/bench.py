"""python -m interp_jax.bench attacks|all [--batch=128 --repeats=5]

Prints each figure beside a reference measured in the same run, and their
ratio. Nothing here is asserted: timings belong in notes, not in tests.

attacks: each attack's time against its gradient floor (k separate jitted
  input-gradient passes, k = the attack's gradient count) on small_cnn,
  batch 128, 32x32x3; with torch and torchattacks installed (`pip install
  'interp_jax[torch]'`), also torchattacks' time for the same architecture.
"""

import os
import statistics
import time

from absl import app, flags
import jax
import jax.numpy as jnp

from interp_jax import attacks, losses, models

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("size", 32, "Image height and width.")
flags.DEFINE_integer("repeats", 5, "Timed repetitions; the median is reported.")
flags.DEFINE_integer("steps", 10, "Steps of the iterative attacks.")

EPS = 8 / 255


def timed(fn, repeats: int) -> float:
  """Median wall time of fn() in ms, after one untimed call (compilation)."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def _setup(batch, size):
  model = models.create("small_cnn", num_classes=9)
  x = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
  y = jnp.arange(batch, dtype=jnp.int32) % 9
  variables = model.init(jax.random.key(1), x)
  return model, variables, x, y


def _attack_table(steps):
  """(name, gradient passes, call) for every attack, as the bench runs them."""
  key = jax.random.key(2)
  return [
      ("fgsm", 1, lambda m, v, x, y: attacks.fgsm(m.apply, v, x, y, eps=EPS)),
      ("bim", steps, lambda m, v, x, y: attacks.bim(m.apply, v, x, y, eps=EPS, steps=steps)),
      ("pgd", steps, lambda m, v, x, y: attacks.pgd(m.apply, v, x, y, key, eps=EPS,
                                                    steps=steps)),
      ("pgd_l2", steps, lambda m, v, x, y: attacks.pgd(m.apply, v, x, y, key, eps=0.5,
                                                       steps=steps, norm="l2")),
      ("least_likely", steps, lambda m, v, x, y: attacks.least_likely(m.apply, v, x, y,
                                                                      eps=EPS, steps=steps)),
      ("mi_fgsm", steps, lambda m, v, x, y: attacks.mi_fgsm(m.apply, v, x, y, eps=EPS,
                                                            steps=steps)),
  ]


def _torch_peer():
  try:
    import torch
    from interp_jax import torch_peer
  except ImportError:
    return None
  torch.set_num_threads(len(os.sched_getaffinity(0)))  # as many cores as XLA uses
  return torch_peer


def bench_attacks():
  model, variables, x, y = _setup(FLAGS.batch, FLAGS.size)
  grad = jax.jit(jax.grad(lambda z: losses.cross_entropy(model.apply(variables, z), y).sum()))
  one_grad = timed(lambda: grad(x), FLAGS.repeats)
  peer = _torch_peer()
  torch = peer.attack_times(variables, x, y, EPS, FLAGS.steps, FLAGS.repeats) if peer else None
  print(f"attacks on small_cnn {model.widths}, batch {FLAGS.batch}, "
        f"{FLAGS.size}x{FLAGS.size}x3, {jax.devices()[0].platform}; "
        f"one input-gradient pass: {one_grad:.1f} ms")
  if torch:
    print(f"torchattacks on the same network (weights copied; max logit difference "
          f"{peer.same_logits(model, variables, x):.1e})")
  header = f"{'attack':<14}{'grads':>6}{'ms':>10}{'floor ms':>10}{'ratio':>8}"
  if torch:
    header += f"{'torchattacks ms':>17}{'jax/torch':>11}"
  print(header)
  for name, passes, call in _attack_table(FLAGS.steps):
    ms = timed(lambda: call(model, variables, x, y), FLAGS.repeats)

    def floor(passes=passes):
      for _ in range(passes):
        out = grad(x)
      return out

    floor_ms = timed(floor, FLAGS.repeats)
    row = f"{name:<14}{passes:>6}{ms:>10.1f}{floor_ms:>10.1f}{ms / floor_ms:>7.2f}x"
    if torch and name in torch:
      row += f"{torch[name]:>17.1f}{ms / torch[name]:>10.2f}x"
    print(row, flush=True)
  if not torch:
    print("(torch/torchattacks not installed: pip install 'interp_jax[torch]' for the peer "
          "column)")


BENCHES = {"attacks": bench_attacks}


def main(argv):
  names = argv[1:] or ["all"]
  if names == ["all"]:
    names = list(BENCHES)
  unknown = [n for n in names if n not in BENCHES]
  if unknown:
    raise app.UsageError(f"unknown bench {unknown}; choose from {sorted(BENCHES)} or all")
  for name in names:
    BENCHES[name]()


if __name__ == "__main__":
  app.run(main)
