"""concept_shapes: procedural images with known classes, a class tree and concept masks.

Each image holds one object whose class is its *shape*, drawn in one colour
and one texture at a random position, scale and rotation, over a background
of another colour and texture. Every pixel's concepts are known, so network
dissection can score units against shape, colour and texture masks; the
class tree (round / angular / linear shapes) gives the `hierarchy` class
similarity of the consistency metric.

    images, labels, seg = render(np.random.default_rng(0), n=8, size=32)
    masks = concept_masks(seg)      # bool [8, num_concepts, 32, 32]

`seg[..., 0]` holds shape id + 1 on the object (0 elsewhere), `seg[..., 1]`
the colour id + 1 of every pixel and `seg[..., 2]` its texture id + 1.
Generation is vectorised numpy (tens of thousands of images a second); the
TFDS builder in `builders.py` stores it once as array_record.
"""

import numpy as np

SHAPES = ("disk", "ring", "crescent", "triangle", "square", "star",
          "bar", "cross", "chevron")
CLASS_TREE = {
    "round": ["disk", "ring", "crescent"],
    "angular": ["triangle", "square", "star"],
    "linear": ["bar", "cross", "chevron"],
}
COLOURS = {
    "red": (220, 45, 45), "green": (45, 170, 70), "blue": (50, 85, 225),
    "yellow": (230, 210, 50), "magenta": (200, 55, 200), "cyan": (50, 200, 210),
    "orange": (240, 140, 35), "grey": (150, 150, 150),
}
TEXTURES = ("solid", "stripes", "checker", "dots")
CONCEPTS = (tuple(f"shape/{s}" for s in SHAPES)
            + tuple(f"colour/{c}" for c in COLOURS)
            + tuple(f"texture/{t}" for t in TEXTURES))

_PALETTE = np.array(list(COLOURS.values()), np.float32)


def _shape_mask(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Inside-test of a shape in its own frame, where the object has radius ~1."""
  r = np.hypot(x, y)
  name = SHAPES[shape]
  if name == "disk":
    return r <= 1.0
  if name == "ring":
    return (r <= 1.0) & (r >= 0.55)
  if name == "crescent":
    return (r <= 1.0) & (np.hypot(x - 0.5, y) >= 0.78)
  if name == "triangle":  # equilateral, circumradius 1: three half-planes at distance 0.5
    angles = np.deg2rad([-90.0, 30.0, 150.0])
    edge = [x * np.cos(a) + y * np.sin(a) for a in angles]
    return np.maximum(np.maximum(edge[0], edge[1]), edge[2]) <= 0.5
  if name == "square":
    return np.maximum(np.abs(x), np.abs(y)) <= 0.75
  if name == "star":
    theta = np.arctan2(y, x)
    return r <= 0.4 + 0.6 * (0.5 + 0.5 * np.cos(5 * theta)) ** 2
  if name == "bar":
    return (np.abs(x) <= 1.0) & (np.abs(y) <= 0.3)
  if name == "cross":
    return (((np.abs(x) <= 1.0) & (np.abs(y) <= 0.26))
            | ((np.abs(y) <= 1.0) & (np.abs(x) <= 0.26)))
  if name == "chevron":
    return (np.abs(y - (np.abs(x) - 0.35)) <= 0.27) & (np.abs(x) <= 0.95)
  raise ValueError(f"unknown shape {name}")


def _texture(kind: np.ndarray, u: np.ndarray, v: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
  """Intensity in {0.45, 1} per pixel for textures [n]; u, v pixel grids [n, H, W]."""
  n = kind.shape[0]
  f32 = lambda a: a.astype(np.float32)[:, None, None]
  phi = f32(rng.uniform(0, np.pi, n))
  period = f32(rng.uniform(4.0, 6.0, n))
  offset_a, offset_b = f32(rng.uniform(0, 6.0, n)), f32(rng.uniform(0, 6.0, n))
  out = np.ones(u.shape, np.float32)
  for k in (1, 2, 3):  # each pattern only where it is drawn: this is the hot loop
    sel = kind == k
    if not sel.any():
      continue
    us, vs, c, s = u[sel], v[sel], np.cos(phi[sel]), np.sin(phi[sel])
    a = (us * c + vs * s + offset_a[sel]) / period[sel]
    if k == 1:
      on = np.floor(2 * a) % 2 == 0
    else:
      b = (vs * c - us * s + offset_b[sel]) / period[sel]
      if k == 2:
        on = (np.floor(a) + np.floor(b)) % 2 == 0
      else:
        on = np.hypot(a - np.floor(a) - 0.5, b - np.floor(b) - 0.5) >= 0.3
    out[sel] = np.where(on, 1.0, 0.45)
  return out


def render(rng: np.random.Generator, n: int, size: int = 32,
           noise: float = 0.04) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Draws n images.

  Args:
    rng: the only source of randomness; equal generators give equal images.
    n: number of images.
    size: height and width in pixels.
    noise: standard deviation of additive pixel noise, in [0, 1] units.

  Returns:
    images uint8 [n, size, size, 3], labels int32 [n] (shape ids) and the
    segmentation uint8 [n, size, size, 3] described in the module docstring.
  """
  num_colours = len(COLOURS)
  labels = rng.integers(0, len(SHAPES), n).astype(np.int32)
  fg_colour = rng.integers(0, num_colours, n)
  bg_colour = (fg_colour + rng.integers(1, num_colours, n)) % num_colours  # never equal
  fg_texture = rng.integers(0, len(TEXTURES), n)
  bg_texture = rng.integers(0, len(TEXTURES), n)
  radius = rng.uniform(0.24, 0.40, n) * size
  margin = radius * 0.8
  cx = rng.uniform(margin, size - margin)
  cy = rng.uniform(margin, size - margin)
  rot = rng.uniform(0, 2 * np.pi, n)
  radius, cx, cy, rot = (a.astype(np.float32)[:, None, None] for a in (radius, cx, cy, rot))

  grid = np.arange(size, dtype=np.float32) + 0.5
  v, u = np.meshgrid(grid, grid, indexing="ij")  # v: rows, u: columns
  u = np.broadcast_to(u, (n, size, size))
  v = np.broadcast_to(v, (n, size, size))
  du, dv = (u - cx) / radius, (v - cy) / radius
  c, s = np.cos(rot), np.sin(rot)
  x, y = c * du + s * dv, -s * du + c * dv

  inside = np.zeros((n, size, size), bool)
  for shape in range(len(SHAPES)):
    sel = labels == shape
    if sel.any():
      inside[sel] = _shape_mask(shape, x[sel], y[sel])

  inside4 = inside[..., None]
  colour = np.where(inside4, _PALETTE[fg_colour][:, None, None], _PALETTE[bg_colour][:, None, None])
  shade = np.where(inside, _texture(fg_texture, u, v, rng), _texture(bg_texture, u, v, rng))
  img = colour * shade[..., None]
  # Uniform integer noise of the requested standard deviation: cheaper than
  # Gaussian noise, which was a third of the generation time.
  half = max(int(round(noise * 255 * np.sqrt(3.0))), 0)
  if half:
    img += rng.integers(-half, half + 1, img.shape, dtype=np.int16)
  images = np.clip(img + 0.5, 0, 255).astype(np.uint8)  # +0.5: round to nearest

  seg = np.empty((n, size, size, 3), np.uint8)
  col = lambda a: (a + 1).astype(np.uint8)[:, None, None]
  seg[..., 0] = np.where(inside, col(labels), 0)
  seg[..., 1] = np.where(inside, col(fg_colour), col(bg_colour))
  seg[..., 2] = np.where(inside, col(fg_texture), col(bg_texture))
  return images, labels, seg


def concept_masks(seg: np.ndarray) -> np.ndarray:
  """Expands segmentations [..., H, W, 3] into bool masks [..., len(CONCEPTS), H, W]."""
  groups = ((0, len(SHAPES)), (1, len(COLOURS)), (2, len(TEXTURES)))
  masks = [seg[..., ch] == i + 1 for ch, count in groups for i in range(count)]
  return np.stack(masks, axis=-3)
