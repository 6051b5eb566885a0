"""rtvp's OpenMP wait-policy default: PASSIVE only on an oversubscribed machine, a user's value always kept."""

from __future__ import annotations

import os

import pytest

import rtvp


@pytest.fixture
def cpus(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    return 2


@pytest.mark.parametrize(("load", "expected"), [(0.3, None), (2.0, None), (2.5, "PASSIVE"), (9.0, "PASSIVE")])
def test_passive_only_when_load_exceeds_the_usable_cpus(cpus: int, monkeypatch: pytest.MonkeyPatch, load: float,
                                                        expected: str | None):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    rtvp._default_wait_policy()
    assert os.environ.get("OMP_WAIT_POLICY") == expected


@pytest.mark.parametrize("value", ["ACTIVE", "PASSIVE"])
def test_a_value_the_user_set_is_kept(cpus: int, monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("OMP_WAIT_POLICY", value)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0 if value == "PASSIVE" else 9.0, 0.0, 0.0))
    rtvp._default_wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == value


def test_the_recorded_policy_names_libgomps_default_when_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert rtvp.omp_wait_policy() == "libgomp default"
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert rtvp.omp_wait_policy() == "PASSIVE"
