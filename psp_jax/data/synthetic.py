"""Synthetic scenes where an object's class depends on its surroundings (no files, NumPy only).

Grounds (ordinary classes, each with its own colour and texture): sky, water, road, grass,
and sand. Objects are drawn on an elliptical "plate" (a neutral grey disc with a dark rim)
that hides the ground under and right around them; plate and glyph are the object's pixels.
Two glyphs are shared between classes:

- the *vehicle* glyph (hull, cabin, windows) is a ``boat`` on water and a ``car`` on road;
- the *animal* glyph (spotted body, head, legs) is a ``bird`` in the sky and a ``cow`` on grass.

Their pixels, plate included, are drawn from the same distribution whatever the class (a test
checks it), so a look-alike's class is decided only by context. Two ordinary objects
(``tree``, ``sign``) have their own look. Scene layouts:

- near context (30%): one ground, or two split by a line; the ground around an object's plate
  decides its class (objects span `object_size` of the image side, so large ones put the
  context far from their centre);
- far context (70%, `far_context_prob`): sand, with tiles of the deciding ground on a 3x3 grid
  OUTNUMBERING tiles of its twin ground (water vs road, sky vs grass; 2:1, 3:1 or 3:2); the
  objects sit on sand in the other cells and take the class of the MAJORITY ground. The
  nearest tile is often the minority one, so only a view of the whole image is right.

Measured gap (``python experiments/synthetic_context_gap.py [--seed 1]`` with its defaults:
193x193 scenes, ResNet-18 width 8, classic stem, output stride 8, no aux head, Adam 2e-3 with
poly decay, batch 8, 400 steps, the same generated training stream for both models, 128
validation scenes; ~4 minutes in all on 2 CPU cores shared with other work). Seed 0 / seed 1:

  ======================  ===========  ===========  ===============  ==========================
  model                   pixel acc    mIoU         look-alike mIoU  far-context look-alikes
                                                                     called the twin class
  FCN (context='none')    93.9 / 93.4  83.8 / 81.0  68.4 / 66.4      23.6% / 21.0%
  PSPNet (context='ppm')  95.1 / 95.1  87.7 / 87.0  83.0 / 83.7       3.1% /  2.7%
  ======================  ===========  ===========  ===============  ==========================

Near-context look-alikes are 86-91% right for both models (~2% twin confusion): the gap is
the far-context scenes. At 65-129 px there is no gap: the dilated ResNet-18's receptive
field spans the whole image, so the FCN resolves even far-context scenes.

API: ``SYNTHETIC_CLASSES``, ``SYNTHETIC_PALETTE``, ``generate_scene``, ``generate_scenes``,
``scene_seed``, ``synthetic_classes`` (names/palette for a chosen subset), ``LOOKALIKE_GROUPS``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "sky", "water", "road", "grass",      # grounds
    "sand",                               # neutral ground of "far context" scenes
    "boat", "car", "bird", "cow",         # look-alikes: boat/car share a glyph, bird/cow share one
    "tree", "sign",                       # ordinary objects with their own look
)
SYNTHETIC_PALETTE = np.array([
    [135, 206, 235], [30, 80, 200], [90, 90, 90], [60, 170, 60], [230, 210, 160],
    [255, 140, 0], [220, 20, 60], [255, 255, 0], [140, 70, 20],
    [0, 100, 0], [255, 0, 255],
], dtype=np.uint8)

GROUNDS: tuple[str, ...] = ("sky", "water", "road", "grass")
NEUTRAL_GROUND = "sand"
# glyph -> {ground: class}. A glyph is placed only on grounds listed here.
GLYPH_CLASSES: dict[str, dict[str, str]] = {
    "vehicle": {"water": "boat", "road": "car"},
    "animal": {"sky": "bird", "grass": "cow"},
    "tree": {"grass": "tree", "road": "tree"},
    "sign": {"road": "sign", "grass": "sign", "water": "sign", "sky": "sign"},
}
# The ground that competes with each deciding ground in far-context scenes (same glyph, other class).
TWIN_GROUNDS = {"water": "road", "road": "water", "sky": "grass", "grass": "sky"}
LOOKALIKE_GROUPS: tuple[tuple[str, ...], ...] = (("boat", "car"), ("bird", "cow"))

# Colours shared by every glyph instance whatever its class (the look-alike property).
_BODY_COLOURS = np.array([[200, 40, 40], [240, 240, 240], [40, 40, 40], [230, 200, 40],
                          [120, 60, 160], [250, 130, 30]], dtype=np.float32)

DEFAULTS = dict(
    classes=SYNTHETIC_CLASSES,   # subset (in this order or any order) -> label = index in it
    num_objects=(1, 4),          # inclusive range of objects per scene
    object_size=(0.25, 0.7),     # plate diameter as a fraction of the shorter image side
    rim=0.12,                    # dark rim width as a fraction of the plate radius
    two_regions_prob=0.2,        # probability that a scene has two grounds split by a line
    far_context_prob=0.7,        # probability of a "far context" scene: sand, with patches of the
                                 # deciding ground outnumbering patches of its twin ground
    far_object_size=(0.6, 0.95), # object diameter in far-context scenes, fraction of a grid cell
    lookalike_prob=0.75,         # probability that an object uses a shared (look-alike) glyph
    noise=8.0,                   # std of per-pixel Gaussian noise added to the whole image
)


def synthetic_classes(classes: Sequence[str] | None = None) -> tuple[tuple[str, ...], np.ndarray]:
  """(class names, palette (C, 3) uint8) for a subset of `SYNTHETIC_CLASSES` (default: all)."""
  classes = tuple(SYNTHETIC_CLASSES if classes is None else classes)
  unknown = [c for c in classes if c not in SYNTHETIC_CLASSES]
  if unknown:
    raise ValueError(f"unknown synthetic classes {unknown}; choose from {SYNTHETIC_CLASSES}")
  if len(set(classes)) != len(classes):
    raise ValueError(f"synthetic classes must be distinct, got {classes}")
  if not any(c in GROUNDS for c in classes):
    raise ValueError(f"synthetic classes need at least one ground among {GROUNDS}, got {classes}")
  palette = np.stack([SYNTHETIC_PALETTE[SYNTHETIC_CLASSES.index(c)] for c in classes])
  return classes, palette


def _ground_texture(name: str, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
  """Float32 (H, W, 3) texture of a ground class (distinctive colour and pattern)."""
  h, w = yy.shape
  phase = rng.uniform(0, 2 * np.pi)
  if name == "sky":
    t = (yy / max(h - 1, 1))[..., None]
    base = (1 - t) * np.array([110, 170, 240]) + t * np.array([190, 220, 250])
    return base + 6 * np.sin(xx / 9.0 + phase)[..., None]
  if name == "water":
    wave = np.sin(yy * 1.3 + 2.0 * np.sin(xx / 6.0 + phase))[..., None]
    return np.array([25, 70, 170]) + wave * np.array([15, 30, 45])
  if name == "road":
    lane = ((np.abs(yy - h * rng.uniform(0.3, 0.7)) < 1.2) & ((xx + phase * 3) % 12 < 6))[..., None]
    return np.where(lane, np.array([230, 230, 230]), np.array([85, 85, 90])) + rng.normal(0, 6, (h, w, 1))
  if name == "sand":
    ripple = np.sin(xx * 0.7 + yy * 0.4 + phase)[..., None]
    return np.array([215, 195, 150]) + ripple * np.array([10, 10, 8]) + rng.normal(0, 5, (h, w, 1))
  if name == "grass":
    blades = np.sin(xx * 2.1 + phase + rng.normal(0, 0.6, (1, w)))[..., None]
    return np.array([60, 150, 50]) + blades * np.array([15, 35, 10])
  raise ValueError(name)


def _draw_glyph(glyph: str, u: np.ndarray, v: np.ndarray, colour: np.ndarray, img: np.ndarray,
                plate: np.ndarray) -> None:
  """Paint `glyph` in place onto `img` (float (h, w, 3) patch) where `plate` is True.

  u, v: local coordinates, (0, 0) at the plate centre, radius 1 at the plate edge.
  """
  def paint(mask, col):
    img[mask & plate] = col

  if glyph == "vehicle":
    hull = (np.abs(u / 0.75) ** 4 + np.abs((v - 0.15) / 0.3) ** 4) <= 1
    cabin = (np.abs(u) < 0.35) & (v > -0.45) & (v < -0.1)
    window = cabin & (np.abs(v + 0.28) < 0.1) & (np.abs(u) % 0.25 < 0.17)
    paint(hull | cabin, colour)
    paint(window, np.array([170, 220, 240]))
    paint((np.abs(v - 0.2) < 0.04) & (np.abs(u) < 0.7), colour * 0.5)
  elif glyph == "animal":
    body = ((u + 0.1) / 0.55) ** 2 + (v / 0.3) ** 2 <= 1
    head = ((u - 0.55) / 0.2) ** 2 + ((v + 0.2) / 0.17) ** 2 <= 1
    legs = (v > 0.2) & (v < 0.6) & ((np.abs(u + 0.45) < 0.07) | (np.abs(u - 0.25) < 0.07))
    spots = body & (np.sin(u * 13) * np.sin(v * 17) > 0.5)
    paint(body | head | legs, colour)
    paint(spots, 255 - colour)
    paint(((u - 0.62) ** 2 + (v + 0.25) ** 2) < 0.003, np.array([0, 0, 0]))
  elif glyph == "tree":
    crown = (u / 0.55) ** 2 + ((v + 0.2) / 0.5) ** 2 <= 1
    trunk = (np.abs(u) < 0.1) & (v > 0.2) & (v < 0.8)
    paint(trunk, np.array([110, 70, 30]))
    paint(crown, np.array([20, 90, 25]) + 25 * (np.sin(u * 20) * np.cos(v * 20) > 0)[..., None][crown & plate])
  elif glyph == "sign":
    diamond = np.abs(u) + np.abs(v) <= 0.65
    paint(diamond, np.array([210, 20, 20]))
    paint(np.abs(u) + np.abs(v) <= 0.4, np.array([250, 250, 250]))
    paint((np.abs(u) < 0.25) & (np.abs(v) < 0.06), np.array([210, 20, 20]))
  else:
    raise ValueError(glyph)


def _ground_layout(rng: np.random.Generator, h: int, w: int, grounds: list[str],
                   cls_index: dict[str, int], opt: dict):
  """(region ids (H, W), [(region id, drawn ground)], slots [(box (y0, x0, y1, x1), deciding
  ground)] where objects go, object size range, far-context flag). The deciding ground names
  the class of a look-alike in its slot."""
  region = np.zeros((h, w), np.int8)
  layout = rng.random()
  side = min(h, w)
  far = NEUTRAL_GROUND in cls_index and layout < opt["far_context_prob"]
  if far:
    # Far context: sand, with patches of the deciding ground and FEWER patches of its twin
    # ground on a 3x3 grid of cells; objects sit on sand in the other cells. The majority
    # ground decides, so the nearest patch can mislead: only a global view is right.
    g = grounds[int(rng.integers(len(grounds)))]
    twin = TWIN_GROUNDS.get(g)
    if twin not in cls_index:
      others = [x for x in grounds if x != g]
      twin = others[int(rng.integers(len(others)))] if others else g
    n_major, n_minor = [(2, 1), (3, 1), (3, 2)][int(rng.integers(3))]
    cells = rng.permutation(9)
    ch, cw = h / 3, w / 3
    boxes = [(int(round(c // 3 * ch)), int(round(c % 3 * cw)), int(round((c // 3 + 1) * ch)),
              int(round((c % 3 + 1) * cw))) for c in cells]
    regions = [(0, NEUTRAL_GROUND), (1, g), (2, twin)]
    inset = rng.uniform(0, 0.12)  # one inset for all tiles: areas follow the tile counts
    for k in range(n_major + n_minor):
      y0, x0, y1, x1 = boxes[k]
      iy, ix = int(inset * (y1 - y0)), int(inset * (x1 - x0))
      region[y0 + iy:y1 - iy, x0 + ix:x1 - ix] = 1 if k < n_major else 2
    slots = [(b, g) for b in boxes[n_major + n_minor:]]
    size_range = [f * 3 * min(ch, cw) / side for f in opt["far_object_size"]]
  elif len(grounds) > 1 and layout < opt["far_context_prob"] + opt["two_regions_prob"]:
    g1, g2 = (grounds[i] for i in rng.choice(len(grounds), 2, replace=False))
    if rng.random() < 0.5:
      cut = int(rng.uniform(0.35, 0.65) * h)
      region[cut:] = 1; boxes = [(0, 0, cut, w), (cut, 0, h, w)]
    else:
      cut = int(rng.uniform(0.35, 0.65) * w)
      region[:, cut:] = 1; boxes = [(0, 0, h, cut), (0, cut, h, w)]
    regions = [(0, g1), (1, g2)]
    slots = [(boxes[0], g1), (boxes[1], g2)]
    size_range = opt["object_size"]
  else:
    g = grounds[int(rng.integers(len(grounds)))]
    regions = [(0, g)]
    slots = [((0, 0, h, w), g)]
    size_range = opt["object_size"]
  return region, regions, slots, size_range, far


def _draw_object(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, box, ground: str,
                 glyph: str, size_range, side: int, cls_index: dict[str, int], opt: dict,
                 yy: np.ndarray, xx: np.ndarray) -> None:
  """Draw one glyph object of `glyph` whose centre lies in `box` (in place)."""
  h, w = label.shape
  y0, x0, y1, x1 = box
  diam = rng.uniform(*size_range) * side
  ry = min(diam / 2, (y1 - y0) / 2 - 0.5)
  rx = min(diam / 2 * rng.uniform(1.0, 1.3), (x1 - x0) / 2 - 0.5)
  if ry < 2 or rx < 2:
    return
  # The centre stays inside the region so the ground at the centre names the class.
  cy = rng.uniform(y0 + ry, y1 - ry)
  cx = rng.uniform(x0 + rx, x1 - rx)
  ya, yb = max(int(cy - ry), 0), min(int(np.ceil(cy + ry)) + 1, h)
  xa, xb = max(int(cx - rx), 0), min(int(np.ceil(cx + rx)) + 1, w)
  v = (yy[ya:yb, xa:xb] - cy) / ry
  u = (xx[ya:yb, xa:xb] - cx) / rx
  if rng.random() < 0.5:
    u = -u  # glyphs face either way
  rad = np.sqrt(u * u + v * v)
  plate = rad <= 1
  patch = image[ya:yb, xa:xb]
  grey = rng.uniform(120, 170)
  patch[plate] = grey
  patch[plate & (rad > 1 - opt["rim"])] = grey * 0.35
  colour = _BODY_COLOURS[int(rng.integers(len(_BODY_COLOURS)))]
  _draw_glyph(glyph, u, v, colour, patch, plate & (rad <= 1 - opt["rim"]))
  label[ya:yb, xa:xb][plate] = cls_index[GLYPH_CLASSES[glyph][ground]]


def generate_scene(seed: int, size: tuple[int, int] = (64, 64), **options) -> tuple[np.ndarray, np.ndarray]:
  """One scene: (image uint8 (H, W, 3), label uint8 (H, W)), a pure function of (seed, size, options).

  Labels index `options['classes']` (default `SYNTHETIC_CLASSES`); every pixel is labelled (no
  ignore). Options (defaults in `DEFAULTS`): classes, num_objects (lo, hi), object_size
  (lo, hi) fractions of the shorter side, rim, two_regions_prob, lookalike_prob, noise.
  Objects whose class (given their ground) is not in `classes` are not drawn.
  """
  unknown = set(options) - set(DEFAULTS)
  if unknown:
    raise TypeError(f"unknown synthetic scene options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
  opt = {**DEFAULTS, **options}
  classes, _ = synthetic_classes(opt["classes"])
  cls_index = {c: i for i, c in enumerate(classes)}
  h, w = int(size[0]), int(size[1])
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

  grounds = [g for g in GROUNDS if g in cls_index]
  side = min(h, w)
  region, regions, slots, size_range, far = _ground_layout(rng, h, w, grounds, cls_index, opt)
  image = np.zeros((h, w, 3), np.float32)
  label = np.zeros((h, w), np.uint8)
  for r, drawn in regions:
    m = region == r
    if m.any():
      image[m] = _ground_texture(drawn, rng, yy, xx)[m]
      label[m] = cls_index[drawn]

  lo, hi = opt["num_objects"]
  lookalike_classes = sum(LOOKALIKE_GROUPS, ())
  n_objects = int(rng.integers(lo, hi + 1))
  if far:
    n_objects = min(n_objects, len(slots))
  for k in range(n_objects):
    (y0, x0, y1, x1), ground = slots[k] if far else slots[int(rng.integers(len(slots)))]
    lookalike = rng.random() < opt["lookalike_prob"]
    candidates = [gl for gl, table in GLYPH_CLASSES.items()
                  if ground in table and table[ground] in cls_index
                  and (table[ground] in lookalike_classes) == lookalike]
    if not candidates:
      candidates = [gl for gl, table in GLYPH_CLASSES.items() if table.get(ground) in cls_index]
    if not candidates:
      continue
    glyph = candidates[int(rng.integers(len(candidates)))]
    _draw_object(rng, image, label, (y0, x0, y1, x1), ground, glyph, size_range, side, cls_index,
                 opt, yy, xx)

  if opt["noise"]:
    image += rng.normal(0, opt["noise"], image.shape).astype(np.float32)
  return np.clip(image + 0.5, 0, 255).astype(np.uint8), label


def scene_seed(seed: int, index: int) -> int:
  """The seed of scene `index` of the stream `seed` (used by `generate_scenes` and the builder)."""
  return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0])


def generate_scenes(num: int, size: tuple[int, int] = (64, 64), seed: int = 0, **options
                    ) -> tuple[np.ndarray, np.ndarray]:
  """`num` scenes stacked: (images uint8 (N, H, W, 3), labels uint8 (N, H, W)).

  Scene i is `generate_scene(scene_seed(seed, i), size, **options)`, so any prefix of the stream
  is the same whatever `num`.
  """
  images = np.zeros((num, size[0], size[1], 3), np.uint8)
  labels = np.zeros((num, size[0], size[1]), np.uint8)
  for i in range(num):
    images[i], labels[i] = generate_scene(scene_seed(seed, i), size, **options)
  return images, labels
