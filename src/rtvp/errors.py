"""Exceptions raised on bad user input. Every message names the file/field and the fix."""

from __future__ import annotations


class RtvpError(Exception):
    """Base class of every error rtvp raises on purpose."""


class ConfigError(RtvpError, ValueError):
    """A config/recipe file has an unknown key, a wrong type or a bad value."""


class DataError(RtvpError, ValueError):
    """A dataset file (image, label, annotation) cannot be read or is malformed."""


class CheckpointError(RtvpError, ValueError):
    """A checkpoint file is not an rtvp checkpoint or comes from an incompatible version."""
