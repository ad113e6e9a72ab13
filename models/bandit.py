"""Multi-armed bandit over recommendation strategies, one independent bandit per context.

A context is a segment key (``str``); an arm is a strategy name. Rewards are fractional in
``[0, 1]`` (1 = the user found the recommendation helpful). Three policies:

- ``"epsilon_greedy"``: try every arm once, then explore uniformly with probability ``epsilon``
  and otherwise pull the best empirical mean.
- ``"ucb1"``: try every arm once, then pull ``argmax mean + sqrt(ucb_c * ln N / n)`` (Auer et al.
  2002; ``ucb_c = 2`` is their constant).
- ``"thompson"``: sample ``Beta(prior_alpha + S, prior_beta + F)`` per arm and pull the argmax,
  where a reward ``r`` adds ``r`` to ``S`` and ``1 - r`` to ``F`` (Agrawal & Goyal 2012).

Only ``pulls`` and ``reward_sum`` are stored per (context, arm); everything else is derived, so
the state is small, exactly JSON round-trippable and easy to write through to a database.
Pure numpy + stdlib: the Ray actor in ``actors/bandit_stats.py`` owns locking and persistence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

ALGORITHMS: Final = ("epsilon_greedy", "ucb1", "thompson")
# Bumped whenever to_dict's layout changes, so old snapshots are refused rather than misread.
STATE_FORMAT: Final = 1
_STATE_KEYS: Final = frozenset(
    {"format", "algorithm", "arms", "epsilon", "ucb_c", "prior_alpha", "prior_beta", "contexts"}
)
_ARM_KEYS: Final = frozenset({"pulls", "reward_sum"})


def _real(value: object, name: str) -> float:
    """``value`` as a finite float; bools and non-numbers are refused (they are always bugs)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out!r}")
    return out


class _ContextState:
    """Per-arm counters of one context, aligned with ``BanditStats.arms``."""

    __slots__ = ("pulls", "reward_sum")

    def __init__(self, n_arms: int) -> None:
        self.pulls: NDArray[np.int64] = np.zeros(n_arms, dtype=np.int64)
        self.reward_sum: NDArray[np.float64] = np.zeros(n_arms, dtype=np.float64)


class BanditStats:
    """Per-context bandit statistics plus the arm-selection policy.

    Parameters
    ----------
    arms : distinct, non-empty strategy names; their order is the order used in ``stats``.
    algorithm : one of ``"epsilon_greedy"``, ``"ucb1"``, ``"thompson"``.
    epsilon : exploration probability of epsilon-greedy, in ``[0, 1]``.
    ucb_c : UCB1 exploration coefficient ``c >= 0`` in the bonus ``sqrt(c * ln N / n)``. ``2`` is
        the textbook value (Hoeffding bound for rewards in [0, 1]); it is conservative because it
        assumes the worst-case reward variance 1/4, so smaller values explore less; ``0`` is greedy.
    prior_alpha, prior_beta : Beta prior pseudo-counts of Thompson sampling, both ``> 0``.

    Unlike a scikit-learn estimator, the constructor validates: a bandit lives for months in an
    actor, so a bad hyperparameter must fail at start-up, not at the first request.
    """

    def __init__(
        self,
        arms: Sequence[str],
        algorithm: str = "thompson",
        *,
        epsilon: float = 0.1,
        ucb_c: float = 2.0,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
    ) -> None:
        if isinstance(arms, str) or not isinstance(arms, Sequence):
            raise ValueError(f"arms must be a sequence of strings, got {type(arms).__name__}")
        if len(arms) == 0:
            raise ValueError("arms must not be empty")
        if not all(isinstance(a, str) and a for a in arms):
            raise ValueError(f"every arm must be a non-empty string, got {list(arms)!r}")
        if len(set(arms)) != len(arms):
            raise ValueError(f"arms must be distinct, got {list(arms)!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
        eps = _real(epsilon, "epsilon")
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {eps}")
        c = _real(ucb_c, "ucb_c")
        if c < 0.0:
            raise ValueError(f"ucb_c must be >= 0, got {c}")
        a0, b0 = _real(prior_alpha, "prior_alpha"), _real(prior_beta, "prior_beta")
        if a0 <= 0.0 or b0 <= 0.0:
            raise ValueError(f"prior_alpha and prior_beta must be > 0, got {a0}, {b0}")

        self.arms: tuple[str, ...] = tuple(arms)
        self.algorithm = algorithm
        self.epsilon = eps
        self.ucb_c = c
        self.prior_alpha = a0
        self.prior_beta = b0
        self._index = {a: i for i, a in enumerate(self.arms)}
        self._contexts: dict[str, _ContextState] = {}

    # ---------------------------------------------------------------------------------------
    # Policy

    def choose(self, context: str, rng: np.random.Generator) -> str:
        """Pick an arm for ``context``; the same state and rng seed give the same arm."""
        state = self._peek(context)
        pulls, sums = state.pulls, state.reward_sum
        if self.algorithm == "thompson":
            alpha = self.prior_alpha + sums
            beta = self.prior_beta + (pulls - sums)
            return self.arms[_argmax(rng.beta(alpha, beta), rng)]

        untried = np.flatnonzero(pulls == 0)
        if untried.size:
            return self.arms[int(untried[rng.integers(untried.size)])]
        means = sums / pulls
        if self.algorithm == "epsilon_greedy":
            if rng.random() < self.epsilon:
                return self.arms[int(rng.integers(len(self.arms)))]
            return self.arms[_argmax(means, rng)]
        # ucb1: every arm has n >= 1 here, so N >= n_arms and the bonus is finite.
        bonus = np.sqrt(self.ucb_c * math.log(int(pulls.sum())) / pulls)
        return self.arms[_argmax(means + bonus, rng)]

    def update(self, arm: str, context: str, reward: float) -> None:
        """Record ``reward`` in ``[0, 1]`` for ``arm`` in ``context`` (created on first use)."""
        i = self._arm_index(arm)
        r = _real(reward, "reward")
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"reward must be in [0, 1], got {r}")
        _check_context(context)
        state = self._contexts.get(context)
        if state is None:
            state = self._contexts[context] = _ContextState(len(self.arms))
        state.pulls[i] += 1
        state.reward_sum[i] += r

    def expected_best(self, context: str) -> str:
        """The greedy arm, for reporting: best posterior mean (Thompson) or empirical mean.

        Ties, and a context with no data, resolve to the earliest arm in ``arms``. Under the
        empirical mean, untried arms rank below every tried arm.
        """
        state = self._peek(context)
        pulls, sums = state.pulls, state.reward_sum
        if self.algorithm == "thompson":
            alpha = self.prior_alpha + sums
            score = alpha / (alpha + self.prior_beta + (pulls - sums))
        else:
            score = np.full(len(self.arms), -np.inf)
            tried = pulls > 0
            score[tried] = sums[tried] / pulls[tried]
        return self.arms[int(np.argmax(score))]

    def reset_context(self, context: str) -> None:
        """Forget everything learnt for ``context`` (no-op if it is unknown)."""
        self._contexts.pop(context, None)

    # ---------------------------------------------------------------------------------------
    # Reporting and persistence

    @property
    def contexts(self) -> list[str]:
        """Contexts that have received at least one update, in insertion order."""
        return list(self._contexts)

    def stats(self) -> dict[str, dict[str, dict[str, float]]]:
        """``context -> arm -> {pulls, reward_sum, mean, alpha, beta}``; mean is 0.0 if unpulled."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for context, state in self._contexts.items():
            per_arm: dict[str, dict[str, float]] = {}
            for i, arm in enumerate(self.arms):
                n, s = int(state.pulls[i]), float(state.reward_sum[i])
                per_arm[arm] = {
                    "pulls": n,
                    "reward_sum": s,
                    "mean": s / n if n else 0.0,
                    "alpha": self.prior_alpha + s,
                    "beta": self.prior_beta + (n - s),
                }
            out[context] = per_arm
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of hyperparameters and counters (see ``from_dict``)."""
        return {
            "format": STATE_FORMAT,
            "algorithm": self.algorithm,
            "arms": list(self.arms),
            "epsilon": self.epsilon,
            "ucb_c": self.ucb_c,
            "prior_alpha": self.prior_alpha,
            "prior_beta": self.prior_beta,
            "contexts": {
                context: {
                    arm: {"pulls": int(state.pulls[i]), "reward_sum": float(state.reward_sum[i])}
                    for i, arm in enumerate(self.arms)
                }
                for context, state in self._contexts.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BanditStats:
        """Rebuild from ``to_dict`` output; raise ``ValueError`` naming the first problem.

        An arm missing from a context starts at zero, so a strategy can be added to ``arms``
        without rewriting old snapshots; an arm not in ``arms`` is refused.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"bandit state must be a mapping, got {type(d).__name__}")
        if set(d) != _STATE_KEYS:
            missing, unknown = sorted(_STATE_KEYS - set(d)), sorted(set(d) - _STATE_KEYS)
            raise ValueError(f"bandit state keys: missing {missing}, unknown {unknown}")
        if d["format"] != STATE_FORMAT or isinstance(d["format"], bool):
            raise ValueError(f"unsupported bandit state format {d['format']!r} != {STATE_FORMAT}")
        if not isinstance(d["algorithm"], str):
            raise ValueError(f"algorithm must be a string, got {d['algorithm']!r}")
        if not isinstance(d["arms"], list):
            raise ValueError(f"arms must be a list, got {type(d['arms']).__name__}")
        bandit = cls(
            d["arms"],
            d["algorithm"],
            epsilon=d["epsilon"],
            ucb_c=d["ucb_c"],
            prior_alpha=d["prior_alpha"],
            prior_beta=d["prior_beta"],
        )
        contexts = d["contexts"]
        if not isinstance(contexts, Mapping):
            raise ValueError(f"contexts must be a mapping, got {type(contexts).__name__}")
        for context, per_arm in contexts.items():
            _check_context(context)
            if not isinstance(per_arm, Mapping):
                raise ValueError(f"context {context!r} must map arms to counters")
            state = _ContextState(len(bandit.arms))
            for arm, counters in per_arm.items():
                if arm not in bandit._index:
                    raise ValueError(f"context {context!r} has stats for unknown arm {arm!r}")
                n, s = _parse_counters(counters, f"{context!r}/{arm!r}")
                state.pulls[bandit._index[arm]] = n
                state.reward_sum[bandit._index[arm]] = s
            bandit._contexts[context] = state
        return bandit

    def __repr__(self) -> str:
        return (
            f"BanditStats(arms={list(self.arms)!r}, algorithm={self.algorithm!r}, "
            f"contexts={len(self._contexts)})"
        )

    # ---------------------------------------------------------------------------------------

    def _peek(self, context: str) -> _ContextState:
        # Reads never create a context: choose() on an unseen key must not grow the state.
        _check_context(context)
        state = self._contexts.get(context)
        return state if state is not None else _ContextState(len(self.arms))

    def _arm_index(self, arm: str) -> int:
        try:
            return self._index[arm]
        except (KeyError, TypeError):
            raise ValueError(f"unknown arm {arm!r}; known arms: {', '.join(self.arms)}") from None


def _check_context(context: object) -> None:
    # JSON object keys are strings, so a non-str context would not survive to_dict/from_dict.
    if not isinstance(context, str):
        raise ValueError(f"context must be a string, got {type(context).__name__} {context!r}")


def _parse_counters(counters: object, where: str) -> tuple[int, float]:
    if not isinstance(counters, Mapping) or set(counters) != _ARM_KEYS:
        raise ValueError(f"stats of {where} must be {{'pulls': int, 'reward_sum': float}}")
    n = counters["pulls"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"pulls of {where} must be a non-negative int, got {n!r}")
    s = _real(counters["reward_sum"], f"reward_sum of {where}")
    # Each reward is in [0, 1], so the sum cannot leave [0, pulls] (float rounding is monotone).
    if not 0.0 <= s <= n:
        raise ValueError(f"reward_sum of {where} must be in [0, pulls={n}], got {s}")
    return n, s


def _argmax(scores: NDArray[np.floating[Any]], rng: np.random.Generator) -> int:
    """Index of the maximum, ties broken uniformly by ``rng``."""
    # Plain Python beats numpy on a handful of arms, and choose() runs once per request.
    values = scores.tolist()
    top = max(values)
    best = [i for i, v in enumerate(values) if v == top]
    return best[0] if len(best) == 1 else best[int(rng.integers(len(best)))]
