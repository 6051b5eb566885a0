"""Build and check the text encoder a ``TextEncoderSpec`` names, before any training starts."""

from __future__ import annotations

from rtvp.errors import ConfigError
from rtvp.models.config import TextEncoderSpec
from rtvp.models.text.base import TextEncoder, build_text_encoder
from rtvp.models.text.cache import default_cache_dir

_FIX = {
    "clip": "e.g. --set model.text_encoder.name=clip --set model.text_encoder.path=/path/to/open_clip_model.bin "
            "(and model.text_encoder.arch=ViT-B-32 or a model-config JSON matching the weights)",
    "minilm": "e.g. --set model.text_encoder.path=/path/to/all-MiniLM-L6-v2 (a local model folder), or "
              "--set model.text_encoder.name=hash for a dependency-free encoder",
}


def encoder_from_spec(spec: TextEncoderSpec | str, cache: bool = True, device: str = "cpu") -> TextEncoder:
    """The encoder of ``spec`` (embeddings cached in ``default_cache_dir()`` when ``cache``)."""
    spec = TextEncoderSpec(spec) if isinstance(spec, str) else spec
    return build_text_encoder(spec.name, cache_dir=default_cache_dir() if cache else None, device=device,
                              **spec.options())


def check_text_encoder(spec: TextEncoderSpec | str, where: str = "model.text_encoder") -> TextEncoder:
    """Build the encoder of ``spec`` and load a CLIP model now, so a bad name or path fails before training.

    Raises:
        ConfigError: naming ``where``, the problem and an example fix.
    """
    spec = TextEncoderSpec(spec) if isinstance(spec, str) else spec
    try:
        encoder = encoder_from_spec(spec, cache=False)
        if spec.name == "clip":
            encoder.num_parameters()  # loads the open_clip model: a wrong file or arch fails here, not in stage 2
    except ConfigError as e:
        fix = _FIX.get(spec.name, "e.g. --set model.text_encoder.name=minilm")
        raise ConfigError(f"{where} ({spec.name}): {e}; {fix}") from None
    return encoder
