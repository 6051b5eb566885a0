"""Review queue -> Label Studio tasks -> hand-made reviewed export -> new benchmark version."""

import copy
import json
import shutil

import pytest
from annot_bench import tree_bytes
from typer.testing import CliRunner

from rtvp.annotate import review
from rtvp.annotate.agreement import ImageLabels
from rtvp.annotate.autolabel import AutolabelConfig, build_version
from rtvp.annotate.review import apply_review, export_labelstudio, load_queue, to_labelstudio
from rtvp.bench import version as bench_version
from rtvp.bench.check import check_benchmark
from rtvp.bench.version import read_splits, write_version
from rtvp.cli.main import app
from rtvp.errors import DataError


@pytest.fixture(scope="module")
def auto(bench, tmp_path_factory):
    """An auto-labelled version of the toy bench with a known queue (images 5 and 6 unlabelled).

    Image 5: ov A [10,10,30,30] scratch / expert A hole (class conflict "5-0"), ov B [40,40,60,60] alone ("5-1").
    Image 6: both agree on C [5,5,25,25] spot; expert D [40,0,60,20] alone ("6-0").
    """
    splits = read_splits(bench)
    labeled = {im["id"] for im in splits["closed_train"]["images"]} - {5, 6}
    preds = {"ov": {5: ImageLabels([[10, 10, 30, 30], [40, 40, 60, 60]], [0.9, 0.7], [1, 1]),
                    6: ImageLabels([[5, 5, 25, 25]], [0.6], [3])},
             "expert": {5: ImageLabels([[10, 10, 30, 30]], [0.8], [2]),
                        6: ImageLabels([[5, 5, 25, 25], [40, 0, 60, 20]], [0.7, 0.5], [3, 3])}}
    new, queue, _ = build_version(splits, labeled, preds, AutolabelConfig())
    cats = [{"id": c["id"], "name": c["name"], "text": c["text"]} for c in splits["closed_train"]["categories"]]
    doc = {"format": "rtvp-review-queue", "version": 1, "categories": cats, "items": queue}
    out = tmp_path_factory.mktemp("auto") / "bench"
    return write_version(bench, out, new, "auto", {"tool": "autolabel"}, {"review/queue.json": json.dumps(doc)})


def _reviewed(tasks):
    """What a reviewer's Label Studio export looks like: task ids, the review in ``annotations``."""
    out = []
    for k, t in enumerate(copy.deepcopy(tasks)):
        t["id"] = 100 + k
        regions = {r["id"]: r for r in t["predictions"][0]["result"]}
        if t["data"]["rtvp_image_id"] == 5:
            edited = copy.deepcopy(regions["5-1-ov"])
            edited["value"].update(x=100 * 42 / 64, rectanglelabels=["hole on steel"])
            added = copy.deepcopy(regions["5-0-ov"])
            added["id"] = "Xy12ab"
            added["value"].update(x=0.0, y=100 * 50 / 64, width=100 * 10 / 64, height=100 * 10 / 64)
            result = [regions["5-0-ov"], edited, added]  # 5-0-expert deleted
            t["annotations"] = [{"id": 7, "was_cancelled": False, "updated_at": "2024-01-02", "result": result},
                                {"id": 3, "was_cancelled": False, "updated_at": "2024-01-01", "result": []}]
        else:
            t["annotations"] = [{"id": 8, "was_cancelled": True, "result": []}]  # skipped: stays pending
        out.append(t)
    return out


def _write(path, tasks):
    path.write_text(json.dumps(tasks))
    return path


def test_export_tasks_regions_and_config(auto, tmp_path):
    path, n_tasks, n_regions = export_labelstudio(auto, tmp_path / "tasks.json")
    tasks = json.loads(path.read_text())
    assert n_tasks == 2 and n_regions == 4
    t5 = next(t for t in tasks if t["data"]["rtvp_image_id"] == 5)
    assert t5["data"]["image"] == "/data/local-files/?d=images/toy/005.png"
    regions = {r["id"]: r for r in t5["predictions"][0]["result"]}
    assert set(regions) == {"5-0-ov", "5-0-expert", "5-1-ov"}
    v = regions["5-1-ov"]["value"]
    assert (v["x"], v["y"], v["width"], v["height"]) == pytest.approx((62.5, 62.5, 31.25, 31.25))  # 40/64, 20/64
    assert v["rectanglelabels"] == ["scratch on steel"] and regions["5-0-expert"]["value"]["rectanglelabels"] == [
        "hole on steel"]
    assert regions["5-0-ov"]["type"] == "rectanglelabels" and regions["5-0-ov"]["score"] == pytest.approx(0.9)
    xml = path.with_suffix(".xml").read_text()
    assert xml.count("<Label ") == 3 and 'toName="image"' in xml
    assert to_labelstudio(load_queue(auto / "review" / "queue.json")) == tasks


def test_import_applies_accept_edit_reject_add(auto, tmp_path):
    tasks = to_labelstudio(load_queue(auto))
    file = _write(tmp_path / "reviewed.json", _reviewed(tasks))
    s = apply_review(file, auto, tmp_path / "new")
    assert (s["accepted"], s["edited"], s["rejected"], s["added"]) == (1, 1, 1, 1)
    assert s["reviewed_images"] == 1 and s["pending"] == 1
    new = tmp_path / "new"
    anns = [a for a in json.loads((new / "annotations" / "closed_train.json").read_text())["annotations"]
            if a["image_id"] == 5]
    got = sorted((a["provenance"]["review"], a["category_id"], a["bbox"]) for a in anns)
    assert got == [("accepted", 1, [10.0, 10.0, 20.0, 20.0]), ("added", 1, [0.0, 50.0, 10.0, 10.0]),
                   ("edited", 2, [42.0, 40.0, 20.0, 20.0])]
    assert {a["provenance"]["source"] for a in anns} == {"expert"}
    assert {a["provenance"]["review_key"] for a in anns} == {"5/5-0-ov", "5/5-1-ov", "5/Xy12ab"}
    queue = load_queue(new)
    status = {it["id"]: (it["status"], it.get("decisions")) for it in queue["items"]}
    assert status["5-0"] == ("reviewed", {"5-0-ov": "accepted", "5-0-expert": "rejected"})
    assert status["5-1"] == ("reviewed", {"5-1-ov": "edited"}) and status["6-0"][0] == "pending"
    assert check_benchmark(new) == []
    open_train = json.loads((new / "annotations" / "open_train.json").read_text())
    assert 5 not in {im["id"] for im in open_train["images"]}  # image 5 now holds the unseen "hole"
    assert json.loads((auto / "annotations" / "closed_train.json").read_text()) != json.loads(
        (new / "annotations" / "closed_train.json").read_text())  # the source version is untouched


def test_import_twice_is_idempotent_in_place_and_into_out(auto, tmp_path):
    file = _write(tmp_path / "reviewed.json", _reviewed(to_labelstudio(load_queue(auto))))
    apply_review(file, auto, tmp_path / "a")
    once = tree_bytes(tmp_path / "a")
    apply_review(file, auto, tmp_path / "a")
    assert tree_bytes(tmp_path / "a") == once
    inplace = tmp_path / "inplace"
    shutil.copytree(auto, inplace, symlinks=True)
    apply_review(file, inplace)
    first = tree_bytes(inplace)
    apply_review(file, inplace)
    assert tree_bytes(inplace) == first
    assert first["annotations/closed_train.json"] == once["annotations/closed_train.json"]
    # a later review of the same image replaces the earlier decisions (keyed by image and region)
    tasks = _reviewed(to_labelstudio(load_queue(auto)))
    tasks[0]["annotations"][0]["result"] = tasks[0]["annotations"][0]["result"][1:]  # now reject 5-0-ov too
    apply_review(_write(tmp_path / "second.json", tasks), inplace)
    keys = {a["provenance"].get("review_key") for a in json.loads(
        (inplace / "annotations" / "closed_train.json").read_text())["annotations"] if "provenance" in a}
    assert "5/5-0-ov" not in keys and "5/5-1-ov" in keys


def test_interrupted_import_leaves_the_benchmark_unchanged_and_rerun_completes(auto, tmp_path, monkeypatch):
    file = _write(tmp_path / "reviewed.json", _reviewed(to_labelstudio(load_queue(auto))))
    apply_review(file, auto, tmp_path / "clean")
    work = tmp_path / "work"
    shutil.copytree(auto, work, symlinks=True)
    before = tree_bytes(work)
    real = review._annotation
    calls = []

    def dying(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed midway")
        return real(*a, **k)

    monkeypatch.setattr(review, "_annotation", dying)
    with pytest.raises(RuntimeError, match="killed"):
        apply_review(file, work)
    assert tree_bytes(work) == before
    monkeypatch.setattr(review, "_annotation", real)
    # killed while writing a new version: the source is untouched, the target has no benchmark.yaml yet
    write = bench_version.atomic_write_text
    writes = []

    def dying_write(path, text):
        writes.append(path)
        if len(writes) == 3:
            raise KeyboardInterrupt
        write(path, text)

    monkeypatch.setattr(bench_version, "atomic_write_text", dying_write)
    with pytest.raises(KeyboardInterrupt):
        apply_review(file, work, tmp_path / "out")
    assert tree_bytes(work) == before and not (tmp_path / "out" / "benchmark.yaml").exists()
    monkeypatch.setattr(bench_version, "atomic_write_text", write)
    apply_review(file, work, tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "clean")


def test_import_errors_name_the_task(auto, tmp_path):
    tasks = _reviewed(to_labelstudio(load_queue(auto)))
    bad = copy.deepcopy(tasks)
    bad[0]["annotations"][0]["result"][0]["value"]["rectanglelabels"] = ["nope"]
    with pytest.raises(DataError, match="task #0 .*label \\['nope'\\]"):
        apply_review(_write(tmp_path / "b1.json", bad), auto, tmp_path / "x")
    bad = copy.deepcopy(tasks)
    bad[0]["annotations"][0]["result"][0]["value"]["rotation"] = 30
    with pytest.raises(DataError, match="rotated"):
        apply_review(_write(tmp_path / "b2.json", bad), auto, tmp_path / "x")
    bad = copy.deepcopy(tasks)
    del bad[1]["data"]["rtvp_image_id"]
    with pytest.raises(DataError, match="task #1 has no data.rtvp_image_id"):
        apply_review(_write(tmp_path / "b3.json", bad), auto, tmp_path / "x")
    bad = copy.deepcopy(tasks)
    bad[0]["data"]["rtvp_image_id"] = 1
    with pytest.raises(DataError, match="not in .*review queue"):
        apply_review(_write(tmp_path / "b4.json", bad), auto, tmp_path / "x")
    with pytest.raises(DataError, match="not an rtvp review queue"):
        load_queue(_write(tmp_path / "q.json", {"items": []}))
    assert not (tmp_path / "x" / "benchmark.yaml").exists()


def test_cli_export_and_import(auto, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "review", "export", str(auto), "--format", "labelstudio",
                              "--out", str(tmp_path / "t.json")])
    assert res.exit_code == 0 and "2 tasks (4 candidate regions)" in res.output, res.output
    reviewed = _write(tmp_path / "r.json", _reviewed(json.loads((tmp_path / "t.json").read_text())))
    res = runner.invoke(app, ["data", "review", "import", str(reviewed), "--bench", str(auto),
                              "--out", str(tmp_path / "new")])
    assert res.exit_code == 0 and "1 accepted, 1 edited, 1 rejected, 1 added" in res.output, res.output
    res = runner.invoke(app, ["data", "review", "export", str(tmp_path / "new"), "--out", str(tmp_path / "t2.json")])
    assert "1 tasks (1 candidate regions)" in res.output  # only image 6 is still pending
