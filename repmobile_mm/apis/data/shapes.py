"""Write a COCO-format instance segmentation dataset of generated shape images.

Classes: rectangle, ellipse, triangle. Each image (varied sizes) has a noisy
coloured background and 1-5 shapes of random colour, size and rotation that may
overlap; later shapes occlude earlier ones. A fully visible shape is annotated
with its polygon, an occluded one with the RLE mask of its visible part (COCO
allows both). Layout, as mmdet's COCO configs expect:
``{out}/annotations/instances_{train,val}2017.json`` and ``{out}/{train,val}2017/*.jpg``.
Reproducible by seed.

Its command line: ``tools/dataset_converters/make_shapes.py``.
"""
import json
import math
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('rectangle', 'ellipse', 'triangle')


def shape_polygon(rng, kind, cx, cy, size):
    """Vertices (x, y) of a rotated rectangle, an ellipse (as 32 points) or a triangle."""
    angle = rng.uniform(0, 2 * math.pi)
    if kind == 'rectangle':
        w, h = size * rng.uniform(0.5, 1.0), size * rng.uniform(0.5, 1.0)
        corners = [(-w, -h), (w, -h), (w, h), (-w, h)]
    elif kind == 'ellipse':
        a, b = size * rng.uniform(0.5, 1.0), size * rng.uniform(0.5, 1.0)
        corners = [(a * math.cos(t), b * math.sin(t))
                   for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
    else:
        corners = [(size * math.cos(t), size * math.sin(t))
                   for t in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in corners]


def polygon_mask(polygon, width, height):
    canvas = Image.new('L', (width, height), 0)
    ImageDraw.Draw(canvas).polygon(polygon, fill=1)
    return np.array(canvas, dtype=bool)


def make_image(rng, image_id):
    width, height = int(rng.integers(160, 257)), int(rng.integers(160, 257))
    background = rng.integers(0, 256, 3)
    noise = rng.normal(0, 12, (height, width, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    shapes = []
    for _ in range(int(rng.integers(1, 6))):
        kind = CLASSES[int(rng.integers(len(CLASSES)))]
        size = rng.uniform(0.1, 0.3) * min(width, height)
        cx, cy = rng.uniform(size, width - size), rng.uniform(size, height - size)
        polygon = shape_polygon(rng, kind, cx, cy, size)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.polygon(polygon, fill=colour)
        shapes.append((kind, polygon, polygon_mask(polygon, width, height)))
    annotations = []
    for i, (kind, polygon, mask) in enumerate(shapes):
        visible = mask.copy()
        for _, _, later in shapes[i + 1:]:
            visible &= ~later
        area = int(visible.sum())
        if area < 30:  # hidden behind later shapes
            continue
        ys, xs = np.nonzero(visible)
        x0, y0 = float(xs.min()), float(ys.min())
        bbox = [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0]
        if area == int(mask.sum()):
            segmentation = [[round(v, 2) for point in polygon for v in point]]
        else:
            segmentation = encode_rle(visible)
        annotations.append(dict(category_id=CLASSES.index(kind) + 1, bbox=bbox, area=area,
                                segmentation=segmentation, iscrowd=0, image_id=image_id))
    return image, annotations


def encode_rle(mask):
    """Compressed COCO RLE, as JSON can hold it."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(counts=rle['counts'].decode('ascii'), size=[int(v) for v in rle['size']])


def write_split(out, split, count, rng, first_id):
    folder = osp.join(out, f'{split}2017')
    os.makedirs(folder, exist_ok=True)
    images, annotations = [], []
    for image_id in range(first_id, first_id + count):
        image, anns = make_image(rng, image_id)
        name = f'{image_id:06d}.jpg'
        image.save(osp.join(folder, name), quality=95)
        images.append(dict(id=image_id, file_name=name, width=image.width, height=image.height))
        annotations += anns
    for ann_id, ann in enumerate(annotations, start=1):
        ann['id'] = ann_id
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(CLASSES)]
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    with open(osp.join(out, 'annotations', f'instances_{split}2017.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return len(images), len(annotations)


def make_shapes(out, num_train=400, num_val=80, seed=0):
    rng = np.random.default_rng(seed)
    return {split: write_split(out, split, count, rng, first_id)
            for split, count, first_id in (('train', num_train, 1),
                                           ('val', num_val, num_train + 1))}
