"""Learning-rate schedules, as multipliers of the base learning rate per optimiser step."""

from __future__ import annotations

import math


def cosine_restarts(step: int, total_steps: int, cycles: int) -> float:
    """Cosine annealing with warm restarts: exactly ``cycles`` whole cycles in ``total_steps``.

    Stepped per batch, so the period need not be a whole number of epochs (torch's
    CosineAnnealingWarmRestarts needs an integer period). 1 at the start of every cycle,
    approaching 0 at its end.
    """
    return 0.5 * (1 + math.cos(math.pi * ((step * cycles / total_steps) % 1.0)))
