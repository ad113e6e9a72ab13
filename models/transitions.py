"""Logged one-step transitions, the training data of the offline-RL models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.qnet import FloatArray, IntArray


def is_real(arr: NDArray[Any]) -> bool:
    """Real numbers or bools; rejects object, string and complex arrays."""
    kind = arr.dtype.kind
    return kind in "biuf"


@dataclass(eq=False)
class Transitions:
    """Logged one-step transitions ``(s, a, r, s', done)`` with optional behaviour propensities.

    ``propensities[i]`` is the behaviour policy's probability of ``actions[i]`` in ``states[i]``.
    ``dones[i]`` marks a true terminal; time-limit truncation must not be flagged as done,
    otherwise the target drops the bootstrap for states that do have a future.
    """

    states: FloatArray
    actions: IntArray
    rewards: FloatArray
    next_states: FloatArray
    dones: NDArray[Any]
    propensities: FloatArray | None = None

    def __len__(self) -> int:
        return int(np.shape(self.actions)[0]) if np.ndim(self.actions) > 0 else 0

    def validate(self, n_actions: int) -> None:
        """Raise ``ValueError`` naming the first problem found (shape, dtype, NaN/inf, range)."""
        states = np.asarray(self.states)
        next_states = np.asarray(self.next_states)
        actions = np.asarray(self.actions)
        rewards = np.asarray(self.rewards)
        dones = np.asarray(self.dones)
        if states.ndim != 2:
            raise ValueError(f"states must be 2-D (n, d), got shape {states.shape}")
        n, d = states.shape
        if n == 0:
            raise ValueError("transitions are empty")
        if next_states.shape != (n, d):
            raise ValueError(
                f"next_states must have shape {(n, d)} like states, got {next_states.shape}"
            )
        for name, arr in (("actions", actions), ("rewards", rewards), ("dones", dones)):
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        for name, arr in (("states", states), ("next_states", next_states), ("rewards", rewards)):
            if not is_real(arr):
                raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contain NaN or inf values")
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        bad = (actions < 0) | (actions >= n_actions)
        if np.any(bad):
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"action {int(actions[first])} at index {first} is out of range "
                f"[0, {n_actions - 1}] for n_actions={n_actions}"
            )
        if not is_real(dones):
            raise ValueError(f"dones must be bool or 0/1 numbers, got dtype {dones.dtype}")
        if not np.all((dones == 0) | (dones == 1)):
            raise ValueError("dones must contain only 0/1 (or False/True)")
        if self.propensities is not None:
            prop = np.asarray(self.propensities)
            if prop.shape != (n,):
                raise ValueError(f"propensities must have shape ({n},), got {prop.shape}")
            if not is_real(prop):
                raise ValueError(f"propensities must be real numbers, got dtype {prop.dtype}")
            if not np.all(np.isfinite(prop)):
                raise ValueError("propensities contain NaN or inf values")
            if np.any((prop <= 0) | (prop > 1)):
                raise ValueError("propensities must lie in (0, 1]")
