"""The top-1 against latency figure of tools/analysis_tools/benchmark.py: one line per
family through its fused models, labels placed so that none overlaps another."""
from typing import Dict, List

from ..errors import ConfigError

# Published ImageNet-1K top-1 (%) of our fused models: the papers' tables, as quoted in
# shared/specs (repmobile.md, repvit.md: the later release's distilled models,
# repnext.md). The figure draws only models listed here.
PUBLISHED_TOP1 = {
    'RepMobile': {'repmobile_s': 77.2, 'repmobile_m': 78.8, 'repmobile_l': 80.9},
    'RepViT': {'mm_repvit_m0_9': 78.7, 'mm_repvit_m1_0': 80.0, 'mm_repvit_m1_1': 80.7,
               'mm_repvit_m1_5': 82.3, 'mm_repvit_m2_3': 83.3},
    'RepNeXt': {'repnext_m1': 78.8, 'repnext_m2': 80.1, 'repnext_m3': 80.7,
                'repnext_m4': 82.3, 'repnext_m5': 83.3},
}


def variant_label(family: str, name: str) -> str:
    """'RepViT', 'mm_repvit_m0_9' -> 'RepViT-M0.9'."""
    variant = name[name.index(family.lower()) + len(family) + 1:]
    return f"{family}-{variant.upper().replace('_', '.')}"


def top1_latency_points(report: dict) -> Dict[str, List[tuple]]:
    """Family -> [(latency ms, top-1, variant)] of the fused models with a published
    top-1, sorted by latency (one ``--modes`` entry: the first one measured)."""
    mode = report['results'][0]['mode']
    latency = {r['model']: r['latency_ms'] for r in report['results'] if r['mode'] == mode}
    points = {}
    for family, top1 in PUBLISHED_TOP1.items():
        rows = [(latency[f'{name} (fused)'], acc, variant_label(family, name))
                for name, acc in top1.items() if f'{name} (fused)' in latency]
        if rows:
            points[family] = sorted(rows)
    return points


def place_labels(ax, points: List[tuple], texts: List[str], fontsize: int = 8) -> list:
    """Annotate each point with its text at the first of eight offsets where the label's
    box stays inside the axes and overlaps no label placed before it and no point;
    returns the text artists."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_pixels = ax.transData.transform
    markers = [to_pixels(p) for p in points]
    offsets = [(6, 4), (6, -12), (-6, 4), (-6, -12), (0, 10), (0, -16), (12, -4), (-12, -4)]
    placed, boxes = [], []
    for point, text in zip(points, texts):
        for dx, dy in offsets:
            artist = ax.annotate(text, point, xytext=(dx, dy), textcoords='offset points',
                                 fontsize=fontsize, ha='left' if dx >= 0 else 'right')
            box = artist.get_window_extent(renderer).expanded(1.05, 1.1)
            inside = (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
                      and box.y1 <= frame.y1)
            if inside and not any(box.overlaps(other) for other in boxes) and not any(
                    box.contains(*marker) for marker in markers):
                break
            artist.remove()
        else:  # every offset collides: keep the first one and let the test say so
            artist = ax.annotate(text, point, xytext=offsets[0], textcoords='offset points',
                                 fontsize=fontsize)
            box = artist.get_window_extent(renderer)
        placed.append(artist)
        boxes.append(box)
    return placed


def plot(report: dict, path: str):
    """Published top-1 against measured batch-1 latency, one line per family (fused)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    points = top1_latency_points(report)
    if not points:
        raise ConfigError('--plot needs at least one model with a published top-1: '
                          + ', '.join(n for t in PUBLISHED_TOP1.values() for n in t))
    fig, ax = plt.subplots(figsize=(7, 5))
    for family, rows in points.items():
        ax.plot([r[0] for r in rows], [r[1] for r in rows], marker='o', label=family)
    ax.set_xlabel(f"latency at batch 1, fused (ms), {report['size']}x{report['size']}, "
                  f"{report['dtype']}")
    ax.set_ylabel('ImageNet-1K top-1 (%), published')
    ax.set_title(f"{report['machine']}, torch {report['torch']}, {report['date']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    ax.margins(x=0.12, y=0.08)
    fig.tight_layout()
    rows = [r for family_rows in points.values() for r in family_rows]
    place_labels(ax, [r[:2] for r in rows], [r[2] for r in rows])
    fig.savefig(path, dpi=120)
    return fig
