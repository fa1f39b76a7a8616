"""The CIFAR ResNet-18 in PyTorch, holding the Flax network's weights: the device check's peer.

    dev, why = torch_resnet_peer.device_for(jax.default_backend())   # None, "torch ..." if none
    net = torch_resnet_peer.from_flax(variables, width=64, num_classes=10, device=dev)
    torch_resnet_peer.max_logit_difference(model.apply, variables, x, net)   # ~1e-7
    pgd = torch_resnet_peer.pgd_call(net, x, y, eps=8/255, step_size=2/255, steps=10)
    pgd()                                             # torchattacks.PGD, synchronised

Imported by bench/device_check.py when torch is installed; never on a default
path. The network is torchvision's ResNet-18 layout (so models/torch_import.py
names every tensor) with the CIFAR stem of models/resnet.py (3x3 conv, no
max-pool) and any base width. Every call returns only after the device has
finished (torch.cuda.synchronize on a GPU), so wall time measures the work.
"""

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from interp_jax.bench import torch_peer
from interp_jax.models import torch_import


class _Block(nn.Module):
  def __init__(self, cin, width, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(width)
    self.downsample = None
    if stride != 1 or cin != width:  # models/resnet.py: a projection when shapes differ
      self.downsample = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False),
                                      nn.BatchNorm2d(width))

  def forward(self, x):
    y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
    return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class CifarResNet18(nn.Module):
  """ResNet-18 with models.resnet's CIFAR stem (`blocks` per stage: 2; 1 makes the
  ResNet-10 of the tests' size); `forward` gives logits, `features` also the pooled
  features (the "pool" layer the consistent loss of configs/cifar10_resnet18.py reads)."""

  def __init__(self, width: int = 64, num_classes: int = 10, blocks: int = 2):
    super().__init__()
    self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    cin = width
    for i in range(4):
      w = width * 2 ** i
      stage = [_Block(cin, w, 2 if i else 1)] + [_Block(w, w, 1) for _ in range(blocks - 1)]
      setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
      cin = w
    self.fc = nn.Linear(cin, num_classes)

  def features(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    for i in range(4):
      x = getattr(self, f"layer{i + 1}")(x)
    pooled = x.mean((2, 3))
    return self.fc(pooled), pooled

  def forward(self, x):
    return self.features(x)[0]


def device_for(backend: str):
  """(torch.device, None) for the device JAX runs on, or (None, why torch cannot use it)."""
  if backend == "cpu":
    return torch.device("cpu"), None
  if backend in ("gpu", "cuda", "rocm"):
    if torch.cuda.is_available():
      return torch.device("cuda"), None
    return None, "this torch sees no GPU (a CPU-only build?)"
  return None, f"torch does not run on a {backend} device"


def _sync(device):
  if device.type == "cuda":
    torch.cuda.synchronize(device)


def from_flax(variables, width: int, num_classes: int, device, blocks: int = 2) -> CifarResNet18:
  """A CifarResNet18 on `device` holding the Flax ResNet-18's (stem="cifar") variables."""
  net = CifarResNet18(width, num_classes, blocks)
  state = net.state_dict()
  for path, (name, shape, _) in torch_import.leaf_names("resnet18", variables).items():
    leaf = variables
    for key in path:
      leaf = leaf[key]
    a = np.asarray(leaf, np.float32)
    a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T if a.ndim == 2 else a  # HWIO, [in, out]
    assert a.shape == tuple(shape), (name, a.shape, shape)
    state[name] = torch.from_numpy(a.copy())
  net.load_state_dict(state)
  return net.to(device).eval()


def to_torch(x, device) -> torch.Tensor:
  """NHWC numpy/JAX images -> NCHW torch tensor on `device`."""
  return torch.from_numpy(np.asarray(x, np.float32).transpose(0, 3, 1, 2).copy()).to(device)


def _labels(y, device) -> torch.Tensor:
  return torch.from_numpy(np.asarray(y, np.int64)).to(device)


def max_logit_difference(apply_fn, variables, x, net) -> float:
  """Largest |logit| difference between the Flax network and its torch copy on x."""
  device = next(net.parameters()).device
  with torch.no_grad():
    theirs = net(to_torch(x, device)).cpu().numpy()
  return float(np.abs(np.asarray(apply_fn(variables, x)) - theirs).max())


def pgd_call(net, x, y, *, eps, step_size, steps):
  """torchattacks' PGD (L-inf, random start) on x: a call with no argument."""
  import torchattacks
  device = next(net.parameters()).device
  xt, yt = to_torch(x, device), _labels(y, device)
  attack = torchattacks.PGD(net, eps=eps, alpha=step_size, steps=steps, random_start=True)

  def run():
    attack(xt, yt)
    _sync(device)

  return run


def autoattack_call(net, x, y, *, eps, steps, targets, queries, seed=0):
  """torchattacks' APGD-CE, APGD-T, FAB-T and Square, each on the images every earlier
  stage left robust (AutoAttack standard's order), at the given budget: a call with no
  argument returning ({"clean": accuracy, stage: accuracy after it}, {stage: seconds}).

  `targets` sets torchattacks' n_target_classes (it takes n_classes - 1 otherwise).
  """
  import torchattacks
  device = next(net.parameters()).device
  xt, yt = to_torch(x, device), _labels(y, device)
  common = {"norm": "Linf", "eps": eps, "n_restarts": 1, "seed": seed}
  stages = {
      "apgd_ce": torchattacks.APGD(net, steps=steps, loss="ce", **common),
      "apgd_t": torchattacks.APGDT(net, steps=steps, n_classes=targets + 1, **common),
      "fab_t": torchattacks.FAB(net, steps=steps, multi_targeted=True, n_classes=targets + 1,
                                **common),
      "square": torchattacks.Square(net, n_queries=queries, resc_schedule=False, **common),
  }

  return torch_peer.staged_run(net, xt, yt, stages, lambda: _sync(device))


def train_step_call(net, x, y, *, eps, step_size, steps, consistency_weight=0.0,
                    learning_rate=0.1, momentum=0.9, weight_decay=5e-4):
  """One adversarial train step of training/steps.py in PyTorch, a call with no argument.

  As there: PGD (random start) with BatchNorm in inference mode, then one forward pass
  of the 2B rows [x; x'] in training mode; clean CE + adversarial CE, plus
  `consistency_weight` x mean squared difference of the pooled features (the l2
  distance of losses.py); SGD with Nesterov momentum and weight decay (the optimizer
  of configs/cifar10_resnet18.py).
  """
  device = next(net.parameters()).device
  xt, yt = to_torch(x, device), _labels(y, device)
  opt = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=momentum, nesterov=True,
                        weight_decay=weight_decay)

  def attack():
    net.eval()
    z = (xt + torch.empty_like(xt).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
      z.requires_grad_(True)
      grad, = torch.autograd.grad(F.cross_entropy(net(z), yt), z)
      z = torch.min(torch.max(z.detach() + step_size * grad.sign(), xt - eps), xt + eps)
      z = z.clamp(0, 1)
    return z.detach()

  def run():
    x_adv = attack()
    net.train()
    logits, pooled = net.features(torch.cat([xt, x_adv]))
    b = len(xt)
    loss = F.cross_entropy(logits[:b], yt) + F.cross_entropy(logits[b:], yt)
    if consistency_weight:
      loss = loss + consistency_weight * (pooled[:b] - pooled[b:]).square().mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    _sync(device)

  return run
