"""Procedural scenes behind the offline demo data sets.

One call of :func:`render_scene` draws a small RGB image of a few flat
shapes in front of a tilted background plane, together with everything the
three demo tasks need: a semantic label map, a metric depth map and, per
object, its class, polygon and binary mask. Only numpy and OpenCV are used,
and every random draw comes from the generator passed in, so a scene is a
pure function of that generator's state.

Cues a model can learn from:

- colour: each class has its own base hue, jittered, and with probability
  ``distractor_prob`` an object takes a random hue, so shape matters too;
- depth: the background is a plane that recedes towards the top of the
  image; objects are closer, their image size shrinks with their distance,
  and every surface is darker the farther away it is. Circles are spheres
  (their depth bulges towards the camera), squares and triangles are flat.

Objects never overlap, so each visible mask is the whole polygon.
"""
from typing import Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np

#: Object classes, in label order (semantic labels 1..3, COCO ids 1..3).
SHAPE_CLASSES = ('circle', 'square', 'triangle')
#: Base hue of each shape class (OpenCV HSV, hue in [0, 180)).
SHAPE_HUES = (0, 60, 120)
#: Circumradius factor per class, so the classes cover similar areas.
SHAPE_SCALES = (0.9, 1.0, 1.3)
#: NYU scene categories the demo scenes are tagged with (all of them are in
#: ``mmseg.datasets.NYUDataset.METAINFO['classes']``); each one tints the
#: background with its own hue.
SCENE_NAMES = ('bedroom', 'kitchen', 'living_room', 'office')
SCENE_HUES = (15, 30, 90, 150)

#: Depth range of the background plane and of the objects, in metres. Every
#: pixel of every scene lies inside ``DEPTH_RANGE``.
BG_DEPTH_RANGE = (3.0, 9.0)
OBJ_DEPTH_RANGE = (1.0, 2.5)
DEPTH_RANGE = (0.5, 9.5)

_CIRCLE_VERTICES = 24


def as_hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """Return ``(height, width)`` from an int or an ``(h, w)`` pair."""
    if isinstance(size, (int, np.integer)):
        hw = (int(size), int(size))
    else:
        hw = tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) < 32:
        raise ValueError(f'size must be an int or (h, w), each >= 32; '
                         f'got {size!r}')
    return hw


def _smooth_noise(rng: np.random.Generator, hw: Tuple[int, int],
                  cells: int) -> np.ndarray:
    """Zero-mean noise in [-1, 1] with blobs about ``1 / cells`` wide."""
    coarse = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)


def _hsv_to_rgb(hue: float, sat: float, val: float) -> np.ndarray:
    """One HSV colour (OpenCV ranges) as an RGB float vector in [0, 1]."""
    hsv = np.array([[[hue % 180, sat, val]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


def _shade(depth: np.ndarray) -> np.ndarray:
    """Brightness falloff with distance: 1.0 at 0.5 m, 0.5 at 9.5 m."""
    return 1.0 - 0.5 * (depth - DEPTH_RANGE[0]) / (
        DEPTH_RANGE[1] - DEPTH_RANGE[0])


def _polygon(label: int, cx: float, cy: float, radius: float,
             angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape with circumradius ``radius``.

    Coordinates follow OpenCV: pixel ``(i, j)`` has its centre at ``(j, i)``.
    """
    num = (_CIRCLE_VERTICES, 4, 3)[label]
    theta = angle + np.arange(num) * (2 * np.pi / num)
    return np.stack([cx + radius * np.cos(theta),
                     cy + radius * np.sin(theta)], axis=1)


def _fill(poly: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside a convex polygon, as a bool mask.

    Sampling pixel centres is the rule pycocotools approximates when it
    decodes the same polygon, so semantic masks and COCO masks agree.
    """
    ys, xs = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float64)
    edges = np.roll(poly, -1, axis=0) - poly
    cross = np.stack([
        ex * (ys - py) - ey * (xs - px)
        for (px, py), (ex, ey) in zip(poly, edges)])
    return (cross >= 0).all(axis=0) | (cross <= 0).all(axis=0)


def render_scene(rng: np.random.Generator,
                 size: Union[int, Sequence[int]] = 96,
                 max_objects: int = 5,
                 distractor_prob: float = 0.2,
                 noise_std: float = 6.0,
                 object_scale: float = 1.0) -> Dict:
    """Render one demo scene.

    Args:
        rng (np.random.Generator): Source of every random draw.
        size (int | tuple[int, int]): Image size, ``s`` or ``(h, w)``.
            Defaults to 96.
        max_objects (int): At most this many objects; at least one is always
            placed. Defaults to 5.
        distractor_prob (float): Probability that an object takes a random
            hue instead of its class hue. Defaults to 0.2.
        noise_std (float): Std of the per-pixel Gaussian noise, in 8-bit
            grey levels. Defaults to 6.0.
        object_scale (float): Factor on every object's size (the random
            draws stay the same): 1 gives objects of about 1/4 of the
            image, 0.25 small ones of a few pixels. Defaults to 1.0.

    Returns:
        dict: ``img`` (H, W, 3) uint8 RGB; ``sem_seg`` (H, W) uint8 with 0 for
        background and ``1 + class index`` on objects; ``depth`` (H, W)
        float32 metres; ``scene`` index into :data:`SCENE_NAMES`;
        ``objects``, a list of dicts with ``label`` (index into
        :data:`SHAPE_CLASSES`), ``polygon`` (N, 2) float64 in OpenCV pixel
        coordinates, ``mask`` (H, W) bool and ``depth`` (metres).
    """
    if max_objects < 1:
        raise ValueError(f'max_objects must be >= 1, got {max_objects}')
    if not 0 < object_scale <= 2:
        raise ValueError(f'object_scale must be in (0, 2], got '
                         f'{object_scale!r}')
    h, w = as_hw(size)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    scene = int(rng.integers(len(SCENE_NAMES)))

    # Background: a plane, far at the top and near at the bottom, tilted
    # sideways, painted with a two-colour gradient and blotchy texture.
    far = rng.uniform(6.5, BG_DEPTH_RANGE[1])
    near = rng.uniform(BG_DEPTH_RANGE[0], 4.5)
    tilt = rng.uniform(-1.0, 1.0)
    depth = far + (near - far) * ys / (h - 1) + tilt * (xs / (w - 1) - 0.5)
    depth = np.clip(depth, *BG_DEPTH_RANGE).astype(np.float32)
    base_hue = SCENE_HUES[scene]
    col_a = _hsv_to_rgb(base_hue + rng.uniform(-10, 10),
                        rng.uniform(20, 80), rng.uniform(150, 230))
    col_b = _hsv_to_rgb(base_hue + rng.uniform(-10, 10),
                        rng.uniform(20, 80), rng.uniform(150, 230))
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xs / w + np.sin(direction) * ys / h)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = col_a * (1 - ramp[..., None]) + col_b * ramp[..., None]
    img *= (1 + 0.15 * _smooth_noise(rng, (h, w), 6))[..., None]
    sem_seg = np.zeros((h, w), dtype=np.uint8)

    # Objects: non-overlapping, fully inside the image.
    objects: List[Dict] = []
    num_objects = int(rng.integers(min(2, max_objects), max_objects + 1))
    base_radius = 0.16 * min(h, w) * object_scale
    for _ in range(num_objects):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        obj_depth = float(rng.uniform(*OBJ_DEPTH_RANGE))
        radius = (base_radius * SHAPE_SCALES[label] * 1.5 / obj_depth *
                  rng.uniform(0.85, 1.15))
        for _attempt in range(30):
            cx = rng.uniform(radius + 1, w - radius - 2)
            cy = rng.uniform(radius + 1, h - radius - 2)
            if all((cx - o['cx'])**2 + (cy - o['cy'])**2 >
                   (radius + o['radius'] + 2)**2 for o in objects):
                break
        else:
            continue
        angle = float(rng.uniform(0, 2 * np.pi))
        poly = _polygon(label, cx, cy, radius, angle)
        mask = _fill(poly, (h, w))
        if label == 0:  # a sphere: nearer at the centre
            rho2 = ((xs - cx)**2 + (ys - cy)**2) / radius**2
            bulge = np.sqrt(np.clip(1 - rho2, 0, 1)) * radius / base_radius
            obj_map = obj_depth - 0.1 * bulge
        else:
            obj_map = np.full((h, w), obj_depth, dtype=np.float32)
        if rng.uniform() < distractor_prob:
            hue = rng.uniform(0, 180)
        else:
            hue = SHAPE_HUES[label] + rng.uniform(-12, 12)
        colour = _hsv_to_rgb(hue, rng.uniform(130, 255), rng.uniform(170, 255))
        texture = 1 + 0.12 * _smooth_noise(rng, (h, w), 12)
        depth[mask] = obj_map[mask]
        img[mask] = colour * texture[mask][:, None]
        sem_seg[mask] = label + 1
        objects.append(dict(label=label, polygon=poly, mask=mask,
                            depth=obj_depth, cx=cx, cy=cy, radius=radius))

    img = img * _shade(depth)[..., None] * 255
    img += rng.normal(0, noise_std, size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    for obj in objects:
        for key in ('cx', 'cy', 'radius'):
            obj.pop(key)
    return dict(img=img, sem_seg=sem_seg, depth=depth.astype(np.float32),
                scene=scene, objects=objects)
