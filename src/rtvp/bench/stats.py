"""Benchmark statistics: per-class / per-scene / per-supercategory tables, ``report/stats.md``, long-tail plot.

Reads only the benchmark's own files (``annotations/{closed,open}_{train,val}.json`` and, when present,
``benchmark.yaml``), so it works on any benchmark written by ``rtvp data build`` and on hand-made ones.
Counting rules: the closed splits hold every image once, so "images"/"instances" count
``closed_train`` + ``closed_val``; ``train``/``val`` columns are the closed split; size classes come from each
annotation's ``attributes.size`` (falling back to COCO thresholds on ``area``). ``open train images`` counts the
scene's ``open_train`` images: a scene with seen classes whose images all hold an unseen class keeps (almost) none,
and the open protocol then learns none of its seen classes; ``BenchStats.warnings`` names such scenes.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rtvp.bench.attributes import size_class
from rtvp.bench.recipe import MIN_OPEN_TRAIN_SHARE
from rtvp.errors import DataError
from rtvp.fileio import atomic_write_bytes, atomic_write_text, read_json

SPLITS = ("closed_train", "closed_val", "open_train", "open_val")
SIZES = ("small", "medium", "large")


@dataclass
class Table:
    """A titled table of strings/numbers, rendered as Markdown by ``stats.md`` and with rich by the CLI."""

    title: str
    headers: list[str]
    rows: list[list[Any]]


@dataclass
class BenchStats:
    """Everything ``stats.md`` shows.

    Attributes:
        name: benchmark name (``benchmark.yaml`` or the folder name).
        version: benchmark version string ("" when unknown).
        totals: ``images``, ``instances``, ``classes``, ``seen``, ``unseen``, ``empty_images``, ``scenes``.
        splits: per split file: ``images``, ``instances``, ``classes`` (categories with >= 1 instance).
        classes: per-class table; ``scenes``/``supercategories``/``attributes``: the other tables.
        class_counts: ``(name, instances, split)`` per category in id order (drives the long-tail plot).
        warnings: split problems worth a user's attention (see :func:`scene_warnings`).
    """

    name: str
    version: str
    totals: dict[str, int]
    splits: dict[str, dict[str, int]]
    classes: Table
    scenes: Table
    supercategories: Table
    attributes: Table
    class_counts: list[tuple[str, int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def tables(self) -> list[Table]:
        """The tables in report order."""
        return [self.classes, self.scenes, self.supercategories, self.attributes]


def load_split(bench_dir: Path, split: str) -> dict[str, Any]:
    """Load ``annotations/<split>.json``; raises ``DataError`` naming the file when missing or malformed."""
    path = Path(bench_dir) / "annotations" / f"{split}.json"
    data = read_json(path, "split file", fix=f"is {bench_dir} a benchmark built by `rtvp data build`?")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: COCO key '{key}' missing or not a list")
    return data


def _read_meta(bench_dir: Path) -> tuple[str, str]:
    path = bench_dir / "benchmark.yaml"
    if not path.is_file():
        return bench_dir.name, ""
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise DataError(f"{path}: invalid YAML ({e})") from e
    return str(meta.get("name", bench_dir.name)), str(meta.get("version", ""))


def _size(ann: dict[str, Any]) -> str:
    size = (ann.get("attributes") or {}).get("size")
    if size in SIZES:
        return size
    area = ann.get("area")
    if area is None:
        area = float(ann["bbox"][2]) * float(ann["bbox"][3])
    return size_class(float(area))


def _class_table(cats: list[dict], closed: dict[str, dict]) -> tuple[Table, list]:
    inst: dict[str, Counter] = {s: Counter() for s in ("closed_train", "closed_val")}
    images: dict[int, set[int]] = defaultdict(set)
    sizes: dict[int, Counter] = defaultdict(Counter)
    for split in inst:
        for ann in closed[split]["annotations"]:
            cid = ann["category_id"]
            inst[split][cid] += 1
            images[cid].add(ann["image_id"])
            sizes[cid][_size(ann)] += 1
    rows, counts = [], []
    for c in cats:
        cid = c["id"]
        n_tr, n_va = inst["closed_train"][cid], inst["closed_val"][cid]
        split = c.get("split", "seen")
        rows.append([cid, c["name"], c.get("scene", ""), c.get("supercategory", ""), split, len(images[cid]),
                     n_tr + n_va, n_tr, n_va] + [sizes[cid][s] for s in SIZES])
        counts.append((c["name"], n_tr + n_va, split))
    headers = ["id", "class", "scene", "supercategory", "split", "images", "instances", "train", "val", *SIZES]
    return Table("Per class", headers, rows), counts


def _scene_table(cats: list[dict], closed: dict[str, dict], image_scene: dict[int, str],
                 open_train: dict[str, Any]) -> Table:
    cat_scene = {c["id"]: c.get("scene", "") for c in cats}
    seen, unseen, superc = Counter(), Counter(), {}
    for c in cats:
        s = c.get("scene", "")
        (unseen if c.get("split") == "unseen" else seen)[s] += 1
        superc.setdefault(s, c.get("supercategory", ""))
    n_img, n_split, n_inst, sizes = Counter(), defaultdict(Counter), Counter(), defaultdict(Counter)
    annotated: set[int] = set()
    for split, data in closed.items():
        for im in data["images"]:
            n_img[image_scene[im["id"]]] += 1
            n_split[split][image_scene[im["id"]]] += 1
        for ann in data["annotations"]:
            s = cat_scene.get(ann["category_id"], "")
            n_inst[s] += 1
            sizes[s][_size(ann)] += 1
            annotated.add(ann["image_id"])
    empty = Counter(s for i, s in image_scene.items() if i not in annotated)
    n_open = Counter(image_scene.get(im["id"], "") for im in open_train["images"])
    rows = []
    for s in sorted(set(n_img) | set(seen) | set(unseen)):
        rows.append([s, superc.get(s, ""), seen[s] + unseen[s], seen[s], unseen[s], n_img[s], empty[s],
                     n_split["closed_train"][s], n_split["closed_val"][s], n_open[s], n_inst[s]]
                    + [sizes[s][z] for z in SIZES])
    headers = ["scene", "supercategory", "classes", "seen", "unseen", "images", "defect-free", "train images",
               "val images", "open train images", "instances", *SIZES]
    return Table("Per scene", headers, rows)


def _super_table(scenes: Table) -> Table:
    col = {h: i for i, h in enumerate(scenes.headers)}
    agg: dict[str, list] = {}
    for row in scenes.rows:
        sc = agg.setdefault(row[1], [row[1], 0, 0, 0, 0])
        sc[1] += 1
        sc[2] += row[col["classes"]]
        sc[3] += row[col["images"]]
        sc[4] += row[col["instances"]]
    return Table("Per supercategory", ["supercategory", "scenes", "classes", "images", "instances"],
                 [agg[k] for k in sorted(agg)])


def scene_warnings(scenes: Table) -> list[str]:
    """Warnings for scenes whose seen classes the open protocol barely trains.

    A scene with seen classes is named when it keeps less than ``MIN_OPEN_TRAIN_SHARE`` of its ``closed_train``
    images in ``open_train`` (the others hold an unseen class), e.g. every DeepPCB image shows most PCB defects.

    Args:
        scenes: the per-scene table of :func:`compute_stats`.
    """
    col = {h: i for i, h in enumerate(scenes.headers)}
    out = []
    for row in scenes.rows:
        scene, seen, n_train, n_open = (row[col[k]] for k in ("scene", "seen", "train images", "open train images"))
        if seen and n_train and n_open < MIN_OPEN_TRAIN_SHARE * n_train:
            out.append(f"scene '{scene}': open_train keeps {n_open} of its {n_train} closed_train images (the others "
                       f"hold an unseen class), so the open protocol barely trains its {seen} seen classes; name "
                       f"other classes in the recipe's split.unseen_classes, or change split.seed")
    return out


def _attribute_table(closed: dict[str, dict]) -> Table:
    counts: dict[str, Counter] = defaultdict(Counter)
    for data in closed.values():
        for ann in data["annotations"]:
            for key, value in (ann.get("attributes") or {}).items():
                counts[key][str(value)] += 1
    rows = [[key, value, n] for key in sorted(counts) for value, n in sorted(counts[key].items())]
    return Table("Attributes", ["attribute", "value", "instances"], rows)


def compute_stats(bench_dir: str | Path) -> BenchStats:
    """Read a benchmark's COCO files and compute every table of the report.

    Args:
        bench_dir: benchmark root (holds ``annotations/`` and usually ``benchmark.yaml``).

    Raises:
        DataError: an annotation file is missing or malformed (the message names it).
    """
    bench_dir = Path(bench_dir)
    data = {s: load_split(bench_dir, s) for s in SPLITS}
    closed = {s: data[s] for s in ("closed_train", "closed_val")}
    cats = sorted(data["closed_train"]["categories"], key=lambda c: c["id"])
    image_scene = {im["id"]: str(im.get("scene", "")) for d in closed.values() for im in d["images"]}
    classes, counts = _class_table(cats, closed)
    scenes = _scene_table(cats, closed, image_scene, data["open_train"])
    splits = {
        s: {"images": len(d["images"]), "instances": len(d["annotations"]),
            "classes": len({a["category_id"] for a in d["annotations"]})}
        for s, d in data.items()
    }
    annotated = {a["image_id"] for d in closed.values() for a in d["annotations"]}
    n_unseen = sum(c.get("split") == "unseen" for c in cats)
    totals = {
        "images": len(image_scene), "instances": sum(len(d["annotations"]) for d in closed.values()),
        "classes": len(cats), "seen": len(cats) - n_unseen, "unseen": n_unseen,
        "empty_images": len(set(image_scene) - annotated), "scenes": len(scenes.rows),
    }
    name, version = _read_meta(bench_dir)
    return BenchStats(name, version, totals, splits, classes, scenes, _super_table(scenes),
                      _attribute_table(closed), counts, scene_warnings(scenes))


def markdown_table(table: Table) -> str:
    """Render a ``Table`` as a GitHub Markdown table (numbers right-aligned)."""
    numeric = [all(isinstance(r[i], (int, float)) for r in table.rows) and bool(table.rows)
               for i in range(len(table.headers))]
    lines = ["| " + " | ".join(table.headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(stats: BenchStats) -> str:
    """The text of ``report/stats.md``."""
    t = stats.totals
    out = [f"# {stats.name}" + (f" v{stats.version}" if stats.version else ""), "",
           f"{t['images']} images ({t['empty_images']} defect-free), {t['instances']} instances, {t['classes']} "
           f"classes ({t['seen']} seen / {t['unseen']} unseen), {t['scenes']} scenes.", "",
           "## Splits", "", markdown_table(Table("Splits", ["split", "images", "instances", "classes"],
                                                 [[s, *v.values()] for s, v in stats.splits.items()])), ""]
    if stats.warnings:
        out += ["## Warnings", "", *(f"- {w}" for w in stats.warnings), ""]
    for table in stats.tables():
        out += [f"## {table.title}", "", markdown_table(table), ""]
    out += ["![long tail](longtail.png)", ""]
    return "\n".join(out)


def plot_longtail(counts: list[tuple[str, int, str]]) -> bytes:
    """PNG bytes of per-class instance counts sorted descending, log scale, coloured by seen/unseen."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    ordered = sorted(counts, key=lambda c: (-c[1], c[0]))
    n = max(len(ordered), 1)
    fig = Figure(figsize=(min(4 + 0.25 * n, 40), 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["tab:orange" if c[2] == "unseen" else "tab:blue" for c in ordered]
    ax.bar(range(len(ordered)), [max(c[1], 0) for c in ordered], color=colors, width=0.8)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_ylabel("instances (log)")
    ax.set_title(f"Per-class instances ({len(ordered)} classes)")
    if len(ordered) <= 80:
        ax.set_xticks(range(len(ordered)), [c[0] for c in ordered], rotation=90, fontsize=7)
    else:
        ax.set_xlabel("classes, sorted by instance count")
    ax.legend(handles=[Patch(color="tab:blue", label="seen"), Patch(color="tab:orange", label="unseen")])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _csv(table: Table) -> str:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.headers)
    writer.writerows(table.rows)
    return buf.getvalue()


def write_report(bench_dir: str | Path) -> BenchStats:
    """Write ``report/stats.md``, ``report/longtail.png``, ``report/classes.csv`` and ``report/scenes.csv``.

    Every file is written atomically. ``stats.md`` holds the split, per-class, per-scene, per-supercategory and
    attribute tables; the CSVs hold the per-class and per-scene tables for tools.

    Args:
        bench_dir: benchmark root with ``annotations/{closed,open}_{train,val}.json``.

    Returns:
        The statistics the report shows.

    Examples:
        >>> write_report(Path("bench"))  # doctest: +SKIP
    """
    bench_dir = Path(bench_dir)
    stats = compute_stats(bench_dir)
    report = bench_dir / "report"
    atomic_write_text(report / "stats.md", render_markdown(stats))
    atomic_write_text(report / "classes.csv", _csv(stats.classes))
    atomic_write_text(report / "scenes.csv", _csv(stats.scenes))
    atomic_write_bytes(report / "longtail.png", plot_longtail(stats.class_counts))
    return stats
