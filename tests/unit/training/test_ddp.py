"""DDP on CPU: 2 processes with the gloo backend train the toy model; both ranks end with identical weights,
the data is sharded, losses and metrics agree, and only rank 0 writes files."""

import socket

import torch
import torch.multiprocessing as mp
from trainer_toys import ddp_worker

from rtvp.checkpoint import load_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_training(tmp_path):
    mp.spawn(ddp_worker, args=(2, tmp_path, _free_port()), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"out{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["steps"] == r1["steps"] == 6  # 10 images -> 5 per rank -> 3 steps of 2 per epoch, 2 epochs
    # parameters (and their EMA) are identical; BN running stats are rank-local between DDP's per-forward
    # broadcasts from rank 0, and only rank 0's are saved
    for key in ("model", "ema"):
        for name, t in r0[key].items():
            assert torch.equal(t, r1[key][name]), f"{key}.{name} differs between ranks"
    assert r0["losses"] == r1["losses"]  # loss terms are averaged over ranks before logging
    assert r0["metrics"] == r1["metrics"] == {"AP": 0.5}  # rank 0 evaluates and broadcasts
    i0, i1 = r0["indices"], r1["indices"]
    assert len(i0) == len(i1) == 5 and set(i0).isdisjoint(i1) and set(i0) | set(i1) == set(range(10))
    assert not (tmp_path / "rank1").exists()  # rank 1 wrote nothing
    assert {p.name for p in (tmp_path / "rank0").iterdir()} >= {"config.yaml", "results.csv", "weights"}
    ckpt = load_checkpoint(tmp_path / "rank0" / "weights" / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2  # every rank's RNG state, for an exact resume
    for name, t in r0["model"].items():
        assert torch.equal(ckpt["model"][name], t)
