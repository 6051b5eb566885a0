"""``--data`` of ``rtvp train`` / ``rtvp val``: a benchmark folder, or a dataset built into one implicitly."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rtvp.errors import ConfigError

WAIT_S = 3600.0
"""How long a non-zero rank waits for rank 0 to build the implicit benchmark."""


def benchmark_for(data: Path, cache: Path, images: Path | None = None, scene: str | None = None,
                  workers: int = 1) -> Path:
    """The benchmark folder for ``--data`` (``rtvp.bench.implicit.ensure_benchmark``), built by rank 0 only.

    Under ``torchrun`` the other ranks wait for rank 0's ``benchmark.yaml`` instead of building the same folder.
    """
    from rtvp.bench.implicit import dataset_hash, dataset_recipe, ensure_benchmark, is_benchmark

    if int(os.environ.get("RANK", "0")) == 0:
        return ensure_benchmark(data, cache, images=images, scene=scene, workers=workers)
    ds = dataset_recipe(data, images, scene)
    if ds is None:
        return data
    out = cache / f"{ds.recipe.name}-{dataset_hash(ds)}"
    deadline = time.monotonic() + WAIT_S
    while not is_benchmark(out):
        if time.monotonic() > deadline:
            raise ConfigError(f"--data {data}: rank 0 did not build {out} within {WAIT_S:.0f} s; build it first "
                              f"with `rtvp data build {data} --out {out}`")
        time.sleep(2.0)
    return out
