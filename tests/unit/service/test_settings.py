"""ServeSettings validation and the API-key environment lookup."""

from __future__ import annotations

import pytest

from rtvp.errors import ConfigError
from rtvp.service.guard import key_matches, presented_key
from rtvp.service.settings import FORM_OVERHEAD_BYTES, ServeSettings, api_key_from_env


def test_defaults_are_safe():
    s = ServeSettings()
    assert (s.host, s.port, s.api_key, s.loopback) == ("127.0.0.1", 8000, None, True)
    assert s.max_body_bytes == s.max_upload_bytes + FORM_OVERHEAD_BYTES
    assert "s3cret" not in repr(ServeSettings(api_key="s3cret"))  # the key never shows in logs


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.8.0.1", True),
                                       ("0.0.0.0", False), ("192.168.1.4", False), ("example.com", False)])
def test_loopback(host, loop):
    assert ServeSettings(host=host).loopback is loop


@pytest.mark.parametrize("kw", [{"port": 0}, {"port": 70000}, {"max_upload_bytes": 0}, {"max_pixels": -1},
                                {"workers": 0}, {"max_queue": 0}, {"content_types": ()}, {"api_key": "  "}])
def test_bad_settings(kw):
    with pytest.raises(ConfigError):
        ServeSettings(**kw)


def test_content_types_normalised():
    assert ServeSettings(content_types=(" Image/PNG ",)).content_types == ("image/png",)


def test_api_key_from_env(monkeypatch):
    assert api_key_from_env(None) is None
    monkeypatch.setenv("RTVP_T_KEY", "abc")
    assert api_key_from_env("RTVP_T_KEY") == "abc"
    monkeypatch.setenv("RTVP_T_KEY", " ")
    with pytest.raises(ConfigError, match="RTVP_T_KEY"):
        api_key_from_env("RTVP_T_KEY")
    monkeypatch.delenv("RTVP_T_KEY")
    with pytest.raises(ConfigError, match="unset or empty"):
        api_key_from_env("RTVP_T_KEY")


def test_presented_key_and_compare():
    assert presented_key({"authorization": "Bearer  k1 "}) == "k1"
    assert presented_key({"authorization": "Basic k1", "x-api-key": "k2"}) == "k2"
    assert presented_key({}) is None
    assert key_matches("k1", "k1") and not key_matches("k1", "k2") and not key_matches(None, "k1")
    assert key_matches("ключ", "ключ")  # non-ASCII keys compare as UTF-8 bytes
