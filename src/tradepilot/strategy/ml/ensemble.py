"""Combining the members' calibrated probabilities into one vote and a confidence.

With members ``i`` of weight ``w_i`` (renormalised over the members still alive)
and calibrated ``p_i = P(the long beats its costs)``:

* ``p = sum(w_i p_i) / sum(w_i)`` - the ensemble probability;
* the side is BUY when ``p >= 0.5``, else SELL;
* ``agreement`` - the weight share of members whose own vote (``p_i >= 0.5``) is
  that side, in (0, 1];
* ``confidence = max(p, 1 - p) * agreement`` - the probability of the chosen side,
  discounted when the members disagree. With four equal members, a 0.6 gate needs
  all four on the same side and ``p >= 0.6`` (or ``p >= 0.8`` with three).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Vote:
    p_up: float
    agreement: float
    confidence: float
    members: int

    @property
    def buy(self) -> bool:
        return self.p_up >= 0.5


def combine(probs: Mapping[str, float], weights: Mapping[str, float]) -> Vote:
    """The ensemble vote of ``probs`` (member -> calibrated P(up)); raises with no member."""
    if not probs:
        raise ValueError("no member to combine")
    total = math.fsum(weights.get(name, 1.0) for name in probs)
    p = math.fsum(weights.get(name, 1.0) * q for name, q in probs.items()) / total
    buy = p >= 0.5
    agree = math.fsum(weights.get(name, 1.0) for name, q in probs.items() if (q >= 0.5) == buy)
    agreement = agree / total
    side_p = p if buy else 1.0 - p
    return Vote(p, agreement, min(1.0, max(0.0, side_p * agreement)), len(probs))
