"""bench attacks: each attack against its gradient floor and against torchattacks.

On small_cnn (the zoo's fast paths), then on PlainCNN, a Flax CNN as a user writes one,
through models.adapt with and without models.cpu_fast's rewrite (benchmarks.py's
docstring says what each column is).
"""

from typing import Sequence

from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp

from interp_jax import attacks, losses, models
from interp_jax.bench.harness import (EPS, paired, ratio_text, small_cnn_inputs, timed,
                                      torch_peer)
from interp_jax.models import common

FLAGS = flags.FLAGS


class PlainCNN(nn.Module):
  """A CNN as a user writes one in Flax: conv3x3-ReLU-nn.max_pool blocks, flatten, dense-ReLU,
  dense. None of the zoo's fast paths (max_pool_2x2, input_conv)."""
  widths: Sequence[int] = (32, 64, 128)
  hidden: int = 256
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    for width in self.widths:
      x = nn.max_pool(nn.relu(nn.Conv(width, (3, 3))(x)), (2, 2), strides=(2, 2))
    x = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(x)


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


def bench_attacks():
  """Each attack against its gradient floor (as many input-gradient passes as it takes)
  and against torchattacks on the same network, each ratio from interleaved pairs."""
  model, variables, x, y = small_cnn_inputs(FLAGS.batch, FLAGS.size)
  grad = jax.jit(jax.grad(lambda z: losses.cross_entropy(model.apply(variables, z), y).sum()))
  one_grad = timed(lambda: grad(x), FLAGS.repeats)
  peer = torch_peer()
  torch = peer.attack_calls(variables, x, y, EPS, FLAGS.steps) if peer else {}
  print(f"attacks on small_cnn {model.widths}, batch {FLAGS.batch}, "
        f"{FLAGS.size}x{FLAGS.size}x3, {jax.devices()[0].platform}; "
        f"one input-gradient pass: {one_grad:.1f} ms; ratios: median of {FLAGS.repeats} "
        f"interleaved pairs [quartiles]")
  if torch:
    print(f"torchattacks on the same network (weights copied; max logit difference "
          f"{peer.same_logits(model, variables, x):.1e})")
  header = f"{'attack':<14}{'grads':>6}{'ms':>9}{'floor ms':>10}{'ratio':>21}"
  if torch:
    header += f"{'torchattacks ms':>17}{'jax/torch':>21}"
  print(header)
  for name, passes, call in _attack_table(FLAGS.steps):
    attack = lambda call=call: call(model, variables, x, y)

    def floor(passes=passes):
      for _ in range(passes):
        out = grad(x)
      return out

    floor_ms, ms, ratio, low, high = paired(floor, attack, FLAGS.repeats)
    row = f"{name:<14}{passes:>6}{ms:>9.1f}{floor_ms:>10.1f}{ratio_text(ratio, low, high):>21}"
    if name in torch:
      theirs, _, versus, low, high = paired(torch[name], attack, FLAGS.repeats)
      row += f"{theirs:>17.1f}{ratio_text(versus, low, high):>21}"
    print(row, flush=True)
  if not torch:
    print("(torch/torchattacks not installed: pip install 'interp_jax[torch]' for the peer "
          "column)")
  _bench_plain_attacks(peer)


def _bench_plain_attacks(peer):
  """The attacks on a user's PlainCNN through models.adapt, with models.cpu_fast's rewrite
  (the default) and without, each against torchattacks on the same weights."""
  module = PlainCNN()
  x = jax.random.uniform(jax.random.key(0), (FLAGS.batch, FLAGS.size, FLAGS.size, 3))
  y = jnp.arange(FLAGS.batch, dtype=jnp.int32) % module.num_classes
  variables = module.init(jax.random.key(1), x)
  fast = models.adapt(module, variables, x[:1], layers=("Dense_0",))
  plain = models.adapt(module, variables, x[:1], layers=("Dense_0",), cpu_fast=False)
  grads = [jax.jit(jax.grad(lambda z, m=m: losses.cross_entropy(m.apply(variables, z), y).sum()))
           for m in (fast, plain)]
  one_fast, one_plain = (timed(lambda g=g: g(x), FLAGS.repeats) for g in grads)
  net = peer and peer.plain_from_flax(variables, module.widths, module.hidden,
                                      module.num_classes, FLAGS.size)
  torch = peer.attack_calls(variables, x, y, EPS, FLAGS.steps, net=net) if peer else {}
  print(f"\nattacks on PlainCNN {tuple(module.widths)} (nn.max_pool, through models.adapt), "
        f"batch {FLAGS.batch}; one input-gradient pass: {one_fast:.1f} ms with "
        f"models.cpu_fast's rewrite, {one_plain:.1f} ms without "
        f"({'on' if common.fast_input_grad() else 'off: not CPU'})")
  if torch:
    print(f"torchattacks on the same network (weights copied; max logit difference "
          f"{peer.same_logits(plain, variables, x, net=net):.1e})")
  header = f"{'attack':<14}{'ms':>9}{'no-rewrite ms':>15}"
  if torch:
    header += f"{'torchattacks ms':>17}{'jax/torch':>21}{'no-rewrite/torch':>21}"
  print(header)
  for name, _, call in _attack_table(FLAGS.steps):
    with_rewrite = lambda call=call: call(fast, variables, x, y)
    without = lambda call=call: call(plain, variables, x, y)
    if name in torch:
      theirs, ms, versus, low, high = paired(torch[name], with_rewrite, FLAGS.repeats)
      _, slow_ms, slow_versus, slow_low, slow_high = paired(torch[name], without, FLAGS.repeats)
      print(f"{name:<14}{ms:>9.1f}{slow_ms:>15.1f}{theirs:>17.1f}{ratio_text(versus, low, high):>21}"
            f"{ratio_text(slow_versus, slow_low, slow_high):>21}", flush=True)
    else:
      slow_ms, ms, ratio, low, high = paired(without, with_rewrite, FLAGS.repeats)
      print(f"{name:<14}{ms:>9.1f}{slow_ms:>15.1f}  (rewrite / none {ratio_text(ratio, low, high)})",
            flush=True)
