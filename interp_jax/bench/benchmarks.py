"""python -m interp_jax.bench attacks|train|analyze|dissect|explain|autoattack|all [--repeats=5]

Prints each figure beside a reference measured in the same run, and their
ratio. Nothing here is asserted: timings belong in notes, not in tests. The
first line names the paths timed: the backend and device count, unrolled or
scanned attack steps, and the first conv's fast input gradient on or off.

attacks: each attack's time against its gradient floor (k separate jitted
  input-gradient passes, k = the attack's gradient count) on small_cnn,
  batch 128, 32x32x3; with torch and torchattacks installed (`pip install
  'interp_jax[torch]'`), also torchattacks' time for the same architecture.
  Then the same attacks on PlainCNN, a Flax CNN as a user writes one
  (nn.max_pool, no house fast paths), adapted with models.adapt: with and
  without models.cpu_fast's rewrite, and torchattacks on the same weights.
analyze: the streaming top-k scorer (forward + per-layer top-k merge) over
  the forward passes alone, batch 128, k = 50, every layer of small_cnn, over a
  stream of 32 batches: merged many batches at a time, as the analysis does, and
  merged inside each step.
dissect: dissection's three passes (range, histogram, IoU on real and adversarial
  images) against the four forward passes they need, every spatial layer of
  --model (small_cnn by default; resnet18, vgg11 ... with random weights).
explain: the prediction difference of every neuron of the last spatial layer and
  the last dense layer (one vmap) against that many forward passes of the batch.
autoattack: AutoAttack standard in JAX against torchattacks' four stages at the
  published budget, on the same weights and images (bench/autoattack_bench.py).
device: the device check of a lent GPU or TPU (a CPU at small sizes): attacks, train
  steps, analysis, dissection and scaling of the project's networks, beside their
  PyTorch peers, as a table and a JSON (bench/device_check.py).
train: the step time of standard, adv and adv_consistent training (the
  concepts config), with adv_consistent / adv and adv / ((k+1) x standard);
  with torch installed, the JAX / PyTorch ratio of the standard step.
"""

import statistics

from absl import app, flags
import jax
import jax.numpy as jnp

from interp_jax import cpu_devices, models
from interp_jax.attacks import gradient
from interp_jax.bench import attack_bench, autoattack_bench, device_check
from interp_jax.bench.harness import paired, small_cnn_inputs, timed, torch_peer
from interp_jax.measures import consistency
from interp_jax.models import common

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("size", 32, "Image height and width.")
flags.DEFINE_integer("repeats", 5, "Timed repetitions; the median is reported.")
flags.DEFINE_integer("steps", 10, "Steps of the iterative attacks.")
flags.DEFINE_integer("analyze_batches", 32, "Batches streamed by bench analyze.")
flags.DEFINE_integer("stream_rows", -1, "bench analyze: rows merged at once by the top-k "
                     "scorer (-1: the backend's default, consistency.rows_per_merge()).")
flags.DEFINE_integer("train_attack_steps", 3, "Steps of the training attack (bench train).")
flags.DEFINE_integer("mask_size", 0, "bench dissect: the masks' height and width "
                     "(0: the image size; NetDissect's Broden: 112 for 224 images).")
flags.DEFINE_string("model", "small_cnn", "Model of bench dissect and explain (small_cnn, "
                    "resnet18, vgg11, ...; random weights, 9 classes).")



def _train_step_ms(variant: str, repeats: int) -> tuple[float, object]:
  """Median ms of one jitted, sharded train step of the concepts config's variant."""
  from interp_jax import sharding
  from interp_jax.training import objective as objective_lib, steps
  from interp_jax.default_config import base_config, select_variant
  config = select_variant(base_config(), variant)
  config.adv.steps = FLAGS.train_attack_steps
  model = models.create(config.model.name, 9, **config.model.options)
  objective = objective_lib.from_config(config, model.layer_names)
  mesh = sharding.data_mesh()
  tx = steps.make_optimizer(config.optimizer, 1000)
  state = jax.jit(lambda k: steps.create_train_state(model, tx, (FLAGS.size, FLAGS.size, 3), k),
                  out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  step = jax.jit(steps.make_train_step(model, objective), donate_argnums=0)
  x = jax.random.uniform(jax.random.key(1), (FLAGS.batch, FLAGS.size, FLAGS.size, 3))
  batch = sharding.put_batch(mesh, {"image": x, "label": jnp.arange(FLAGS.batch) % 9})
  holder = [state]

  def one():
    holder[0], metrics = step(holder[0], batch)
    return metrics

  return timed(one, repeats), objective


def bench_train():
  times = {v: _train_step_ms(v, FLAGS.repeats) for v in ("standard", "adv", "adv_consistent")}
  k = times["adv"][1].gradient_passes()
  std, adv, cons = (times[v][0] for v in ("standard", "adv", "adv_consistent"))
  print(f"train step of small_cnn, batch {FLAGS.batch}, {FLAGS.size}x{FLAGS.size}x3, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s); training attack "
        f"{times['adv'][1].attack} with k={k} steps; consistent layers "
        f"{times['adv_consistent'][1].layers}")
  print(f"{'variant':<16}{'ms/step':>10}")
  for v, (ms, _) in times.items():
    print(f"{v:<16}{ms:>10.1f}")
  print(f"adv_consistent / adv          = {cons / adv:.3f}x   (goal <= 1.05)")
  print(f"adv / ((k+1) x standard step) = {adv / ((k + 1) * std):.3f}x")
  peer = torch_peer()
  if peer is not None:
    torch_ms = peer.train_step_ms(FLAGS.batch, FLAGS.size, FLAGS.repeats)
    print(f"standard step, PyTorch (same network, Adam): {torch_ms:.1f} ms; "
          f"JAX / PyTorch = {std / torch_ms:.2f}x")


def bench_analyze():
  """The streaming top-k scorer against the forward passes that feed it, over a stream
  of `--analyze_batches` distinct batches (the demo's test split is 4,000 images):
  the analysis's path (each jitted step returns its activations; a MergeQueue merges
  `merge_group` batches at a time, the last ones included), and a merge inside each
  step for comparison."""
  model, variables, x, _ = small_cnn_inputs(FLAGS.batch, FLAGS.size)
  layers = tuple(n for n in model.layer_names if n != "logits")
  k = 50
  stream = [jax.random.uniform(jax.random.key(10 + i), x.shape)
            for i in range(FLAGS.analyze_batches)]
  ids = [jnp.arange(i * FLAGS.batch, (i + 1) * FLAGS.batch, dtype=jnp.int32)
         for i in range(FLAGS.analyze_batches)]

  def forward(x):
    _, feats = models.apply_with_features(model, variables, x, layers)
    return {l: consistency.neuron_activations(f) for l, f in feats.items()}

  def merge(tallies, rows, counted):
    return {l: consistency.topk_update(tallies[l], a, rows["index"], counted)
            for l, a in rows["acts"].items()}

  widths = {l: a.shape[-1] for l, a in jax.eval_shape(forward, x).items()}
  fwd = jax.jit(forward)
  step = jax.jit(lambda x, i: {"acts": forward(x), "index": i})
  merged = jax.jit(lambda t, x, i: {l: consistency.topk_update(t[l], a, i)
                                    for l, a in forward(x).items()})
  empty = {l: consistency.topk_init(w, k + 1) for l, w in widths.items()}  # k + 1, as kept
  group = consistency.merge_group(
      FLAGS.batch, None if FLAGS.stream_rows < 0 else FLAGS.stream_rows)

  def forward_stream():
    return [fwd(x) for x in stream]

  def queued():
    queue, tallies = consistency.MergeQueue(merge, group), empty
    for x, i in zip(stream, ids):
      tallies = queue.add(tallies, step(x, i))
    return queue.flush(tallies)

  def merged_in_step():
    tallies = empty
    for x, i in zip(stream, ids):
      tallies = merged(tallies, x, i)
    return tallies

  print(f"consistency scorer on small_cnn, batch {FLAGS.batch}, k={k}, layers {layers} "
        f"({sum(widths.values())} neurons), a stream of {len(stream)} batches")
  default = " (the analysis's)" if FLAGS.stream_rows < 0 else ""
  for name, run in ((f"merged {group} batches at a time{default}", queued),
                    ("a merge in each step", merged_in_step)):
    fwd_ms, score_ms, ratio, low, high = paired(forward_stream, run, FLAGS.repeats)
    print(f"{name}: forward passes alone {fwd_ms / len(stream):.2f} ms/batch; with the "
          f"top-k {score_ms / len(stream):.2f} ms/batch; ratio {ratio:.3f}x (interleaved "
          f"pairs, quartiles {low:.3f}-{high:.3f}; goal <= 1.05)")


def _bench_model(batch, size):
  """FLAGS.model with random weights, its input batch, and its layers with spatial maps."""
  model = models.create(FLAGS.model, num_classes=9)
  x = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
  variables = model.init(jax.random.key(1), x[:1])
  shapes = jax.eval_shape(lambda x: models.apply_with_features(model, variables, x)[1], x[:1])
  spatial = tuple(n for n in model.layer_names if n != "logits" and shapes[n].ndim == 4)
  return model, variables, x, spatial


def bench_dissect():
  """Dissection's three passes against the forward passes they need (one per pass, two in
  the IoU pass: real and adversarial images), on concept_shapes-like masks."""
  import numpy as np
  from interp_jax import sharding
  from interp_jax.analysis.dissection import PassSteps
  from interp_jax.data import concept_shapes
  from interp_jax.measures import concept_iou as dis
  model, variables, x, layers = _bench_model(FLAGS.batch, FLAGS.size)
  images, _, seg = concept_shapes.render(np.random.default_rng(0), FLAGS.batch, FLAGS.size)
  if FLAGS.mask_size < 0:
    raise app.UsageError(f"--mask_size must be >= 0, got {FLAGS.mask_size}")
  if FLAGS.mask_size:  # each mask cell's top-left pixel (Broden: 112 x 112 masks)
    rows = np.arange(FLAGS.mask_size) * FLAGS.size // FLAGS.mask_size
    seg = seg[:, rows][:, :, rows]
  offsets = np.array([0, len(concept_shapes.SHAPES),
                      len(concept_shapes.SHAPES) + len(concept_shapes.COLOURS)])
  labels = np.where(seg > 0, seg.astype(np.int32) - 1 + offsets, -1).transpose(0, 3, 1, 2)
  x = jnp.asarray(images, jnp.float32) / 255
  mesh = sharding.data_mesh()
  batch = sharding.put_batch(mesh, {"image": x, "index": np.arange(FLAGS.batch),
                                    "mask": np.ones(FLAGS.batch, bool)})
  with_adv = sharding.put_batch(mesh, {**{k: np.asarray(v) for k, v in batch.items()},
                                       "labels": labels, "adversarial": np.asarray(x)})
  categories = np.repeat(np.arange(3), [len(concept_shapes.SHAPES), len(concept_shapes.COLOURS),
                                       len(concept_shapes.TEXTURES)]).astype(np.int32)
  steps = PassSteps(model, layers, None, mesh, False, categories)
  feats = jax.jit(lambda v, x: models.apply_with_features(model, v, x, layers)[1])
  widths = {l: f.shape[-1] for l, f in jax.eval_shape(feats, variables, x).items()}
  k = len(concept_shapes.CONCEPTS)
  state = {l: {"range": dis.range_init(c), "top": consistency.topk_init(c, 6)}
           for l, c in widths.items()}
  state = steps.first(state, variables, batch)
  ranges = {l: s["range"] for l, s in state.items()}
  hist = {l: dis.histogram_init(c, 2048) for l, c in widths.items()}
  t = {l: dis.thresholds(steps.second(hist, variables, batch, ranges)[l], ranges[l])[0]
       for l in layers}
  tally = {s: {l: dis.iou_init(c, k, 3) for l, c in widths.items()}
           for s in ("real", "adversarial")}
  key = jax.random.key(0)
  forward = lambda: feats(variables, batch["image"])
  timings = [paired(forward, fn, FLAGS.repeats * 4) for fn in (
      lambda: steps.first(state, variables, batch),
      lambda: steps.second(hist, variables, batch, ranges),
      lambda: steps.third(tally, variables, with_adv, t, key))]
  fwd = statistics.median(r for r, *_ in timings)
  (p1, p2, p3), (r1, r2, r3) = zip(*((ms, ratio) for _, ms, ratio, _, _ in timings))
  print(f"dissection of {FLAGS.model} {layers} ({sum(widths.values())} units), batch "
        f"{FLAGS.batch}, {FLAGS.size}x{FLAGS.size} images, {k} concepts in "
        f"{labels.shape[2]}x{labels.shape[3]} masks; each pass timed in "
        f"interleaved pairs with a forward pass")
  print(f"forward pass {fwd:.2f} ms; pass 1 (range, top images) {p1:.2f} ms = {r1:.2f}x; "
        f"pass 2 (histogram) {p2:.2f} ms = {r2:.2f}x; pass 3 (IoU, real + adversarial) "
        f"{p3:.2f} ms = {r3 / 2:.2f}x of its two forward passes")
  print(f"dissection against the 4 forward passes it needs: {(r1 + r2 + r3) / 4:.3f}x "
        f"(goal <= 1.15)")


def bench_explain():
  """The prediction difference of every neuron of a layer against (neurons) forward passes."""
  from interp_jax.measures import influence
  model, variables, x, spatial = _bench_model(FLAGS.batch, FLAGS.size)
  fwd = jax.jit(model.apply)
  fwd_ms = timed(lambda: fwd(variables, x), FLAGS.repeats * 4)
  print(f"prediction difference on {FLAGS.model}, batch {FLAGS.batch}; one forward pass "
        f"{fwd_ms:.2f} ms")
  last_dense = [n for n in model.layer_names if n not in spatial and n != "logits"][-1:]
  for layer in (spatial[-1], *last_dense):
    units = models.apply_with_features(model, variables, x[:1], (layer,))[1][layer].shape[-1]
    pd = jax.jit(lambda v, x, layer=layer: influence.prediction_difference(model, v, x, layer))
    ms = timed(lambda: pd(variables, x), FLAGS.repeats)
    print(f"{layer}: PD of all {units} neurons {ms:.1f} ms; {units} forward passes "
          f"{units * fwd_ms:.1f} ms; ratio {ms / (units * fwd_ms):.3f}x (goal <= 1.2)")


BENCHES = {"attacks": attack_bench.bench_attacks, "train": bench_train, "analyze": bench_analyze,
           "dissect": bench_dissect, "explain": bench_explain,
           "autoattack": autoattack_bench.bench_autoattack,
           "device": device_check.bench_device}


def paths() -> str:
  """Which per-backend paths the timings below took (they differ between CPU and GPU/TPU)."""
  return (f"backend {jax.default_backend()}, {jax.device_count()} device(s); attack steps "
          f"{'unrolled' if gradient.unroll_steps() else 'in a lax.scan'}; input_conv fast "
          f"input gradient {'on' if common.fast_input_grad() else 'off'}; top-k merges of up "
          f"to {consistency.rows_per_merge() or 'one batch of'} rows")


def main(argv):
  cpu_devices.split_cpu_into_cores()  # as the other command lines do (cli.parse_flags)
  print(paths())
  names = argv[1:] or ["all"]
  if names == ["all"]:
    names = list(BENCHES)
  unknown = [n for n in names if n not in BENCHES]
  if unknown:
    raise app.UsageError(f"unknown bench {unknown}; choose from {sorted(BENCHES)} or all")
  for name in names:
    BENCHES[name]()
