"""python -m interp_jax.bench device [--device_size=auto|tiny|small|full] [--device_out=PATH]

The device check: one run that says how fast this machine (a GPU, a TPU, or a CPU)
does the project's heavy work, with the PyTorch peer beside each figure where
torch is installed and sees the same device. Sections, in order (pick some with
--device_sections=attacks,train):

  attacks     PGD-10 and AutoAttack (standard's stages, at the size's budget) on a batch
              of a CIFAR ResNet-18 (random weights): images/s, and torchattacks on the
              same weights and images, with the JAX / torch time ratio
  train       the adv and adv_consistent train steps of configs/cifar10_resnet18.py
              (PGD training attack, consistent loss on "pool", SGD; no augmentation):
              ms/step, against the same step written in PyTorch
  analysis    the analysis's forward pass of an ImageNet ResNet-50: every layer's
              features reduced to one activation per neuron (images/s)
  dissection  measures/concept_iou.py's three passes (range, histogram, IoU) over random
              activations and masks of Broden's shapes (ResNet-50's layer4 map, 112 x 112
              masks, 1,197 concepts in 6 categories): images/s, and the seconds one
              layer's passes would take over Broden's 63,305 images
  scaling     the adv train step on 1, 2, 4, ..., all devices (sharding.data_mesh over
              the first n), a fixed batch per device: images/s and efficiency
              (images/s on n devices / (n x images/s on one))

On a lent GPU, `launch/gpu.sh device` runs it with XLA_PYTHON_CLIENT_PREALLOCATE=false,
so torch shares the GPU with XLA.

Sizes (the fields of `Sizes`): "full" is the published networks at their sizes,
for a GPU or TPU (AutoAttack on 128 images with 1,000 Square queries instead of
5,000, so the whole check fits in about 8 minutes); "small", a CPU's, keeps
ResNet-18 and PGD-10 but shrinks widths, images, batches and AutoAttack's budget:
compiling some twenty programs is most of its minutes on 2 cores; "tiny", the
tests', also makes the ResNet-18 a ResNet-10 (one block a stage). "auto" (the
default) takes full off CPU and small on it. Each figure is the median of
--repeats timed calls after one untimed call (compilation), except AutoAttack:
one timed run a side after JAX's compiling run (at full size a run takes tens
of seconds). JAX runs over all devices; a torch peer on one.

Weights are random (LeCun-normal kernels, identity BatchNorm), made in numpy:
compiling model.init's random number generation costs more on a CPU than the
steps it precedes. AutoAttack runs at eps 1/255 with the labels set to the
network's own predictions, where a random network keeps most images, so each
stage does close to its whole budget (accuracy_after shows how much).

Progress lines go to stdout as each measurement starts; a table at the end.
The JSON (--device_out; default runs/device_check_BACKEND.json), rewritten
after every section so an interrupted run keeps what it measured:

  {"schema": 1, "backend": "cpu" | "gpu" | "tpu", "device_kind": str (jax.devices()[0].device_kind),
   "device_count": int, "jax": str, "size": "tiny" | "small" | "full",
   "sizes": {Sizes field: int}, "repeats": int, "started": ISO time, "seconds": float (so far),
   "torch": {"device": str | null, "why_not": str | null, "version": str | null},
   "attacks": {"model": "resnet18", "blocks_per_stage": int, "base_width": int,
               "image_size": int, "devices": int,
               "logit_difference": float | null (max |JAX - torch| logit on the batch),
               "pgd": {"batch", "steps", "eps", "step_size", "ms", "images_per_s",
                       "torch_ms", "torch_images_per_s", "jax_over_torch",
                       "jax_over_torch_quartiles": [q1, q3]},
               "autoattack": {"images", "eps", "options": {stage: {option: value}},
                              "seconds", "first_seconds" (with compilation), "images_per_s",
                              "stage_seconds": {stage: s}, "accuracy_after": {"clean", stage},
                              "torch_seconds", "torch_images_per_s", "torch_accuracy_after",
                              "jax_over_torch"}},
   "train": {"model", "blocks_per_stage", "base_width", "image_size", "batch",
             "attack_steps", "devices",
             "adv": {"ms", "images_per_s", "torch_ms", "jax_over_torch",
                     "jax_over_torch_quartiles"},
             "adv_consistent": {... as adv}, "consistent_over_adv": float},
   "analysis": {"model": "resnet50", "base_width", "image_size", "batch", "devices",
                "layers": [str], "ms", "images_per_s"},
   "dissection": {"batch", "units", "map": [h, w], "masks": [H, W], "concepts",
                  "categories", "label_layers", "bins", "devices",
                  "passes": {"range" | "histogram" | "iou": {"ms", "images_per_s"}},
                  "images_per_s", "broden_images", "broden_seconds"},
   "scaling": {"step": "adv", "per_device_batch", "entries": [{"devices", "batch", "ms",
               "images_per_s", "efficiency"}]}}

Torch fields are null without a peer. jax_over_torch is JAX's time / torch's (below
1: JAX is faster): the median of interleaved pairs, as elsewhere in the bench, and
for AutoAttack the ratio of its one timed run a side.
"""

import dataclasses
import datetime
import json
import os
import time

from absl import flags
import jax

from interp_jax.bench import device_sections
from interp_jax.bench.harness import paired, ratio_text, timed, torch_peer
from interp_jax.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_enum("device_size", "auto", ["auto", "tiny", "small", "full"],
                  "bench device: full off CPU, small on it (auto), or tiny (the tests').")
flags.DEFINE_string("device_out", "", "bench device: the JSON written "
                    "(default runs/device_check_BACKEND.json).")
flags.DEFINE_list("device_sections", [], "bench device: sections to run (default all: "
                  "attacks, train, analysis, dissection, scaling).")


@dataclasses.dataclass(frozen=True)
class Sizes:
  resnet_blocks: int       # ResNet-18's blocks per stage (2; tiny's 1 is a ResNet-10)
  resnet_width: int        # its base width (64: the published network)
  image_size: int          # CIFAR images (32)
  attack_batch: int        # PGD's batch
  pgd_steps: int
  aa_images: int           # AutoAttack's subset
  aa_steps: int            # APGD and FAB steps (100 published)
  aa_targets: int          # APGD-T and FAB-T targets (9)
  aa_queries: int          # Square queries (5,000)
  train_batch: int         # configs/cifar10_resnet18.py: 128
  train_attack_steps: int  # its PGD training attack: 10
  imagenet_width: int      # ResNet-50's base width (64)
  imagenet_size: int       # 224
  imagenet_batch: int
  broden_batch: int
  broden_units: int        # ResNet-50's layer4: 2,048 units on a 7 x 7 map
  broden_map: int
  broden_masks: int        # Broden: 112 x 112
  broden_concepts: int     # broden1_224: 1,197
  broden_layers: int       # label layers per image
  scaling_batch: int       # per device


SIZES = {
    "tiny": Sizes(1, 4, 16, 8, 1, 8, 2, 1, 4, 8, 1, 4, 32, 2, 2, 8, 3, 14, 100, 3, 4),
    "small": Sizes(2, 8, 32, 16, 10, 16, 4, 2, 25, 16, 2, 8, 64, 4, 4, 64, 7, 28, 1197, 6, 8),
    "full": Sizes(2, 64, 32, 512, 10, 128, 100, 9, 1000, 128, 10, 64, 224, 64, 32, 2048, 7, 112,
                  1197, 6, 128),
}
SECTIONS = {"attacks": device_sections.attacks, "train": device_sections.train,
            "analysis": device_sections.analysis, "dissection": device_sections.dissection,
            "scaling": device_sections.scaling}


def sizes_for(name: str, backend: str) -> tuple[str, Sizes]:
  """(name, Sizes) of --device_size `name`; "auto" is small on a CPU, full elsewhere."""
  if name == "auto":
    name = "small" if backend == "cpu" else "full"
  if name not in SIZES:
    raise UserError(f"unknown device check size {name!r}; use auto or one of "
                    f"{', '.join(SIZES)}")
  return name, SIZES[name]


def sections_for(names) -> list[str]:
  """The sections asked for, in the check's order (all when none are named)."""
  unknown = [n for n in names if n not in SECTIONS]
  if unknown:
    raise UserError(f"unknown device check section(s) {', '.join(unknown)}; use some of "
                    f"{', '.join(SECTIONS)}")
  return [n for n in SECTIONS if n in names or not names]


def _peer(backend: str):
  """(bench/torch_resnet_peer.py or None, its torch.device or None, JSON "torch")."""
  if torch_peer() is None:  # harness.torch_peer: imports torch, sets its CPU threads
    return None, None, {"device": None, "why_not": "torch is not installed "
                        "(pip install 'interp_jax[torch]')", "version": None}
  import torch
  try:
    import torchattacks  # noqa: F401
  except ImportError:
    return None, None, {"device": None, "why_not": "torchattacks is not installed",
                        "version": torch.__version__}
  from interp_jax.bench import torch_resnet_peer
  device, why = torch_resnet_peer.device_for(backend)
  info = {"device": str(device) if device else None, "why_not": why, "version": torch.__version__}
  return (torch_resnet_peer if device else None), device, info


def run_check(size: str = "auto", sections=(), repeats: int = 5, out: str = "") -> dict:
  """Runs the check's sections and returns the report (the JSON of the module docstring),
  written to `out` after every section."""
  backend = jax.default_backend()
  size, sizes = sizes_for(size, backend)
  names = sections_for(sections)
  if repeats < 1:
    raise UserError(f"repeats must be at least 1, got {repeats}")
  out = out or os.path.join("runs", f"device_check_{backend}.json")
  peer, torch_device, torch_info = _peer(backend)
  report = {"schema": 1, "backend": backend, "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__, "size": size,
            "sizes": dataclasses.asdict(sizes), "repeats": repeats, "torch": torch_info,
            "started": datetime.datetime.now().isoformat(timespec="seconds")}
  print(f"device check: {jax.device_count()} x {report['device_kind']} ({backend}), size "
        f"{size}, torch peer: {torch_info['device'] or torch_info['why_not']}", flush=True)
  check = device_sections.Check(sizes, repeats, timed, paired, peer, torch_device)
  start = time.perf_counter()
  for i, name in enumerate(names):
    print(f"[{i + 1}/{len(names)}] {name} ({time.perf_counter() - start:.0f} s so far)",
          flush=True)
    report[name] = SECTIONS[name](check)
    report["seconds"] = time.perf_counter() - start
    _write(report, out)
  print(f"wrote {out} ({report['seconds']:.0f} s)")
  return report


def _write(report: dict, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(report, f, indent=1)
  os.replace(path + ".tmp", path)  # a reader never sees half a file


def _rate(value, unit="img/s") -> str:
  return "-" if value is None else f"{value:,.1f} {unit}" if value < 100 else \
      f"{value:,.0f} {unit}"


def _resnet(fields: dict) -> str:
  """ResNet-18/64 (depth/base width); ResNet-10 with one block a stage."""
  return f"ResNet-{2 + 8 * fields['blocks_per_stage']}/{fields['base_width']}"


def _against(fig: dict, unit: str) -> tuple[str, str]:
  """(torch's figure, "time JAX/torch") columns of a figure dict; unit: img/s or ms."""
  if fig.get("jax_over_torch") is None:
    return "-", "-"
  low, high = fig.get("jax_over_torch_quartiles", [fig["jax_over_torch"]] * 2)
  theirs = (_rate(fig["torch_images_per_s"]) if unit == "img/s"
            else f"{fig['torch_ms']:.1f} ms")
  return theirs, "time " + ratio_text(fig["jax_over_torch"], low, high)


def table(report: dict) -> str:
  """The report as a table: one row per figure, torch's beside it."""
  rows = []
  a, t = report.get("attacks"), report.get("train")
  if a:
    p, aa = a["pgd"], a["autoattack"]
    w = f"{_resnet(a)} {a['image_size']}px"
    rows.append(("attacks", f"PGD-{p['steps']} {w}, batch {p['batch']}",
                 _rate(p["images_per_s"]), *_against(p, "img/s")))
    o = aa["options"]
    budget = (f"{o.get('apgd_ce', {}).get('steps')} steps, {o.get('apgd_t', {}).get('targets')} "
              f"targets, {o.get('square', {}).get('queries')} queries")
    rows.append(("attacks", f"AutoAttack ({budget}), {aa['images']} images",
                 _rate(aa["images_per_s"]), *_against(aa, "img/s")))
  if t:
    for v in ("adv", "adv_consistent"):
      rows.append(("train", f"{v} step {_resnet(t)}, PGD-{t['attack_steps']}, batch "
                   f"{t['batch']}", f"{t[v]['ms']:.1f} ms", *_against(t[v], "ms")))
  if report.get("analysis"):
    n = report["analysis"]
    rows.append(("analysis", f"ResNet-50/{n['base_width']} features, {n['image_size']}px, "
                 f"batch {n['batch']}", _rate(n["images_per_s"]), "-", "-"))
  if report.get("dissection"):
    d = report["dissection"]
    what = (f"{d['units']} units {d['map'][0]}x{d['map'][1]}, {d['masks'][0]}px masks, "
            f"{d['concepts']} concepts")
    for name, p in d["passes"].items():
      rows.append(("dissection", f"{name}: {what}", _rate(p["images_per_s"]), "-", "-"))
    rows.append(("dissection", f"all 3 passes (Broden's {d['broden_images']:,} images: "
                 f"{d['broden_seconds']:,.0f} s)", _rate(d["images_per_s"]), "-", "-"))
  if report.get("scaling"):
    for e in report["scaling"]["entries"]:
      rows.append(("scaling", f"adv step on {e['devices']} device(s), batch {e['batch']}",
                   _rate(e["images_per_s"]), "-", f"efficiency {e['efficiency']:.2f}"))
  header = ("section", "what", "JAX", "torch", "ratio")
  widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
  line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
  torch = report["torch"]
  title = (f"{report['device_count']} x {report['device_kind']} ({report['backend']}), size "
           f"{report['size']}, jax {report['jax']}, torch "
           f"{torch['device'] or 'none: ' + torch['why_not']}")
  return "\n".join([title, line(header), line(["-" * w for w in widths])]
                   + [line(r) for r in rows])


def bench_device():
  """`python -m interp_jax.bench device`."""
  try:
    report = run_check(FLAGS.device_size, FLAGS.device_sections, FLAGS.repeats,
                       FLAGS.device_out)
  except UserError as e:
    raise SystemExit(f"bench device: {e}") from None
  print(table(report))
