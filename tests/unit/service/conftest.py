"""Fixtures for the service tests: a fake predictor, app/client factories and image bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from service_helpers import encode, grey

from rtvp.service import ServeSettings, create_app
from rtvp.service.testing import FakePredictor


@pytest.fixture
def png() -> bytes:
    """A 200 x 100 grey PNG."""
    return encode(grey())


@pytest.fixture
def fake() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def make_client(fake: FakePredictor) -> Callable[..., TestClient]:
    """``make_client(**settings)`` -> TestClient over ``create_app(fake, ServeSettings(**settings))``."""

    def make(raise_server_exceptions: bool = True, predictor=None, **settings) -> TestClient:
        app = create_app(predictor or fake, ServeSettings(**settings))
        return TestClient(app, raise_server_exceptions=raise_server_exceptions)

    return make


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()
