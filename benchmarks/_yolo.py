"""The Ultralytics baseline environment: ``benchmarks/.venv-yolo`` (created on first use) and calls into it.

Ultralytics is AGPL-3.0, so it is only ever an external tool: installed into its own virtual environment (which sees
the system site-packages, i.e. the same torch build), run as a subprocess (``yolo_runner.py``), and exchanging JSON
files. ``rtvp`` never imports it. The pins below are the versions the results were produced with.

Installed with ``--no-deps`` plus the few dependencies the base environment lacks, because Ultralytics' declared
``opencv-python`` would shadow the installed ``opencv-python-headless`` (and needs libGL).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from _common import BENCH_DIR

VENV = BENCH_DIR / ".venv-yolo"
RUNNER = BENCH_DIR / "yolo_runner.py"
PACKAGES = ["ultralytics==8.4.190", "ultralytics-thop==2.2.3", "psutil==7.2.2", "polars==2.1.0",
            "polars-runtime-32==2.1.0"]


def venv_python(venv: Path = VENV) -> Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def config_dir(venv: Path = VENV) -> Path:
    """``YOLO_CONFIG_DIR``: Ultralytics settings stay inside the venv (nothing written to ``~/.config``)."""
    return venv / "config"


def _place_font(venv: Path) -> None:
    """A local TrueType font under the names Ultralytics' dataset check looks for, so it never downloads one."""
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    dst = config_dir(venv) / "Ultralytics"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (dst / name).is_file():
            shutil.copyfile(src, dst / name)


def ensure_venv(venv: Path = VENV) -> Path:
    """Create the venv and install Ultralytics on first use; returns its interpreter.

    Raises:
        RuntimeError: the venv cannot be created or Ultralytics cannot be installed/imported (with pip's output).
    """
    py = venv_python(venv)
    marker = venv / ".rtvp-ready"
    if not marker.is_file():
        print(f"creating {venv} (Ultralytics baseline environment; one-off)", flush=True)
        steps = [[sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                 [str(py), "-m", "pip", "install", "--quiet", "--no-deps", *PACKAGES]]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        link_site_packages(py)
        _place_font(venv)
        check = subprocess.run([str(py), "-c", "import ultralytics; print(ultralytics.__version__)"],
                               capture_output=True, text=True, env=yolo_env(venv), check=False)
        if check.returncode:
            raise RuntimeError(f"ultralytics does not import in {venv}:\n{check.stderr[-2000:]}")
        marker.write_text(check.stdout.strip() + "\n", encoding="utf-8")
    link_site_packages(py)
    _place_font(venv)
    return py


def link_site_packages(py: Path) -> Path:
    """Make the running environment's packages (torch, OpenCV, ...) importable in the venv of ``py``.

    ``venv --system-site-packages`` inherits the *base* interpreter's site-packages: when rtvp itself runs in a
    virtual environment, its packages are not among them and ``import ultralytics`` fails on ``cv2``. A ``.pth`` file
    in the venv's site-packages adds this interpreter's site-packages to its path (idempotent).

    Returns:
        The ``.pth`` file.
    """
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    proc = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True)
    pth = Path(proc.stdout.strip()) / "rtvp-parent-env.pth"
    pth.write_text("\n".join(ours) + "\n", encoding="utf-8")
    return pth


def yolo_env(venv: Path = VENV) -> dict[str, str]:
    """Environment of the subprocess: offline, settings in the venv, no analytics."""
    env = dict(os.environ)
    env.update({"YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(config_dir(venv)), "YOLO_VERBOSE": "False",
                "HF_HUB_OFFLINE": "1"})  # OMP_WAIT_POLICY: inherited, so both sides of a comparison run alike
    return env


def run_yolo(command: str, spec: dict[str, Any], venv: Path = VENV, stream: bool = False) -> dict[str, Any]:
    """Run ``yolo_runner.py COMMAND`` in the venv and return its JSON result.

    Args:
        command: ``train`` | ``predict`` | ``latency`` | ``cost``.
        spec: the command's JSON spec (``out`` is filled in here).
        venv: the Ultralytics environment.
        stream: show the tool's output live (training) instead of capturing it.

    Raises:
        RuntimeError: the subprocess failed (its output tail is in the message).
    """
    py = ensure_venv(venv)
    with tempfile.TemporaryDirectory(prefix="rtvp-yolo-") as tmp:
        out, spec_path = Path(tmp) / "result.json", Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps({**spec, "out": str(out)}), encoding="utf-8")
        cmd = [str(py), str(RUNNER), command, str(spec_path)]
        proc = subprocess.run(cmd, env=yolo_env(venv), capture_output=not stream, text=True, check=False)
        if proc.returncode or not out.is_file():
            tail = "" if stream else f"\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            raise RuntimeError(f"Ultralytics {command} failed (exit {proc.returncode}){tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def ultralytics_version(venv: Path = VENV) -> str | None:
    """Version recorded when the venv was made, or ``None`` without a venv."""
    marker = venv / ".rtvp-ready"
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def val_results(bench: Path, weights: str, imgsz: int, threads: int, device: str, masks: bool = False,
                max_det: int = 300) -> tuple[list[dict[str, Any]], float | None]:
    """Predict ``closed_val`` of an rtvp benchmark with a YOLO checkpoint: COCO results in benchmark ids, images/s.

    YOLO class k is the k-th category in id order (as ``rtvp data export`` writes it); with ``masks`` each result
    also carries the detection's ``segmentation`` (COCO RLE at image resolution).
    """
    from _train import load_coco

    val = load_coco(bench, "closed_val")
    cat_ids = sorted(c["id"] for c in val["categories"])
    pred = run_yolo("predict", {"weights": weights, "images": [str(bench / im["file_name"]) for im in val["images"]],
                                "imgsz": imgsz, "threads": threads, "device": device, "masks": masks,
                                "max_det": max_det})
    results = []
    for im, det in zip(val["images"], pred["detections"], strict=True):
        rles = det["rle"] if masks else [None] * len(det["cls"])
        for (x1, y1, x2, y2), s, c, rle in zip(det["xyxy"], det["score"], det["cls"], rles, strict=True):
            results.append({"image_id": im["id"], "category_id": cat_ids[c], "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": s, **({"segmentation": rle} if masks else {})})
    return results, len(val["images"]) / pred["seconds"] if pred["seconds"] else None
