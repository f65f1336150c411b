"""Shared test setup: the Hypothesis profile (see ``hypothesis_profiles.py``)."""

from __future__ import annotations

import hypothesis_profiles

hypothesis_profiles.load()
