"""Text encoders: contract (shape, norm, determinism, order), on-disk cache, errors; real packaged MiniLM."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from rtvp.errors import ConfigError
from rtvp.models.text import (
    TEXT_ENCODERS,
    HashingEncoder,
    MiniLMEncoder,
    TextEncoder,
    build_text_encoder,
    cosine,
    default_cache_dir,
)
from rtvp.models.text.hashing import hash_features

TEXTS = ["scratch on steel strip", "crack on glass bottle", "missing hole on pcb", "scratch on steel strip", ""]


class _FakeClipModel(torch.nn.Module):
    """Stand-in for an open_clip model: embeds token ids with a fixed random table (deterministic)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(256, 8)
        torch.nn.init.normal_(self.table.weight, generator=torch.Generator().manual_seed(0))
        self.calls = 0

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.table(tokens).sum(1) + 0.1


@pytest.fixture
def fake_open_clip(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("open_clip")
    mod.get_model_config = lambda arch: {"embed_dim": 8} if arch == "ViT-B-32" else None
    mod.create_model = lambda arch, pretrained, device: _FakeClipModel()

    def tokenizer(texts: list[str]) -> torch.Tensor:
        return torch.tensor([[b for b in t.encode()[:16].ljust(16, b"\0")] for t in texts])

    mod.get_tokenizer = lambda arch: tokenizer
    monkeypatch.setitem(sys.modules, "open_clip", mod)
    return mod


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    enc = MiniLMEncoder()
    enc.model  # noqa: B018 - load once for the module
    return enc


@pytest.fixture(params=["hash", "minilm", "clip"])
def encoder(request: pytest.FixtureRequest, tmp_path: Path) -> TextEncoder:
    if request.param == "minilm":
        return request.getfixturevalue("minilm")
    if request.param == "clip":
        request.getfixturevalue("fake_open_clip")
        (tmp_path / "clip.bin").write_bytes(b"weights")
        return build_text_encoder("clip", path=tmp_path / "clip.bin", batch_size=2)
    return build_text_encoder("hash", dim=32)


def test_contract_shape_norm_no_grad(encoder: TextEncoder):
    out = encoder.encode(TEXTS)
    assert out.shape == (len(TEXTS), encoder.dim) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.allclose(out.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)
    assert not out.requires_grad and not out.is_inference()
    torch.nn.Linear(encoder.dim, 3)(out).sum().backward()  # usable as input to a trainable layer
    assert torch.equal(out[0], out[3])  # repeated prompt -> same row
    assert not torch.allclose(out[0], out[1])


def test_deterministic_and_batch_order_invariant(encoder: TextEncoder):
    ref = encoder.encode(TEXTS)
    assert torch.equal(encoder.encode(TEXTS), ref)
    perm = [4, 2, 0, 3, 1]
    assert torch.equal(encoder.encode([TEXTS[i] for i in perm]), ref[perm])
    # alone or in another batch: the same vector up to float rounding (padding changes the GEMM shapes)
    assert torch.allclose(encoder.encode(TEXTS[1:2]), ref[1:2], atol=1e-6)


def test_empty_and_bad_inputs():
    enc = HashingEncoder(dim=8)
    assert enc.encode([]).shape == (0, 8)
    with pytest.raises(TypeError, match="single string"):
        enc.encode("scratch")
    with pytest.raises(TypeError, match="item 1"):
        enc.encode(["a", 3])


def _count_calls(enc: TextEncoder, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = enc._embed

    def spy(texts: list[str]) -> torch.Tensor:
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(enc, "_embed", spy)
    return calls


def test_cache_hit_skips_the_model_and_survives_a_new_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    enc = build_text_encoder("hash", cache_dir=tmp_path, dim=16)
    calls = _count_calls(enc, monkeypatch)
    first = enc.encode(TEXTS)
    assert calls == [sorted(set(TEXTS))]
    assert torch.equal(enc.encode(TEXTS[::-1]), first.flip(0))
    assert len(calls) == 1  # second encode: no model call
    enc.encode(TEXTS + ["dent on car door"])
    assert calls[-1] == ["dent on car door"]  # only the new prompt is computed
    assert enc.cache.path == tmp_path / "hash-v1-d16-n3.pt"
    assert [p.name for p in tmp_path.iterdir()] == ["hash-v1-d16-n3.pt"]  # atomic write left no temp file

    fresh = HashingEncoder(dim=16, cache_dir=tmp_path)
    monkeypatch.setattr(fresh, "_embed", lambda texts: pytest.fail(f"model called for {texts}"))
    assert torch.equal(fresh.encode(TEXTS), first)
    other = HashingEncoder(dim=8, cache_dir=tmp_path)  # another identity: its own file
    assert other.encode(TEXTS).shape == (5, 8) and other.cache.path.name == "hash-v1-d8-n3.pt"


def test_corrupt_or_foreign_cache_is_ignored_with_warning_and_rebuilt(tmp_path: Path):
    enc = HashingEncoder(dim=16, cache_dir=tmp_path)
    expected = HashingEncoder(dim=16).encode(TEXTS)
    enc.cache.path.write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="corrupt text-embedding cache"):
        assert torch.equal(enc.encode(TEXTS), expected)
    assert torch.equal(HashingEncoder(dim=16, cache_dir=tmp_path).encode(TEXTS), expected)  # rebuilt, no warning

    bad = torch.load(enc.cache.path, weights_only=True)
    bad["embeddings"] = torch.full_like(bad["embeddings"], float("nan"))
    torch.save(bad, enc.cache.path)
    with pytest.warns(UserWarning, match="non-finite"):
        assert torch.equal(HashingEncoder(dim=16, cache_dir=tmp_path).encode(TEXTS), expected)
    bad["encoder"] = "minilm-0123456789ab"
    torch.save(bad, enc.cache.path)
    with pytest.warns(UserWarning, match="made by encoder 'minilm-0123456789ab'"):
        HashingEncoder(dim=16, cache_dir=tmp_path).encode(TEXTS)


def test_unwritable_cache_only_warns(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    enc = HashingEncoder(dim=8, cache_dir=tmp_path / "file" / "sub")  # parent is a file: mkdir fails
    with pytest.warns(UserWarning, match="cannot write text-embedding cache"):
        out = enc.encode(["a", "b"])
    assert torch.equal(out, HashingEncoder(dim=8).encode(["a", "b"]))


def test_registry_and_factory_errors():
    assert TEXT_ENCODERS.names() == ["clip", "hash", "minilm"]
    with pytest.raises(ConfigError, match="unknown text encoder 'bert'; choose one of: clip, hash, minilm"):
        build_text_encoder("bert")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['size'\]; accepted: \['dim', 'ngram'\]"):
        build_text_encoder("hash", size=3)
    with pytest.raises(ConfigError, match="dim >= 2"):
        build_text_encoder("hash", dim=1)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("RTVP_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "text"
    monkeypatch.delenv("RTVP_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "rtvp" / "text"


def test_hash_features_and_similarity():
    assert hash_features("Ab, c!") == ["w:ab", "w:c", "c:<ab", "c:ab>", "c:<c>"]
    assert hash_features(" ?! ") == ["<empty>"]
    enc = HashingEncoder(dim=256)
    a, b, c = enc.encode(["scratch", "scratches", "bottle"])
    assert cosine(a, b) > 0.5 > cosine(a, c)


def test_cosine_helper():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([1.0, 1.0])
    assert torch.allclose(cosine(a, b), torch.tensor([2**-0.5, 2**-0.5]))
    assert cosine(a, a).shape == (2, 2) and torch.allclose(cosine(a, a), torch.eye(2))
    assert cosine(a[0], b).ndim == 0


def test_clip_without_open_clip_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import now raises ImportError
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"pip install 'rtvp\[clip\]'"):
        build_text_encoder("clip", path=tmp_path / "w.bin")
    with pytest.raises(ConfigError, match="needs path="):
        build_text_encoder("clip")


def test_clip_with_fake_open_clip(fake_open_clip: types.ModuleType, tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_text_encoder("clip", pretrained=tmp_path / "missing.bin")
    (tmp_path / "w.bin").write_bytes(b"weights")
    with pytest.raises(ConfigError, match="unknown open_clip arch 'RN1'"):
        build_text_encoder("clip", path=tmp_path / "w.bin", arch="RN1")
    enc = build_text_encoder("clip", pretrained=tmp_path / "w.bin", batch_size=2)
    assert enc.dim == 8 and enc.identity.startswith("clip-ViT-B-32-") and enc.options["arch"] == "ViT-B-32"
    enc.encode(TEXTS)
    assert enc._model_and_tokenizer[0].calls == 2  # 4 unique prompts in batches of 2


def test_minilm_real_model(minilm: MiniLMEncoder, tmp_path: Path):
    assert minilm.dim == 384 and minilm.identity.startswith("minilm-") and minilm.options == {"path": None}
    assert 22_000_000 < minilm.num_parameters() < 23_500_000
    ref, near, far = minilm.encode(["scratch on steel strip", "scratches on a steel plate", "missing cap on bottle"])
    assert cosine(ref, near) > cosine(ref, far) + 0.2
    cached = MiniLMEncoder(cache_dir=tmp_path)
    cached.__dict__["model"] = minilm.model  # share the loaded weights; the cache is what is tested
    first = cached.encode(TEXTS)
    assert torch.allclose(first, minilm.encode(TEXTS), atol=1e-6)
    fresh = MiniLMEncoder(cache_dir=tmp_path)
    assert torch.equal(fresh.encode(TEXTS), first)
    assert "model" not in fresh.__dict__  # a fully cached vocabulary never loads the model


def test_minilm_bad_path(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        MiniLMEncoder(path=tmp_path / "nope")
    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        MiniLMEncoder(path=tmp_path)
