"""Score the bandit policies against uniform random choice by cumulative regret in simulation.

A Bernoulli bandit with known arm means stands in for users' feedback on each strategy, and all
policies run through ``models.bandit.BanditStats`` in one context, so the numbers describe the
code that serves. Regret is pseudo-regret, ``sum_t (max_k mu_k - mu_{a_t})``: it uses the means
rather than the sampled rewards, so it does not carry the reward noise.

    python -m training.bandit_eval --means 0.2,0.35,0.5,0.65,0.8 --rounds 5000 --seeds 0,1,2

Pure numpy: no database or Ray.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.bandit import ALGORITHMS, BanditStats

PEER = "random"
POLICIES = (PEER, *ALGORITHMS)
_CONTEXT = "sim"


def simulate_regret(
    algorithm: str, arm_means: Sequence[float], rounds: int, seed: int, **params: Any
) -> NDArray[np.float64]:
    """Cumulative pseudo-regret after each of ``rounds`` pulls (shape ``(rounds,)``).

    ``algorithm`` is ``"random"`` (the peer) or a ``BanditStats`` algorithm, which receives
    ``params`` as hyperparameters. Choices and rewards come from separate streams of ``seed``.
    """
    means = np.asarray(arm_means, dtype=np.float64)
    if means.ndim != 1 or means.size == 0:
        raise ValueError("arm_means must be a non-empty 1-D sequence")
    if not np.all((means >= 0.0) & (means <= 1.0)):
        raise ValueError(f"arm_means must lie in [0, 1], got {means.tolist()}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    if algorithm not in POLICIES:
        raise ValueError(f"algorithm must be one of {', '.join(POLICIES)}; got {algorithm!r}")

    # Separate streams, so a policy's choices can't shift the reward draws it is scored on.
    choice_rng, reward_rng = np.random.default_rng(seed).spawn(2)
    gaps = means.max() - means
    if algorithm == PEER:
        if params:
            raise ValueError(f"the random peer takes no parameters, got {sorted(params)}")
        return np.cumsum(gaps[choice_rng.integers(means.size, size=rounds)])

    arms = [f"arm{i}" for i in range(means.size)]
    bandit = BanditStats(arms, algorithm, **params)
    index = {a: i for i, a in enumerate(arms)}
    # Draw all uniforms up front: one call instead of `rounds` keeps the loop on the policy.
    uniforms = reward_rng.random(rounds)
    chosen = np.empty(rounds, dtype=np.int64)
    for t in range(rounds):
        k = index[bandit.choose(_CONTEXT, choice_rng)]
        chosen[t] = k
        bandit.update(arms[k], _CONTEXT, 1.0 if uniforms[t] < means[k] else 0.0)
    return np.cumsum(gaps[chosen])


def compare(
    arm_means: Sequence[float],
    rounds: int,
    seeds: Sequence[int],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """Mean final cumulative regret over ``seeds`` for the random peer and each algorithm.

    ``params`` optionally maps an algorithm to its hyperparameters, e.g. ``{"ucb1": {"ucb_c": 1}}``.
    """
    if len(seeds) == 0:
        raise ValueError("seeds must not be empty")
    params = params or {}
    unknown = set(params) - set(POLICIES)
    if unknown:
        raise ValueError(f"params for unknown algorithms {sorted(unknown)}")
    result: dict[str, float] = {}
    for algorithm in POLICIES:
        kwargs = params.get(algorithm, {})
        finals = [simulate_regret(algorithm, arm_means, rounds, s, **kwargs)[-1] for s in seeds]
        result[algorithm] = float(np.mean(finals))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Print mean final regret per policy and its ratio to the random peer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--means", default="0.2,0.35,0.5,0.65,0.8", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated ints")
    parser.add_argument("--ucb-c", type=float, default=2.0)
    parser.add_argument("--epsilon", type=float, default=0.1)
    args = parser.parse_args(argv)
    means = [float(x) for x in args.means.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    result = compare(
        means,
        args.rounds,
        seeds,
        params={"ucb1": {"ucb_c": args.ucb_c}, "epsilon_greedy": {"epsilon": args.epsilon}},
    )
    peer = result[PEER]
    for algorithm, regret in result.items():
        ratio = regret / peer if peer > 0 else math.nan
        print(f"{algorithm:>15}  regret {regret:9.1f}  ({ratio:6.1%} of random)")


if __name__ == "__main__":
    main()
