"""Your own Flax module, analysed and attacked like the models of the zoo.

    model = models.adapt(MyNet(), variables, images[:1])             # what it sows
    model = models.adapt(MyNet(), variables, images[:1], layers=("Dense_0",))
    logits, feats = models.apply_with_features(model, variables, images)

The house contract is small: `model.apply(variables, x)` gives logits for
images in [0, 1], `model.layer_names` names the features, and
`apply_with_features` returns them. `adapt` fits any `flax.linen` module to
it: the features are what the module sows into "intermediates"
(`self.sow("intermediates", "fc", x)`; nested modules' names are joined by
"/"), or the outputs of the submodules named in `layers`, captured with
Flax's `capture_intermediates`, so a module needs no change at all. A
module whose `__call__` takes `train` gets `train=False`. Normalise inside
the module, or wrap it with `Normalized`, so eps means pixels.

On XLA's CPU backend `apply` runs the module through `cpu_fast` (same values;
max pooling and the first conv get cheaper input gradients, see cpu_rewrite.py);
`adapt(..., cpu_fast=False)` runs it as written.
"""

import dataclasses
import functools
import inspect
from typing import Sequence

import flax.linen as nn
import jax

from interp_jax.models.common import features
from interp_jax.models.cpu_rewrite import cpu_fast as _cpu_fast


@dataclasses.dataclass(frozen=True)
class OwnModel:
  """A user's module under the house contract (see the module docstring)."""
  module: nn.Module
  layer_names: tuple[str, ...]
  captured: tuple[str, ...] = ()      # submodule paths whose outputs are captured
  takes_train: bool = False
  cpu_fast: bool = True               # apply through models.cpu_fast (on CPU only)

  def _capture(self, mdl, method_name):
    return method_name == "__call__" and "/".join(mdl.path) in self.captured

  def apply(self, variables, x, train: bool = False, mutable=False, **kwargs):
    """module.apply; with mutable=["intermediates"], the features as {name: array}."""
    run = functools.partial(self._apply, train=train, mutable=mutable, **kwargs)
    return (_cpu_fast(run) if self.cpu_fast else run)(variables, x)

  def _apply(self, variables, x, train, mutable, **kwargs):
    if self.takes_train:
      kwargs["train"] = train
    if not mutable or "intermediates" not in mutable:
      return self.module.apply(variables, x, **kwargs)
    out, state = self.module.apply(variables, x, mutable=["intermediates"],
                                   capture_intermediates=self._capture if self.captured
                                   else False, **kwargs)
    return out, {"intermediates": features(state.get("intermediates", {}))}

  def init(self, key, x, train: bool = False):
    return self.module.init(key, x, **({"train": train} if self.takes_train else {}))


def adapt(module: nn.Module, variables, example, layers: Sequence[str] | None = None,
          cpu_fast: bool = True) -> OwnModel:
  """Fits `module` (with its `variables`) to the house contract; see the docstring.

  Args:
    example: a batch of images the module accepts (only its shape is used).
    layers: submodule paths ("Dense_0", "block1/conv") whose outputs are the
      features; by default, what the module sows into "intermediates".
    cpu_fast: on XLA's CPU backend, apply the module through models.cpu_fast
      (same values, cheaper input gradients); False: exactly as written.
  Raises:
    ValueError: when the module sows nothing and `layers` is empty, or a
      named layer is not a submodule.
  """
  takes_train = "train" in inspect.signature(module.__call__).parameters
  probe = OwnModel(module, (), tuple(layers or ()), takes_train, cpu_fast=False)
  _, state = jax.eval_shape(lambda v, x: probe.apply(v, x, mutable=["intermediates"]),
                            variables, example)
  found = tuple(state["intermediates"])
  if layers:
    missing = [l for l in layers if l not in found]
    if missing:
      raise ValueError(f"{type(module).__name__} has no submodule {missing}; its "
                       f"submodules' paths are like 'Dense_0' or 'block1/conv'")
    names = tuple(layers)
  else:
    names = found
  if not names:
    raise ValueError(f"{type(module).__name__} records no features: sow them "
                     "(self.sow('intermediates', 'fc', x)) or name submodules in `layers`")
  return OwnModel(module, names, tuple(layers or ()), takes_train, cpu_fast)
