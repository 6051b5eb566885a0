"""Inspection service: HTTP API + web page over a ``Predictor`` (``create_app``); imports no training code."""

from rtvp.service.app import create_app
from rtvp.service.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
