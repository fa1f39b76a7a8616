"""PyTorch weights -> Flax variables of the registry's models.

    arch = ARCHS["resnet50"]                      # registry name + options (torchvision's)
    model = models.create(arch.model, 1000, **arch.options)
    template = jax.eval_shape(model.init, key, jnp.zeros((1, 224, 224, 3)))
    variables = to_variables("resnet50", template, read_state_dict("resnet50.pth"))

Every Flax leaf names its PyTorch tensor (`torch_name`), and the check is
strict both ways: a tensor of the file with no place in the model, a model
variable the file lacks, or a shape mismatch is a `UserError` naming the
tensor. Layouts: conv kernels OIHW -> HWIO, dense [out, in] -> [in, out]; the
first dense layer after flattening a conv map also reorders its input rows
from PyTorch's (C, H, W) flattening to Flax's (H, W, C). BatchNorm's weight,
bias, running_mean and running_var become scale, bias (params) and mean, var
(batch_stats); `num_batches_tracked` is ignored.

Architectures (`ARCHS`): torchvision's alexnet, vgg11, vgg11_bn, vgg16,
vgg16_bn, resnet18, resnet34, resnet50, and the CIFAR ResNets resnet20-56 in
the layout of the widely shared PyTorch code (akamaster/pytorch_resnet_cifar10);
RobustBench's CIFAR-10 models: preact_resnet18 (Wong et al. 2020), wrn28_10,
wrn34_10, wrn34_20 (Madry / TRADES layout), dm_wrn28_10, dm_wrn34_20,
dm_wrn70_16, dm_wrn106_16 (DeepMind's layout), and wrnD_W / dm_wrnD_W for a
WideResNet of any other depth D = 6n + 4 and width W; the robustness library's
robustness_resnet50 (ImageNet, torchvision's layout) and
robustness_cifar_resnet50 (CIFAR).

Files from elsewhere hold more than the network: the robustness library saves
`model.`-prefixed weights beside a copy under `attacker.` and its input
normaliser (`normalizer.new_mean/new_std`), TRADES-style WRNs an unused
`sub_block1`, RobustBench models `mu`/`sigma`. An `Arch` names the prefix and
the unused tensors; `file_statistics` reads a stored normalisation and
`options` the layout choices a file decides (a final BatchNorm or not).
"""

import dataclasses
import math
import re

import jax
import numpy as np

from interp_jax.errors import UserError
from interp_jax.models import alexnet, vgg

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
ROBUSTNESS_CIFAR10_STD = (0.2023, 0.1994, 0.2010)  # the robustness library's CIFAR std
# (mean, std) tensors a file may store beside the weights
STATISTICS = (("normalizer.new_mean", "normalizer.new_std"), ("mu", "sigma"))


@dataclasses.dataclass(frozen=True)
class Arch:
  model: str              # the registry name
  options: dict           # the model's fields for this layout
  family: str             # which naming function maps its layers
  mean: tuple = IMAGENET_MEAN     # the input statistics the weights expect, unless the
  std: tuple = IMAGENET_STD       # file stores its own (STATISTICS)
  prefix: str = ""                # before each network tensor's name in the file, if there
  ignore: tuple = ()              # name prefixes of tensors the forward pass never reads
  detect: tuple = ()              # (option, tensor): the option is on iff the file has it


def _wrn(depth: int, width: int) -> Arch:
  """A WideResNet in the Madry / TRADES layout (RobustBench's WideResNet)."""
  return Arch("wide_resnet", {"depth": depth, "width": width}, "wrn", (0.0,), (1.0,),
              ignore=("sub_block1.",))


def _dm_wrn(depth: int, width: int) -> Arch:
  """A WideResNet in DeepMind's layout (Gowal et al. 2020, Rebuffi et al. 2021): Swish."""
  return Arch("wide_resnet", {"depth": depth, "width": width, "activation": "swish",
                              "same_padding": True}, "dm_wrn", CIFAR10_MEAN, CIFAR10_STD)


class _Registry(dict):
  """The named architectures, and wrn{D}_{W} / dm_wrn{D}_{W} for a WideResNet of any depth
  D (10, 16, 22, ...: 6n + 4) and width W in either layout."""
  _WRN = re.compile(r"(dm_)?wrn(\d+)_(\d+)$")

  def _made(self, name):
    match = self._WRN.match(name) if isinstance(name, str) else None
    if match is None:
      return None
    depth, width = int(match[2]), int(match[3])
    if depth < 10 or (depth - 4) % 6 or width < 1:
      return None
    return (_dm_wrn if match[1] else _wrn)(depth, width)

  def __missing__(self, name):
    made = self._made(name)
    if made is None:
      raise KeyError(name)
    return made

  def __contains__(self, name):
    return dict.__contains__(self, name) or self._made(name) is not None

  def names(self) -> str:
    return ", ".join(sorted(self)) + ", or wrnD_W / dm_wrnD_W (any depth 6n+4 and width)"


_TV_VGG = {"conv_bias": True, "hidden": 4096, "pool_size": 7}
ARCHS = _Registry({
    "alexnet": Arch("alexnet", {}, "alexnet"),
    "vgg11": Arch("vgg11", {**_TV_VGG, "batch_norm": False}, "vgg"),
    "vgg11_bn": Arch("vgg11", {**_TV_VGG, "batch_norm": True}, "vgg"),
    "vgg16": Arch("vgg16", {**_TV_VGG, "batch_norm": False}, "vgg"),
    "vgg16_bn": Arch("vgg16", {**_TV_VGG, "batch_norm": True}, "vgg"),
    "resnet18": Arch("resnet18", {"stem": "imagenet"}, "resnet"),
    "resnet34": Arch("resnet34", {"stem": "imagenet"}, "resnet"),
    "resnet50": Arch("resnet50", {"stem": "imagenet"}, "resnet"),
    **{f"resnet{d}": Arch(f"resnet{d}", {}, "cifar_resnet") for d in (20, 32, 44, 56)},
    "preact_resnet18": Arch("preact_resnet18", {}, "preact", CIFAR10_MEAN, CIFAR10_STD,
                            detect=(("final_bn", "bn.weight"),)),
    "robustness_resnet50": Arch("resnet50", {"stem": "imagenet"}, "resnet", prefix="model.",
                                ignore=("attacker.",)),
    "robustness_cifar_resnet50": Arch("resnet50", {}, "kuangliu", CIFAR10_MEAN,
                                      ROBUSTNESS_CIFAR10_STD, "model.", ("attacker.",)),
    # RobustBench's published sizes, named (any other: wrnD_W, dm_wrnD_W)
    **{f"wrn{d}_{w}": _wrn(d, w) for d, w in ((28, 10), (34, 10), (34, 20))},
    **{f"dm_wrn{d}_{w}": _dm_wrn(d, w) for d, w in ((28, 10), (34, 20), (70, 16), (106, 16))},
})

_ALEXNET_FEATURES = (0, 3, 6, 8, 10)  # torchvision's indices of the five convs


def _vgg_features(depth: int, batch_norm: bool) -> dict[str, int]:
  """{"conv1_1": 0, "bn1_1": 1, ...}: torchvision's `features` index of each layer."""
  index, out = 0, {}
  for i, convs in enumerate(vgg.DEPTHS[depth]):
    for j in range(convs):
      out[f"conv{i + 1}_{j + 1}"] = index
      if batch_norm:
        out[f"bn{i + 1}_{j + 1}"] = index + 1
      index += 3 if batch_norm else 2  # conv, [bn,] relu
    index += 1  # the max-pool
  return out


# family -> (top-level Flax -> PyTorch names, block "layerI_J" -> PyTorch prefix, in-block renames)
_STEM = {"stem_conv": "conv1", "stem_bn": "bn1"}
_RESIDUAL = {
    "resnet": ({**_STEM, "head": "fc"}, "layer{i}.{j}",
               {"proj": "downsample.0", "bn_proj": "downsample.1"}),
    "cifar_resnet": ({**_STEM, "head": "linear"}, "layer{i}.{j}", {}),
    # kuangliu/pytorch-cifar's ResNet: RobustBench resnet.py, robustness cifar_models
    "kuangliu": ({**_STEM, "head": "linear"}, "layer{i}.{j}",
                 {"proj": "shortcut.0", "bn_proj": "shortcut.1"}),
    "preact": ({"stem_conv": "conv1", "final_bn": "bn", "head": "linear"}, "layer{i}.{j}",
               {"proj": "shortcut.0"}),
    "wrn": ({"stem_conv": "conv1", "final_bn": "bn1", "head": "fc"}, "block{i}.layer.{j}",
            {"proj": "convShortcut"}),
    "dm_wrn": ({"stem_conv": "init_conv", "final_bn": "batchnorm", "head": "logits"},
               "layer.{i0}.block.{j}", {"bn1": "batchnorm_0", "conv1": "conv_0",
                                        "bn2": "batchnorm_1", "conv2": "conv_1",
                                        "proj": "shortcut"}),
}


def _module_name(spec: Arch, path: tuple[str, ...]) -> str | None:
  """The PyTorch module name of the Flax module at `path`, or None if it has none."""
  family = spec.family
  dense = {"dense1": "classifier.0", "dense2": "classifier.3", "head": "classifier.6"}
  if family == "alexnet":
    dense.update(dense1="classifier.1", dense2="classifier.4")
    m = re.fullmatch(r"Conv_(\d)", path[0])
    return f"features.{_ALEXNET_FEATURES[int(m.group(1))]}" if m else dense.get(path[0])
  if family == "vgg":
    features = _vgg_features(int(spec.model[len("vgg"):]), spec.options["batch_norm"])
    return f"features.{features[path[0]]}" if path[0] in features else dense.get(path[0])
  top, block, inner = _RESIDUAL[family]
  if len(path) == 1:
    return top.get(path[0])
  m = re.fullmatch(r"layer(\d+)_(\d+)", path[0])
  if not m:
    return None
  i, j = int(m.group(1)), int(m.group(2))
  return block.format(i=i, i0=i - 1, j=j) + "." + inner.get(path[1], path[1])


_LEAF = {("params", "kernel"): "weight", ("params", "bias"): "bias",
         ("params", "scale"): "weight", ("batch_stats", "mean"): "running_mean",
         ("batch_stats", "var"): "running_var"}


def _flattened_channels(spec: Arch) -> int | None:
  """Channels of the conv map flattened into dense1 (None: no such dense layer)."""
  if spec.family == "alexnet":
    return alexnet.CONVS[-1][0]
  if spec.family == "vgg":
    return tuple(spec.options.get("widths", vgg.WIDTHS))[-1]
  return None


def torch_layout(flax_shape: tuple[int, ...], chw: tuple | None = None):
  """(PyTorch shape, numpy array -> Flax array) for a leaf of Flax shape `flax_shape`."""
  if len(flax_shape) == 4:  # conv HWIO <- OIHW
    h, w, i, o = flax_shape
    return (o, i, h, w), lambda a: a.transpose(2, 3, 1, 0)
  if len(flax_shape) == 2:  # dense [in, out] <- [out, in]
    n_in, n_out = flax_shape
    if chw is None:
      return (n_out, n_in), lambda a: a.T
    return (n_out, n_in), lambda a: a.reshape(n_out, *chw).transpose(0, 2, 3, 1).reshape(
        n_out, n_in).T
  return tuple(flax_shape), lambda a: a


def leaf_names(arch: str, template) -> dict[tuple, tuple[str, tuple, object]]:
  """{(collection, *flax path): (torch key, torch shape, converter)} for every leaf."""
  spec = ARCHS[arch]
  channels = _flattened_channels(spec)
  out = {}
  for keys, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
    path = tuple(k.key for k in keys)
    collection, module_path, leaf_name = path[0], path[1:-1], path[-1]
    module = _module_name(spec, module_path)
    kind = _LEAF.get((collection, leaf_name))
    if module is None or kind is None:
      raise ValueError(f"{arch}: no PyTorch name for the Flax variable {'/'.join(path)}")
    chw = None
    if module_path == ("dense1",) and leaf_name == "kernel" and channels:
      side = math.isqrt(leaf.shape[0] // channels)
      chw = (channels, side, side)
    out[path] = (f"{module}.{kind}", *torch_layout(leaf.shape, chw))
  return out


def file_statistics(state: dict) -> tuple[tuple, tuple] | None:
  """(mean, std) the file stores for its input (a robustness normaliser, RobustBench's
  mu/sigma), as per-channel float tuples, or None when it stores none."""
  def values(array):  # float32's shortest decimals: 0.4914, not 0.49140000343322754
    return tuple(float(str(np.float32(v))) for v in np.ravel(array))

  for mean, std in STATISTICS:
    if mean in state and std in state:
      return values(state[mean]), values(state[std])
  return None


def network_tensors(arch: str, state: dict) -> dict:
  """The tensors of `state` the network reads, named as leaf_names names them: the arch's
  prefix dropped; stored statistics, ignored copies and BatchNorm counters left out."""
  spec = ARCHS[arch]
  stored = {name for pair in STATISTICS for name in pair}
  out = {}
  for key, value in state.items():
    if key in stored or key.startswith(spec.ignore) or key.endswith("num_batches_tracked"):
      continue
    out[key[len(spec.prefix):] if spec.prefix and key.startswith(spec.prefix) else key] = value
  return out


def options(arch: str, state: dict) -> dict:
  """The model's fields for `arch`'s file `state`: ARCHS[arch].options and the choices the
  file makes (preact_resnet18 has its final BatchNorm only if the file holds `bn.*`)."""
  if arch not in ARCHS:
    raise UserError(f"unknown architecture {arch!r}; choose one of {ARCHS.names()}")
  spec, tensors = ARCHS[arch], network_tensors(arch, state)
  return {**spec.options, **{option: name in tensors for option, name in spec.detect}}


def _set(tree: dict, path: tuple, value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def to_variables(arch: str, template, state: dict[str, np.ndarray]) -> dict:
  """The Flax variables (params, batch_stats) of `arch` holding `state`'s tensors.

  Args:
    arch: a key of ARCHS.
    template: the model's variables or their jax.eval_shape (shapes and dtypes).
    state: {PyTorch name: array}, as read_state_dict returns (network_tensors picks
      the network's own).
  Returns:
    {"params": ..., "batch_stats": ...} (the collections `template` has), numpy arrays.
  Raises:
    UserError: a tensor without a place in the model, a missing one, or a
      shape mismatch; each names the tensor.
  """
  if arch not in ARCHS:
    raise UserError(f"unknown architecture {arch!r}; choose one of {ARCHS.names()}")
  names = leaf_names(arch, template)
  state = network_tensors(arch, state)
  wanted = {torch_key for torch_key, _, _ in names.values()}
  extra = sorted(k for k in state if k not in wanted)
  if extra:
    raise UserError(f"checkpoint tensor {extra[0]!r} has no place in {arch}"
                    + (f" (nor {len(extra) - 1} more)" if len(extra) > 1 else "")
                    + f"; is the file a {arch}?")
  variables = {}
  leaves = dict((tuple(k.key for k in keys), leaf) for keys, leaf in
                jax.tree_util.tree_flatten_with_path(template)[0])
  for path, (torch_key, torch_shape, convert) in names.items():
    if torch_key not in state:
      raise UserError(f"the checkpoint has no tensor {torch_key!r}, which {arch} needs")
    array = state[torch_key]
    if tuple(array.shape) != torch_shape:
      classes = (f" (the checkpoint has {array.shape[0]} classes, the data set "
                 f"{torch_shape[0]})" if path[1:-1] == ("head",) else "")
      raise UserError(f"checkpoint tensor {torch_key!r} has shape {tuple(array.shape)}; "
                      f"{arch} here expects {torch_shape}{classes}")
    _set(variables, path, np.ascontiguousarray(convert(array)).astype(leaves[path].dtype))
  return variables
