"""Hypothesis profiles: ``ci`` (the default) keeps property tests quick, ``thorough``
searches long (20,000 examples per property test)::

    HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_ledger_properties.py

A property test sizes its run with :func:`examples` - its own count under ``ci``, the
profile's under any other - so a long search needs no edit. ``conftest.py`` loads the
profile named by ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=_QUIET)
settings.register_profile(
    "thorough", max_examples=20_000, deadline=None, suppress_health_check=_QUIET
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def load() -> None:
    settings.load_profile(PROFILE)


def examples(ci: int) -> int:
    """How many examples a property test runs: ``ci`` under the ci profile, else the
    profile's ``max_examples``."""
    return ci if PROFILE == "ci" else settings.get_profile(PROFILE).max_examples
