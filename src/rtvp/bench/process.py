"""Build stage 3: one ordered pass over the records that maps classes, fixes boxes and merges exact duplicates.

Input is the spool (records on disk) plus the validation arrays; output is ``processed.jsonl`` (one line per kept
image, final order), ``names.txt`` (source index and relative path, tab-separated, per kept image) and the compact
arrays the splits need (``Kept``). Every dropped or repaired item becomes an issue row; issue rows name files
relative to ``--root``.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.bench import validate as v
from rtvp.bench.dedup import first_occurrence
from rtvp.bench.ingest import Checks, SpoolIndex, SpoolReader
from rtvp.bench.recipe import Recipe
from rtvp.bench.taxonomy import DROP, UNKNOWN, Taxonomy


def sha1_hex(digest: bytes) -> str:
    """Hex of a digest read back from an ``S20`` array (numpy strips trailing NUL bytes)."""
    return digest.ljust(20, b"\0").hex()


@dataclass
class Kept:
    """Compact arrays over the kept images, final order ``k = 0..N-1``.

    Attributes:
        phash: ``(N,)`` uint64 perceptual hashes.
        source: ``(N,)`` int32 source index.
        indptr: ``(N + 1,)`` CSR row pointers of image -> category incidence.
        cats: ``(M,)`` 0-based category indices (unique per image).
    """

    phash: np.ndarray
    source: np.ndarray
    indptr: np.ndarray
    cats: np.ndarray


class _Context:
    """Shared state of the pass: recipe, taxonomy, paths for issue rows."""

    def __init__(self, recipe: Recipe, tax: Taxonomy, root: Path, log: v.IssueLog) -> None:
        self.recipe, self.tax, self.root, self.log = recipe, tax, root, log
        self.source_of = np.zeros(0, dtype=np.int32)  # source index per spool record

    def rel_to_root(self, path: str | Path) -> str:
        p = Path(path)
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def relative_text(self, text: str) -> str:
        """``text`` with every absolute path under ``--root`` written relative to it (one convention per row)."""
        return text.replace(f"{self.root.as_posix()}/", "")

    def image_file(self, s: int, rel: str) -> str:
        return f"{Path(self.recipe.sources[s].path).as_posix()}/{rel}"

    def annotations(self, s: int, line: dict[str, Any], w: int, h: int) -> list[list[Any]]:
        """Mapped, clipped annotations ``[cat_id, x1, y1, x2, y2, seg]`` of one record; issues logged."""
        src = self.recipe.sources[s]
        where = self.rel_to_root(line["l"]) if line["l"] else self.image_file(s, line["r"])
        mapped = []
        for i, (label, x1, y1, x2, y2, seg) in enumerate(line["a"]):
            cat = self.tax.lookup(s, label)
            if cat == UNKNOWN:
                self.log.add(v.Issue(where, v.UNKNOWN_CLASS, f"annotation {i}: class '{label}' is not in "
                                                             f"sources.{src.name}.classes (add it, or map it to null)"))
            elif cat != DROP:
                mapped.append((i, cat, (x1, y1, x2, y2), seg))
        if not mapped:
            return []
        boxes = np.array([m[2] for m in mapped], dtype=np.float64)
        clipped, was_clipped, keep = v.fix_boxes(boxes, w, h, self.recipe.validation.min_box_size)
        out = []
        for (i, cat, box, seg), cbox, clip, ok in zip(mapped, clipped.tolist(), was_clipped, keep, strict=True):
            fmt = "[" + ", ".join(f"{b:g}" for b in box) + "]"
            if not ok:
                self.log.add(v.Issue(where, v.BOX_DEGENERATE, f"annotation {i}: box {fmt} in a {w}x{h} image"))
                continue
            if clip:
                self.log.add(v.Issue(where, v.BOX_CLIPPED, f"annotation {i}: box {fmt} clipped to a {w}x{h} image"))
                seg = v.clip_segmentation(seg, w, h)
            if isinstance(seg, dict) and list(seg.get("size", [])) != [h, w]:
                self.log.add(v.Issue(where, v.BAD_SEGMENTATION, f"annotation {i}: RLE size {seg.get('size')} is "
                                                                f"not the image size [{h}, {w}]"))
                seg = None
            out.append([cat, *cbox, seg])
        return out


def _ann_key(a: list[Any]) -> tuple:
    return (a[0], *(round(x, 1) for x in a[1:5]))


def _merge_duplicates(ctx: _Context, reader: SpoolReader, index: SpoolIndex, checks: Checks, k: int,
                      dups: list[int], anns: list[list[Any]], file_name: str) -> list[list[Any]]:
    """Merge the annotations of exact duplicates ``dups`` (positions) into image ``k``'s; log one issue each."""
    keys = {_ann_key(a) for a in anns}
    for d in dups:
        j = int(index.order[d])
        s = int(index.source[j])
        line = reader[j]
        extra = ctx.annotations(s, line, int(checks.width[j]), int(checks.height[j]))
        new = [a for a in extra if _ann_key(a) not in keys]
        same = {_ann_key(a) for a in extra} == keys
        where = ctx.image_file(s, line["r"])
        if same:
            ctx.log.add(v.Issue(where, v.EXACT_DUPLICATE, f"same bytes as {file_name} (same labels); dropped"))
        else:
            ctx.log.add(v.Issue(where, v.EXACT_DUPLICATE_LABELS_DIFFER,
                                f"same bytes as {file_name}; labels differ: {len(new)} annotation(s) merged into it, "
                                f"duplicate dropped"))
        anns = anns + new
        keys |= {_ann_key(a) for a in new}
    return anns


def _duplicates(index: SpoolIndex, checks: Checks) -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Exact duplicates by sha1, in final order.

    Returns:
        ``(usable (N,), first (N,), dups)``: ``first[k]`` is the first usable position with the same sha1 (``k``
        itself for a first occurrence); ``dups`` maps a kept position to its duplicates (later positions).
    """
    n = len(index)
    ok = ~index.flagged
    ok[list(checks.errors)] = False
    usable = ok[index.order]
    first = np.arange(n)
    pos = np.flatnonzero(usable)
    first[pos] = pos[first_occurrence(checks.sha1[index.order[pos]])]
    dups: dict[int, list[int]] = {}
    for d in np.flatnonzero(first != np.arange(n)).tolist():
        dups.setdefault(int(first[d]), []).append(d)
    return usable, first, dups


_FILE_LINE = re.compile(r"(.+):(\d+)")


def _dropped(ctx: _Context, line: dict[str, Any], checks: Checks, j: int, usable: bool) -> bool:
    """Log the record-level issues of record ``j``; True when the record is dropped."""
    image_file = ctx.image_file(int(ctx.source_of[j]), line["r"])
    if line["x"]:
        for text in line["x"]:
            file, _, detail = text.partition(": ")
            at = _FILE_LINE.fullmatch(file)  # converters write "path:line: detail" where there is a line
            ctx.log.add(v.Issue(ctx.rel_to_root(at[1] if at else file), v.SOURCE_ISSUE,
                                ctx.relative_text(f"{detail}; record dropped"), int(at[2]) if at else None))
        return True
    if not usable:
        reason, _, detail = checks.errors[j].partition(": ")
        ctx.log.add(v.Issue(image_file, reason, detail))
        return True
    w, h = int(checks.width[j]), int(checks.height[j])
    if (line["w"], line["h"]) != (w, h):
        ctx.log.add(v.Issue(image_file, v.SIZE_MISMATCH, f"labels say {line['w']}x{line['h']}, image is {w}x{h}; "
                                                         f"using the image size"))
    if checks.empty_label[j]:
        ctx.log.add(v.Issue(ctx.rel_to_root(line["l"]), v.EMPTY_LABEL_FILE, "no annotations; kept as a defect-free "
                                                                            "image"))
    return False


def process_records(recipe: Recipe, tax: Taxonomy, root: Path, spools: list[Path], index: SpoolIndex,
                    checks: Checks, log: v.IssueLog, work: Path) -> Kept:
    """Run the ordered pass; write ``work/processed.jsonl`` and ``work/names.txt``; return the kept arrays."""
    ctx = _Context(recipe, tax, root, log)
    ctx.source_of = index.source
    usable, first, dups = _duplicates(index, checks)
    kept_j, counts, cats = array("q"), array("q", [0]), array("q")  # compact: 8 bytes per entry
    reader = SpoolReader(spools, index)
    try:
        with (work / "processed.jsonl").open("w", encoding="utf-8") as out, \
                (work / "names.txt").open("w", encoding="utf-8") as names:
            for k in range(len(index)):
                j = int(index.order[k])
                line = reader[j]
                if _dropped(ctx, line, checks, j, bool(usable[k])) or first[k] != k:
                    continue  # an exact duplicate is merged into its first occurrence
                s, src = int(index.source[j]), recipe.sources[int(index.source[j])]
                w, h = int(checks.width[j]), int(checks.height[j])
                anns = ctx.annotations(s, line, w, h)
                if k in dups:
                    anns = _merge_duplicates(ctx, reader, index, checks, k, dups[k], anns, ctx.image_file(s, line["r"]))
                image = {"file_name": f"images/{src.name}/{line['r']}", "width": w, "height": h, "source": src.name,
                         "scene": src.scene, "sha1": sha1_hex(checks.sha1[j]), "channels": int(checks.channels[j])}
                out.write(json.dumps({"image": image, "anns": anns}, ensure_ascii=False) + "\n")
                names.write(f"{s}\t{line['r']}\n")
                img_cats = sorted({a[0] - 1 for a in anns})
                cats.extend(img_cats)
                counts.append(len(img_cats))
                kept_j.append(j)
    finally:
        reader.close()
    kj = np.frombuffer(kept_j, dtype=np.int64) if len(kept_j) else np.zeros(0, np.int64)
    return Kept(checks.phash[kj], index.source[kj], np.cumsum(np.frombuffer(counts, dtype=np.int64)),
                np.frombuffer(cats, dtype=np.int64).copy() if len(cats) else np.zeros(0, np.int64))


def log_near_duplicates(groups: np.ndarray, names_path: Path, recipe: Recipe, log: v.IssueLog) -> int:
    """One issue per near-duplicate image that is not its group's first member; returns the count."""
    size = np.bincount(groups, minlength=len(groups))
    wanted = set(np.flatnonzero(size > 1).tolist())
    first_name: dict[int, str] = {}
    count = 0
    with names_path.open(encoding="utf-8") as f:
        for k, row in enumerate(f):
            s, rel = row.rstrip("\n").split("\t", 1)
            name = f"{Path(recipe.sources[int(s)].path).as_posix()}/{rel}"
            g = int(groups[k])
            if g == k and k in wanted:
                first_name[k] = name
            elif g != k:
                log.add(v.Issue(name, v.NEAR_DUPLICATE, f"near duplicate of {first_name[g]} (group of {size[g]} "
                                                        f"images, kept on one side of every split)"))
                count += 1
    return count
