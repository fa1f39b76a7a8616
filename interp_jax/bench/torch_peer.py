"""The same small_cnn (and the bench's plain CNN) in PyTorch, for benchmarks against peer
libraries only.

Imported by the benchmarks when torch (and torchattacks) are installed; never
on a default path. The weights are copied from the Flax variables, and
`same_logits` checks that both networks compute the same function, so the
timings compare the same work.
"""

import statistics
import time

import numpy as np
import torch
from torch import nn


class TorchSmallCNN(nn.Module):
  """conv3x3-BN-ReLU(-maxpool2) blocks, global max, dense-ReLU, dense: as models.SmallCNN."""

  def __init__(self, widths, hidden, num_classes, in_channels=3):
    super().__init__()
    blocks, c = [], in_channels
    for i, w in enumerate(widths):
      blocks += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
      if i < len(widths) - 1:
        blocks.append(nn.MaxPool2d(2))
      c = w
    self.features = nn.Sequential(*blocks)
    self.fc1 = nn.Linear(c, hidden)
    self.head = nn.Linear(hidden, num_classes)

  def forward(self, x):
    x = torch.amax(self.features(x), dim=(2, 3))
    return self.head(torch.relu(self.fc1(x)))


def from_flax(variables, widths, hidden, num_classes) -> TorchSmallCNN:
  """A TorchSmallCNN holding the weights of a Flax SmallCNN (batch_norm=True, head_pool=max)."""
  net = TorchSmallCNN(widths, hidden, num_classes)
  p, s = variables["params"], variables["batch_stats"]
  convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
  norms = [m for m in net.features if isinstance(m, nn.BatchNorm2d)]
  t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
  with torch.no_grad():
    for i, (conv, bn) in enumerate(zip(convs, norms)):
      conv.weight.copy_(t(p[f"Conv_{i}"]["kernel"]).permute(3, 2, 0, 1))  # HWIO -> OIHW
      bn.weight.copy_(t(p[f"BatchNorm_{i}"]["scale"]))
      bn.bias.copy_(t(p[f"BatchNorm_{i}"]["bias"]))
      bn.running_mean.copy_(t(s[f"BatchNorm_{i}"]["mean"]))
      bn.running_var.copy_(t(s[f"BatchNorm_{i}"]["var"]))
    for name, dense in (("Dense_0", net.fc1), ("head", net.head)):
      dense.weight.copy_(t(p[name]["kernel"]).T)
      dense.bias.copy_(t(p[name]["bias"]))
  return net.eval()


class TorchPlainCNN(nn.Module):
  """conv3x3-ReLU-maxpool2 blocks, flatten, dense-ReLU, dense: as the bench's PlainCNN."""

  def __init__(self, widths, hidden, num_classes, size, in_channels=3):
    super().__init__()
    blocks, c = [], in_channels
    for w in widths:
      blocks += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
      c, size = w, size // 2
    self.features = nn.Sequential(*blocks)
    self.fc1 = nn.Linear(c * size * size, hidden)
    self.head = nn.Linear(hidden, num_classes)

  def forward(self, x):
    return self.head(torch.relu(self.fc1(self.features(x).flatten(1))))


def plain_from_flax(variables, widths, hidden, num_classes, size) -> TorchPlainCNN:
  """A TorchPlainCNN holding the weights of the bench's Flax PlainCNN."""
  net = TorchPlainCNN(widths, hidden, num_classes, size)
  p = variables["params"]
  t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
  with torch.no_grad():
    for i, conv in enumerate(m for m in net.features if isinstance(m, nn.Conv2d)):
      conv.weight.copy_(t(p[f"Conv_{i}"]["kernel"]).permute(3, 2, 0, 1))  # HWIO -> OIHW
      conv.bias.copy_(t(p[f"Conv_{i}"]["bias"]))
    # Flax flattens (h, w, c), torch (c, h, w): reorder the first dense layer's rows.
    c, side = widths[-1], size >> len(widths)
    kernel = t(p["Dense_0"]["kernel"]).reshape(side, side, c, hidden).permute(2, 0, 1, 3)
    net.fc1.weight.copy_(kernel.reshape(-1, hidden).T)
    net.fc1.bias.copy_(t(p["Dense_0"]["bias"]))
    net.head.weight.copy_(t(p["Dense_1"]["kernel"]).T)
    net.head.bias.copy_(t(p["Dense_1"]["bias"]))
  return net.eval()


def to_torch_images(x) -> torch.Tensor:
  return torch.from_numpy(np.asarray(x, np.float32).transpose(0, 3, 1, 2).copy())


def _timed(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def attack_calls(variables, x, y, eps, steps, widths=(16, 32, 64), hidden=128,
                 num_classes=9, net=None) -> dict:
  """torchattacks' attacks on the copied network (or `net`), each a call with no argument;
  {} without torchattacks."""
  try:
    import torchattacks
  except ImportError:
    return {}
  net = net if net is not None else from_flax(variables, widths, hidden, num_classes)
  xt, yt = to_torch_images(x), torch.from_numpy(np.asarray(y, np.int64))
  alpha = eps / 4
  illc = torchattacks.BIM(net, eps=eps, alpha=alpha, steps=steps)
  illc.set_mode_targeted_least_likely()
  table = {
      "fgsm": torchattacks.FGSM(net, eps=eps),
      "bim": torchattacks.BIM(net, eps=eps, alpha=alpha, steps=steps),
      "pgd": torchattacks.PGD(net, eps=eps, alpha=alpha, steps=steps, random_start=True),
      "pgd_l2": torchattacks.PGDL2(net, eps=0.5, alpha=0.5 / 4, steps=steps),
      "least_likely": illc,
      "mi_fgsm": torchattacks.MIFGSM(net, eps=eps, alpha=alpha, steps=steps, decay=1.0),
  }
  return {name: (lambda a=atk: a(xt, yt)) for name, atk in table.items()}


def same_logits(model, variables, x, widths=(16, 32, 64), hidden=128, net=None) -> float:
  """Largest absolute logit difference between the Flax model and its torch copy (or `net`)."""
  net = net if net is not None else from_flax(variables, widths, hidden, model.num_classes)
  with torch.no_grad():
    theirs = net(to_torch_images(x)).numpy()
  return float(np.abs(np.asarray(model.apply(variables, x)) - theirs).max())


def train_step_ms(batch, size, repeats, widths=(16, 32, 64), hidden=128, num_classes=9):
  """Median ms of a PyTorch Adam step of TorchSmallCNN on one batch."""
  net = TorchSmallCNN(widths, hidden, num_classes).train()
  opt = torch.optim.Adam(net.parameters(), lr=1e-3)
  x = torch.rand(batch, 3, size, size)
  y = torch.arange(batch) % num_classes

  def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()

  return _timed(step, repeats)


def autoattack_stages(variables, x, y, eps, num_classes, widths=(16, 32, 64), hidden=128,
                      steps=100, queries=5000, seed=0):
  """torchattacks' APGD-CE, APGD-T, FAB-T and Square on the copied network, at AutoAttack's
  published budget, each run on the images every earlier stage left robust.

  Returns a call with no argument that runs them and returns ({"clean": accuracy, stage:
  accuracy after it}, {stage: seconds}); None without torchattacks. torchattacks.AutoAttack itself
  would run 10 steps per APGD and FAB stage (its defaults), a tenth of the paper's.
  """
  try:
    import torchattacks
  except ImportError:
    return None
  net = from_flax(variables, widths, hidden, num_classes)
  xt, yt = to_torch_images(x), torch.from_numpy(np.asarray(y, np.int64))
  stages = {
      "apgd_ce": torchattacks.APGD(net, norm="Linf", eps=eps, steps=steps, loss="ce",
                                   n_restarts=1, seed=seed),
      "apgd_t": torchattacks.APGDT(net, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                   n_classes=num_classes, seed=seed),
      "fab_t": torchattacks.FAB(net, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                multi_targeted=True, n_classes=num_classes, seed=seed),
      "square": torchattacks.Square(net, norm="Linf", eps=eps, n_queries=queries, n_restarts=1,
                                    resc_schedule=False, seed=seed),
  }

  return staged_run(net, xt, yt, stages)


def staged_run(net, xt, yt, stages, sync=lambda: None):
  """A call with no argument that runs torchattacks' `stages` ({name: attack}) in order,
  each on the images every earlier one left robust, and returns ({"clean": accuracy,
  stage: accuracy after it}, {stage: seconds}); `sync` waits for the device."""
  def run():
    with torch.no_grad():
      robust = net(xt).argmax(1) == yt
    out, seconds = {"clean": float(robust.float().mean())}, {}
    for name, attack in stages.items():
      start = time.perf_counter()
      idx = torch.nonzero(robust).flatten()
      if len(idx):
        adv = attack(xt[idx], yt[idx])
        with torch.no_grad():
          robust[idx] = net(adv).argmax(1) == yt[idx]
      out[name] = float(robust.float().mean())
      sync()
      seconds[name] = time.perf_counter() - start
    return out, seconds

  return run
