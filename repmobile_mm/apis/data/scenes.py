"""Write an ADE20K-layout semantic segmentation dataset of generated scenes.

Each scene has a textured background in two regions (stripes, checkerboard or
dots; random colours and scales) with up to 4 shapes (disc, square, triangle) of
random colour on top, none overlapping another (an occluded triangle can look like a
square), and a few thin scribbles labelled 0. Labels follow ADE20K: 0 is
"other" (ignored with reduce_zero_label=True), the classes are 1..4 in CLASSES order.
Layout: ``{out}/images/{training,validation}/*.jpg`` and
``{out}/annotations/{training,validation}/*.png``. Reproducible by seed.

Its command line: ``tools/dataset_converters/make_scenes.py``.
"""
import math
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('background', 'disc', 'square', 'triangle')
TEXTURES = ('stripes', 'checkerboard', 'dots')
SHAPES = CLASSES[1:]


def texture(rng, kind, height, width):
    """An RGB texture of the given kind in two random colours."""
    yy, xx = np.mgrid[0:height, 0:width]
    period = rng.uniform(6, 14)
    if kind == 'stripes':
        angle = rng.uniform(0, math.pi)
        pattern = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period) > 0
    elif kind == 'checkerboard':
        pattern = ((xx // (period / 1.5)).astype(int) + (yy // (period / 1.5)).astype(int)) % 2 == 0
    else:
        pattern = ((xx % period - period / 2) ** 2
                   + (yy % period - period / 2) ** 2) < (period / 3.5) ** 2
    colours = rng.integers(0, 256, (2, 3))
    return np.where(pattern[..., None], colours[0], colours[1]).astype(np.float64)


def make_scene(rng):
    width, height = int(rng.integers(96, 161)), int(rng.integers(96, 161))
    label = np.zeros((height, width), np.uint8)
    kinds = rng.choice(len(TEXTURES), 2, replace=False)
    region = np.zeros((height, width), bool)
    if rng.random() < 0.5:
        region[:, :int(rng.integers(width // 4, 3 * width // 4))] = True
    else:
        region[:int(rng.integers(height // 4, 3 * height // 4))] = True
    pixels = np.where(region[..., None], texture(rng, TEXTURES[kinds[0]], height, width),
                      texture(rng, TEXTURES[kinds[1]], height, width))
    label[:] = CLASSES.index('background') + 1
    noisy = pixels + rng.normal(0, 8, pixels.shape)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    draw, label_img = ImageDraw.Draw(image), Image.fromarray(label)
    label_draw = ImageDraw.Draw(label_img)
    placed = []  # (cx, cy, size): shapes do not overlap, so every label is a whole shape
    for _ in range(int(rng.integers(1, 5))):
        index = int(rng.integers(len(SHAPES)))
        size = rng.uniform(0.15, 0.3) * min(width, height)
        cx, cy = rng.uniform(size, width - size), rng.uniform(size, height - size)
        if any(math.hypot(cx - x, cy - y) < size + s for x, y, s in placed):
            continue
        placed.append((cx, cy, size))
        if SHAPES[index] == 'disc':
            box = [cx - size, cy - size, cx + size, cy + size]
            paint = lambda canvas, fill: canvas.ellipse(box, fill=fill)  # noqa: E731
        else:
            corners = 4 if SHAPES[index] == 'square' else 3
            angle = rng.uniform(0, 2 * math.pi)
            points = [(cx + size * math.cos(angle + 2 * math.pi * k / corners),
                       cy + size * math.sin(angle + 2 * math.pi * k / corners))
                      for k in range(corners)]
            paint = lambda canvas, fill: canvas.polygon(points, fill=fill)  # noqa: E731
        paint(draw, tuple(int(c) for c in rng.integers(0, 256, 3)))
        paint(label_draw, CLASSES.index(SHAPES[index]) + 1)
    for _ in range(int(rng.integers(0, 3))):  # unlabelled clutter ("other")
        points = [tuple(rng.uniform(0, [width, height])) for _ in range(3)]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line(points, fill=colour, width=2)
        label_draw.line(points, fill=0, width=2)
    return image, label_img


def make_scenes(out, num_train=600, num_val=60, seed=0):
    rng = np.random.default_rng(seed)
    for split, count in (('training', num_train), ('validation', num_val)):
        os.makedirs(osp.join(out, 'images', split), exist_ok=True)
        os.makedirs(osp.join(out, 'annotations', split), exist_ok=True)
        for i in range(count):
            image, label = make_scene(rng)
            name = f'{split}_{i:05d}'
            image.save(osp.join(out, 'images', split, name + '.jpg'), quality=95)
            label.save(osp.join(out, 'annotations', split, name + '.png'))
    return dict(training=num_train, validation=num_val)
