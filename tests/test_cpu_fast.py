"""models.cpu_fast: a plain Flax CNN's jaxpr rewritten on CPU computes the same function,
with the same gradients, and without reduce_window or select-and-scatter."""

import chex
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import losses, models
from interp_jax.models import cpu_rewrite


class PlainCNN(nn.Module):
  """As a user writes one: 3x3 convs, nn.max_pool, flatten, dense."""
  pool_window: tuple = (2, 2)
  pool_strides: tuple = (2, 2)
  pool_padding: str = "VALID"
  first_stride: int = 1

  @nn.compact
  def __call__(self, x):
    x = (x - 0.5) / 0.25  # a normalisation: the first conv still sees the input
    for i, width in enumerate((4, 8)):
      x = nn.relu(nn.Conv(width, (3, 3), strides=self.first_stride if i == 0 else 1)(x))
      x = nn.max_pool(x, self.pool_window, self.pool_strides, self.pool_padding)
    x = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
    return nn.Dense(5)(x)


def _setup(module, size=12):
  x = jax.random.uniform(jax.random.key(0), (6, size, size, 3))  # continuous: no ties
  return module.init(jax.random.key(1), x[:1]), x, jnp.arange(6) % 5


def _loss(apply_fn, y):
  return lambda v, z: losses.cross_entropy(apply_fn(v, z), y).sum()


def _primitives(fn, *args) -> set:
  """Names of the primitives in fn's jaxpr, nested jaxprs included."""
  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      yield eqn.primitive.name
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from walk(sub)
  return set(walk(jax.make_jaxpr(fn)(*args).jaxpr))


def test_same_values_and_gradients():
  module = PlainCNN()
  variables, x, y = _setup(module)
  fast = models.cpu_fast(module.apply)
  np.testing.assert_allclose(jax.jit(fast)(variables, x), module.apply(variables, x),
                             rtol=1e-6, atol=1e-6)
  want = jax.grad(_loss(module.apply, y), argnums=(0, 1))(variables, x)
  got = jax.jit(jax.grad(_loss(fast, y), argnums=(0, 1)))(variables, x)
  assert float(jnp.abs(want[1]).max()) > 1e-3  # a gradient worth comparing
  chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


def test_the_rewrite_happens():
  module = PlainCNN()
  variables, x, y = _setup(module)
  grad = lambda f: jax.grad(_loss(f, y), argnums=(0, 1))
  jaxpr = jax.make_jaxpr(module.apply)(variables, x).jaxpr
  assert cpu_rewrite.count_rewrites(jaxpr, {jaxpr.invars[-1]}) == 3  # two pools, first conv
  before = _primitives(grad(module.apply), variables, x)
  after = _primitives(grad(models.cpu_fast(module.apply)), variables, x)
  assert {"reduce_window_max", "select_and_scatter_add"} <= before
  assert not {"reduce_window_max", "select_and_scatter_add"} & after
  assert "_tap_grad_conv" in str(jax.make_jaxpr(models.cpu_fast(module.apply))(variables, x))


def test_jitted_helpers_are_inlined():
  """A pool inside the user's own jax.jit is found and rewritten too."""
  pool = jax.jit(lambda z: nn.max_pool(z, (2, 2), (2, 2)))
  fn = lambda v, z: pool(z * v)
  x = jax.random.uniform(jax.random.key(0), (2, 6, 6, 3))
  fast = models.cpu_fast(fn)
  np.testing.assert_array_equal(fast(2.0, x), fn(2.0, x))
  assert "reduce_window_max" not in _primitives(fast, 2.0, x)


@pytest.mark.parametrize("window", [(1, 2, 2, 1), (1, 3, 3, 1), (2, 1, 3, 2)])
@pytest.mark.parametrize("reduce, op", [(jnp.max, lax.max), (jnp.min, lax.min)])
def test_window_pool_is_reduce_window(window, reduce, op):
  """Exact values, incomplete windows dropped as VALID drops them (7 = 2 * 3 + 1)."""
  x = jax.random.normal(jax.random.key(0), (4, 7, 7, 6))
  init = -jnp.inf if op is lax.max else jnp.inf
  want = lax.reduce_window(x, init, op, window, window, "VALID")
  np.testing.assert_array_equal(cpu_rewrite.window_pool(x, window, reduce), want)


@pytest.mark.parametrize("module", [
    PlainCNN(pool_window=(3, 3), pool_strides=(1, 1), pool_padding="SAME", first_stride=2),
    PlainCNN(pool_window=(3, 3), pool_strides=(2, 2), first_stride=2),
], ids=["stride1_padded", "overlapping"])
def test_what_it_cannot_rewrite_runs_unchanged(module):
  """A strided first conv and pooling windows other than their stride: nothing to rewrite."""
  variables, x, y = _setup(module, size=16)
  fast = models.cpu_fast(module.apply)
  assert str(jax.make_jaxpr(fast)(variables, x)) == str(jax.make_jaxpr(module.apply)(variables, x))
  np.testing.assert_array_equal(fast(variables, x), module.apply(variables, x))
  want = jax.grad(_loss(module.apply, y), argnums=(0, 1))(variables, x)
  got = jax.grad(_loss(fast, y), argnums=(0, 1))(variables, x)
  chex.assert_trees_all_equal(got, want)


def test_other_backends_untouched(monkeypatch):
  module = PlainCNN()
  variables, x, _ = _setup(module)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  fast = models.cpu_fast(module.apply)
  assert str(jax.make_jaxpr(fast)(variables, x)) == str(jax.make_jaxpr(module.apply)(variables, x))
  adapted = models.adapt(module, variables, x[:1], layers=("Dense_0",))
  assert "reduce_window_max" in _primitives(adapted.apply, variables, x)


def test_adapt_rewrites_unless_told_not_to():
  module = PlainCNN()
  variables, x, y = _setup(module)
  fast = models.adapt(module, variables, x[:1], layers=("Dense_0",))
  plain = models.adapt(module, variables, x[:1], layers=("Dense_0",), cpu_fast=False)
  grad = lambda m: jax.grad(_loss(m.apply, y), argnums=1)
  assert "select_and_scatter_add" not in _primitives(grad(fast), variables, x)
  assert "select_and_scatter_add" in _primitives(grad(plain), variables, x)
  np.testing.assert_allclose(grad(fast)(variables, x), grad(plain)(variables, x),
                             rtol=1e-5, atol=1e-6)
  # The features path (mutable intermediates) is rewritten and agrees as well.
  (logits, feats), (logits0, feats0) = (models.apply_with_features(m, variables, x)
                                        for m in (fast, plain))
  np.testing.assert_allclose(logits, logits0, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(feats["Dense_0"], feats0["Dense_0"], rtol=1e-6, atol=1e-6)


def test_a_failed_rewrite_falls_back_with_a_warning(monkeypatch):
  module = PlainCNN()
  variables, x, _ = _setup(module)

  def broken(*args):
    raise NotImplementedError("a primitive this version of cpu_fast does not know")

  monkeypatch.setattr(cpu_rewrite, "_eval", broken)
  with pytest.warns(UserWarning, match="unchanged"):
    out = models.cpu_fast(module.apply)(variables, x)
  np.testing.assert_array_equal(out, module.apply(variables, x))
