"""Fitted Q evaluation (Le et al. 2019): the value of a policy estimated from logged data."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from models.cql import check_n_actions, check_states, standardizer
from models.qnet import (
    Adam,
    FloatArray,
    cql_loss_and_grad,
    forward_chunked,
    he_init,
    layer_shapes,
    views,
)
from models.transitions import Transitions

PolicyProbsFn = Callable[[FloatArray], ArrayLike]


def fitted_q_evaluation(
    policy_probs_fn: PolicyProbsFn,
    data: Transitions,
    n_actions: int,
    gamma: float = 0.95,
    n_iters: int = 100,
    seed: int | None = 0,
    *,
    initial_states: ArrayLike | None = None,
    method: Literal["mlp", "linear"] = "mlp",
    hidden: tuple[int, ...] = (64, 64),
    steps_per_iter: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    ridge: float = 1e-3,
) -> float:
    """Estimate the discounted value of a target policy from logged data with FQE.

    Iterates ``Q <- regress(r + gamma * (1 - done) * sum_a' pi(a'|s') Q(s', a'))`` ``n_iters``
    times from ``Q = 0`` (so the truncation bias is at most ``gamma**n_iters * max|Q|``) and
    returns the mean of ``V(s) = sum_a pi(a|s) Q(s, a)`` over ``initial_states``. Transitions
    carry no episode ids, so by default every logged state counts as initial: the result is
    then the policy's value under the logged state distribution; pass the episodes' start states
    to get the usual start-state value.

    ``policy_probs_fn(states)`` maps raw (n, d) states to (n, n_actions) probabilities.
    ``method="linear"``: per-action ridge regression on ``[standardized s, 1]``, exact for one-hot
    (tabular) states. ``method="mlp"``: a ReLU MLP warm-started across iterations and trained
    ``steps_per_iter`` Adam steps on squared error per iteration. Targets are divided by
    ``max|r| / (1 - gamma)`` inside the MLP so its outputs stay O(1); the result is rescaled.
    """
    check_n_actions(n_actions)
    if not 0 <= gamma <= 1 or n_iters < 1:
        raise ValueError("need 0 <= gamma <= 1 and n_iters >= 1")
    if method not in ("mlp", "linear"):
        raise ValueError(f"method must be 'mlp' or 'linear', got {method!r}")
    data.validate(n_actions)
    states = np.asarray(data.states, dtype=np.float64)
    next_states = np.asarray(data.next_states, dtype=np.float64)
    n, d = states.shape
    starts = states if initial_states is None else check_states(initial_states, d, "initial_states")
    pi_next = _check_probs(policy_probs_fn(next_states), n, n_actions, "next_states")
    pi_start = _check_probs(policy_probs_fn(starts), starts.shape[0], n_actions, "initial_states")
    actions = np.asarray(data.actions, dtype=np.intp)
    rewards = np.asarray(data.rewards, dtype=np.float64)
    discount = gamma * (1.0 - np.asarray(data.dones, dtype=np.float64))
    mean, scale = standardizer(states)

    def standardize(s: FloatArray) -> FloatArray:
        return (s - mean) / scale

    if method == "linear":
        feats = np.hstack([standardize(states), np.ones((n, 1))])
        feats_next = np.hstack([standardize(next_states), np.ones((n, 1))])
        feats_start = np.hstack([standardize(starts), np.ones((starts.shape[0], 1))])
        # The design per action never changes, so factor each ridge solve once up front.
        members = [np.flatnonzero(actions == a) for a in range(n_actions)]
        solvers = [
            np.linalg.solve(feats[m].T @ feats[m] + ridge * np.eye(d + 1), feats[m].T)
            for m in members
        ]
        weights = np.zeros((d + 1, n_actions))
        for _ in range(n_iters):
            v_next = np.sum(pi_next * (feats_next @ weights), axis=1)
            y = rewards + discount * v_next
            new = np.zeros_like(weights)
            for a, (m, solver) in enumerate(zip(members, solvers, strict=True)):
                if m.size:
                    new[:, a] = solver @ y[m]
            weights = new
        return float(np.mean(np.sum(pi_start * (feats_start @ weights), axis=1)))

    # MLP variant: the Bellman operator is linear in r, so fitting Q / c with r / c is exact.
    value_scale = float(np.max(np.abs(rewards))) or 1.0
    r_scaled = rewards / value_scale
    x = standardize(states)
    x_next = standardize(next_states)
    rng = np.random.default_rng(seed)
    shapes = layer_shapes(d, [int(h) for h in hidden], n_actions)
    theta = he_init(shapes, rng, np.dtype(np.float64))
    grad = np.zeros_like(theta)
    coefs, intercepts = views(theta, shapes)
    g_coefs, g_intercepts = views(grad, shapes)
    adam = Adam(theta.size, theta.dtype, lr)
    for it in range(n_iters):
        if it == 0:
            v_next = np.zeros(n)  # Q_0 = 0, whatever the freshly initialized network says.
        else:
            v_next = np.sum(pi_next * forward_chunked(coefs, intercepts, x_next), axis=1)
        y = r_scaled + discount * v_next
        for _ in range(steps_per_iter):
            idx = rng.integers(0, n, size=batch_size)
            cql_loss_and_grad(
                coefs,
                intercepts,
                x[idx],
                actions[idx],
                y[idx],
                alpha=0.0,
                huber_delta=math.inf,
                grad_coefs=g_coefs,
                grad_intercepts=g_intercepts,
            )
            adam.step(theta, grad, None)
    q_start = forward_chunked(coefs, intercepts, standardize(starts))
    return float(np.mean(np.sum(pi_start * q_start, axis=1))) * value_scale


def _check_probs(probs: ArrayLike, n: int, n_actions: int, name: str) -> FloatArray:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (n, n_actions):
        raise ValueError(
            f"policy_probs_fn({name}) must return shape {(n, n_actions)}, got {p.shape}"
        )
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1, atol=1e-4):
        raise ValueError(f"policy_probs_fn({name}) must return finite probabilities summing to 1")
    return p
