"""The device check's five measurements (bench/device_check.py has the sizes, the driver,
the table and the JSON schema): attacks, train, analysis, dissection, scaling.

    check = device_sections.Check(sizes, repeats=5, timed=timed, paired=paired)
    device_sections.attacks(check)    # {"pgd": {"images_per_s": ...}, "autoattack": ...}

Each returns its JSON section. Networks get random_variables; every batch is
split over all devices (sharding.data_mesh), as training and the analysis split it.
"""

import dataclasses
import math
import pathlib
import time

import jax
import numpy as np

from interp_jax import attacks as attack_lib, models, sharding

AA_EPS = 1 / 255
BRODEN_IMAGES = 63_305
CIFAR_CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "cifar10_resnet18.py"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclasses.dataclass
class Check:
  """What every section needs: the sizes, the bench's timing helpers, the torch peer."""
  sizes: object          # device_check.Sizes
  repeats: int
  timed: object          # harness.timed(fn, repeats) -> median ms
  paired: object         # harness.paired(reference, fn, repeats) -> (ref ms, ms, ratio, q1, q3)
  peer: object = None    # bench/torch_resnet_peer.py when torch sees this device, else None
  torch_device: object = None
  cache: dict = dataclasses.field(default_factory=dict)  # built once: models, jitted steps

  def once(self, key, make):
    if key not in self.cache:
      self.cache[key] = make()
    return self.cache[key]

  def say(self, text: str) -> None:
    print(f"  {text}", flush=True)


def random_variables(model, image_shape, seed: int = 0) -> dict:
  """Random variables of a Flax model, made in numpy from jax.eval_shape(model.init):
  kernels N(0, 1 / fan_in), zero biases, identity BatchNorm (mean 0, var 1, scale 1).

  Compiling model.init's random number generation costs a CPU more than the
  steps timed after it; a benchmark needs weights, not the model's initialiser.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, *image_shape), np.float32))
  rng = np.random.default_rng(seed)

  def make(path, leaf):
    name = path[-1].key
    if name == "kernel":
      fan_in = math.prod(leaf.shape[:-1])
      return (rng.standard_normal(leaf.shape) / math.sqrt(fan_in)).astype(np.float32)
    return np.full(leaf.shape, 1.0 if name in ("scale", "var") else 0.0, np.float32)

  return jax.tree_util.tree_map_with_path(make, shapes)


def global_batch(batch: int, devices: int | None = None) -> int:
  """`batch` rounded up to a multiple of the devices, so each takes an equal share."""
  n = devices or jax.device_count()
  return -(-batch // n) * n


def _images(rng_seed: int, batch: int, size: int) -> np.ndarray:
  return np.random.default_rng(rng_seed).random((batch, size, size, 3), np.float32)


def _cifar_model(check: Check):
  """The CIFAR ResNet-18 and its random variables (numpy), the same for every section."""
  s = check.sizes

  def make():
    model = models.create("resnet18", 10, stem="cifar", base_width=s.resnet_width,
                          stage_sizes=(s.resnet_blocks,) * 4)
    return model, random_variables(model, (s.image_size, s.image_size, 3))

  return check.once("resnet18", make)


def _cifar_fields(s) -> dict:
  return {"model": "resnet18", "blocks_per_stage": s.resnet_blocks, "base_width": s.resnet_width,
          "image_size": s.image_size}


def _versus(check: Check, theirs, ours, images: int) -> dict:
  """{"ms", "images_per_s"} of `ours`, and torch's beside it when `theirs` is a call."""
  if theirs is None:
    ms = check.timed(ours, check.repeats)
    return {"ms": ms, "images_per_s": images / ms * 1e3, "torch_ms": None,
            "torch_images_per_s": None, "jax_over_torch": None}
  their_ms, ms, ratio, low, high = check.paired(theirs, ours, check.repeats)
  return {"ms": ms, "images_per_s": images / ms * 1e3, "torch_ms": their_ms,
          "torch_images_per_s": images / their_ms * 1e3, "jax_over_torch": ratio,
          "jax_over_torch_quartiles": [low, high]}


def attacks(check: Check) -> dict:
  """PGD and AutoAttack on the CIFAR ResNet-18, beside torchattacks on the same weights."""
  s, peer = check.sizes, check.peer
  config = cifar_config(check)
  eps, step_size = float(config.adv.eps), float(config.adv.step_size)
  model, variables = _cifar_model(check)
  mesh = sharding.data_mesh()
  variables = jax.device_put(variables, sharding.replicated(mesh))
  apply = jax.jit(model.apply)  # one function: same shapes compile once
  batch = global_batch(s.attack_batch)
  x = _images(1, batch, s.image_size)
  y = np.asarray(apply(variables, x).argmax(-1), np.int32)  # its own labels
  on_mesh = sharding.put_batch(mesh, {"image": x, "label": y})
  net = (peer.from_flax(variables, s.resnet_width, 10, check.torch_device, s.resnet_blocks)
         if peer else None)
  out = {**_cifar_fields(s), "devices": mesh.size,
         "logit_difference": peer.max_logit_difference(apply, variables, x, net) if peer
         else None}

  check.say(f"PGD-{s.pgd_steps} on a batch of {batch}")
  key = jax.random.key(0)
  ours = lambda: attack_lib.pgd(model.apply, variables, on_mesh["image"], on_mesh["label"],
                                key, eps=eps, step_size=step_size, steps=s.pgd_steps)
  theirs = (peer.pgd_call(net, x, y, eps=eps, step_size=step_size, steps=s.pgd_steps)
            if peer else None)
  out["pgd"] = {"batch": batch, "steps": s.pgd_steps, "eps": eps, "step_size": step_size,
                **_versus(check, theirs, ours, batch)}

  n = global_batch(s.aa_images)
  if n > batch:
    x = _images(2, n, s.image_size)
    y = np.asarray(apply(variables, x).argmax(-1), np.int32)
  check.say(f"AutoAttack on {n} images ({s.aa_steps} steps, {s.aa_targets} targets, "
            f"{s.aa_queries} queries)")
  out["autoattack"] = _autoattack(check, model, variables, x[:n], y[:n], mesh, net)
  return out


def _autoattack(check: Check, model, variables, x, y, mesh, net) -> dict:
  """One timed AutoAttack a side, after JAX's compiling run (a run at full size takes tens
  of seconds, and the whole check has minutes)."""
  s, peer = check.sizes, check.peer
  budget = {"steps": s.aa_steps, "targets": s.aa_targets, "queries": s.aa_queries}

  def ours():
    return attack_lib.autoattack(model.apply, variables, x, y, jax.random.key(0), eps=AA_EPS,
                                 batch_size=len(x), mesh=mesh, progress=False, **budget)

  start = time.perf_counter()
  ours()
  first = time.perf_counter() - start
  start = time.perf_counter()
  result = ours()
  seconds = time.perf_counter() - start
  out = {"images": len(x), "eps": AA_EPS, "options": result.options, "seconds": seconds,
         "first_seconds": first, "images_per_s": len(x) / seconds,
         "stage_seconds": result.seconds, "accuracy_after": result.accuracy_after,
         "torch_seconds": None, "torch_images_per_s": None, "torch_accuracy_after": None,
         "jax_over_torch": None}
  if peer:
    targets = min(s.aa_targets, model.num_classes - 1)  # as attacks.autoattack_plan caps them
    theirs = peer.autoattack_call(net, x, y, eps=AA_EPS, steps=s.aa_steps, targets=targets,
                                  queries=s.aa_queries)
    start = time.perf_counter()
    accuracy, _ = theirs()
    torch_seconds = time.perf_counter() - start
    out.update(torch_seconds=torch_seconds, torch_images_per_s=len(x) / torch_seconds,
               torch_accuracy_after=accuracy, jax_over_torch=seconds / torch_seconds)
  return out


def cifar_config(check: Check):
  """configs/cifar10_resnet18.py (what a user trains), with the size's training attack."""
  import importlib.util
  from interp_jax.errors import UserError
  if not CIFAR_CONFIG.is_file():
    raise UserError(f"the device check reads {CIFAR_CONFIG}; run it from a clone of the "
                    "repository")
  spec = importlib.util.spec_from_file_location("_device_check_config", CIFAR_CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.adv.steps = check.sizes.train_attack_steps
  return config


def _train_step(check: Check, variant: str):
  """(objective, jitted train step, optimizer) of the config's `variant`, built once, so
  the scaling section's step on a mesh and batch the train section used is not compiled
  again."""
  from interp_jax.default_config import select_variant
  from interp_jax.training import objective as objective_lib, steps

  def make():
    config = select_variant(cifar_config(check), variant)
    model, _ = _cifar_model(check)
    objective = objective_lib.from_config(config, model.layer_names)
    tx = steps.make_optimizer(config.optimizer, config.num_train_steps)
    return objective, jax.jit(steps.make_train_step(model, objective), donate_argnums=0), tx

  return check.once(("step", variant), make)


def _step_call(check: Check, step, tx, devices, batch: int):
  """A call running one train step on a batch split over `devices` (the state donated)."""
  from interp_jax.training import steps
  model, variables = _cifar_model(check)
  mesh = sharding.data_mesh(devices)
  state = steps.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                  batch_stats=variables["batch_stats"])
  holder = [jax.device_put(state, sharding.replicated(mesh))]
  data = sharding.put_batch(mesh, {"image": _images(3, batch, check.sizes.image_size),
                                   "label": np.arange(batch, dtype=np.int32) % 10})

  def one():
    holder[0], metrics = step(holder[0], data)
    return metrics

  return one


def train(check: Check) -> dict:
  """The adv and adv_consistent train steps of configs/cifar10_resnet18.py, beside PyTorch's."""
  s, peer = check.sizes, check.peer
  batch = global_batch(s.train_batch)
  out = {**_cifar_fields(s), "batch": batch, "attack_steps": s.train_attack_steps,
         "devices": jax.device_count()}
  for variant in ("adv", "adv_consistent"):
    check.say(f"{variant} train step, batch {batch}, PGD-{s.train_attack_steps}")
    objective, step, tx = _train_step(check, variant)
    ours = _step_call(check, step, tx, jax.devices(), batch)
    theirs = None
    if peer:
      model, variables = _cifar_model(check)
      net = peer.from_flax(variables, s.resnet_width, 10, check.torch_device, s.resnet_blocks)
      theirs = peer.train_step_call(
          net, _images(3, batch, s.image_size), np.arange(batch) % 10, eps=objective.eps,
          step_size=objective.step_size, steps=objective.steps,
          consistency_weight=objective.weight)
    out[variant] = _versus(check, theirs, ours, batch)
  out["consistent_over_adv"] = out["adv_consistent"]["ms"] / out["adv"]["ms"]
  return out


def analysis(check: Check) -> dict:
  """The analysis's forward pass of an ImageNet ResNet-50: every layer's features reduced
  to one activation per neuron (what extraction merges into the top-k)."""
  from interp_jax.measures import consistency
  s = check.sizes
  model = models.create("resnet50", 1000, stem="imagenet", base_width=s.imagenet_width,
                        input_mean=IMAGENET_MEAN, input_std=IMAGENET_STD)
  layers = tuple(n for n in model.layer_names if n != "logits")
  mesh = sharding.data_mesh()
  variables = jax.device_put(random_variables(model, (s.imagenet_size, s.imagenet_size, 3)),
                             sharding.replicated(mesh))
  batch = global_batch(s.imagenet_batch)
  x = sharding.put_batch(mesh, {"x": _images(4, batch, s.imagenet_size)})["x"]
  forward = jax.jit(lambda v, x: {
      l: consistency.neuron_activations(f)
      for l, f in models.apply_with_features(model, v, x, layers)[1].items()})
  check.say(f"ResNet-50 features at {s.imagenet_size} px, batch {batch}")
  ms = check.timed(lambda: forward(variables, x), check.repeats)
  return {"model": "resnet50", "base_width": s.imagenet_width, "image_size": s.imagenet_size,
          "batch": batch, "devices": mesh.size, "layers": list(layers), "ms": ms,
          "images_per_s": batch / ms * 1e3}


def dissection(check: Check) -> dict:
  """measures/concept_iou.py's three passes on random activations and masks of Broden's
  shapes; labels are -1 (none) on half the pixels, random concepts elsewhere."""
  import functools
  from interp_jax.measures import concept_iou as dis
  s = check.sizes
  mesh = sharding.data_mesh()
  batch, units, concepts = global_batch(s.broden_batch), s.broden_units, s.broden_concepts
  categories, bins = 6, 2048
  rng = np.random.default_rng(5)
  labels = rng.integers(-concepts, concepts, (batch, s.broden_layers, s.broden_masks,
                                              s.broden_masks)).astype(np.int32)
  data = sharding.put_batch(mesh, {
      "act": rng.standard_normal((batch, s.broden_map, s.broden_map, units), np.float32),
      "labels": np.maximum(labels, -1)})
  category = jax.device_put(np.arange(concepts, dtype=np.int32) % categories,
                            sharding.replicated(mesh))
  first, second = jax.jit(dis.range_update), jax.jit(dis.histogram_update)
  third = jax.jit(functools.partial(dis.iou_update, concept_category=category))
  ranges = first(dis.range_init(units), data["act"])
  hist = dis.histogram_init(units, bins)
  threshold, _ = dis.thresholds(second(hist, data["act"], ranges), ranges)
  tally = dis.iou_init(units, concepts, categories)
  passes = {"range": lambda: first(dis.range_init(units), data["act"]),
            "histogram": lambda: second(hist, data["act"], ranges),
            "iou": lambda: third(tally, data["act"], data["labels"], threshold)}
  out = {"batch": batch, "units": units, "map": [s.broden_map] * 2,
         "masks": [s.broden_masks] * 2, "concepts": concepts, "categories": categories,
         "label_layers": s.broden_layers, "bins": bins, "devices": mesh.size, "passes": {}}
  for name, call in passes.items():
    check.say(f"dissection pass {name}: batch {batch}, {units} units, {concepts} concepts")
    ms = check.timed(call, check.repeats)
    out["passes"][name] = {"ms": ms, "images_per_s": batch / ms * 1e3}
  total = sum(p["ms"] for p in out["passes"].values())
  out.update(images_per_s=batch / total * 1e3, broden_images=BRODEN_IMAGES,
             broden_seconds=BRODEN_IMAGES * total / batch / 1e3)
  return out


def device_counts(total: int) -> list[int]:
  """1, 2, 4, ... below `total`, then `total` itself."""
  counts, n = [], 1
  while n < total:
    counts.append(n)
    n *= 2
  return counts + [total]


def scaling(check: Check) -> dict:
  """The adv train step on the first n devices, a fixed batch per device (weak scaling)."""
  per_device = check.sizes.scaling_batch
  _, step, tx = _train_step(check, "adv")  # one jitted step: a mesh seen before reuses it
  entries = []
  for n in device_counts(jax.device_count()):
    check.say(f"adv train step on {n} device(s), batch {n * per_device}")
    ms = check.timed(_step_call(check, step, tx, jax.devices()[:n], n * per_device),
                     check.repeats)
    entries.append({"devices": n, "batch": n * per_device, "ms": ms,
                    "images_per_s": n * per_device / ms * 1e3})
  for e in entries:
    e["efficiency"] = e["images_per_s"] / (e["devices"] * entries[0]["images_per_s"])
  return {"step": "adv", "per_device_batch": per_device, "entries": entries}
