"""Discrete-action Conservative Q-Learning (CQL), behaviour cloning and fitted Q evaluation.

Pure numpy: the MLP, its backward pass and Adam are written by hand so serving replicas need no
deep-learning framework. Classes follow scikit-learn's conventions (``__init__`` stores
hyperparameters, ``fit`` returns ``self``, fitted attributes end in ``_``) and hold only plain
numpy arrays and Python scalars, so ``joblib.dump`` round-trips them exactly.

References: Kumar et al. 2020 (CQL(H) penalty), van Hasselt et al. 2016 (double DQN),
Le et al. 2019 (fitted Q evaluation).
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.errors import NotFittedError, check_fitted
from models.qnet import (
    Adam,
    FloatArray,
    clip_grad_norm,
    cql_loss_and_grad,
    forward,
    forward_chunked,
    he_init,
    layer_shapes,
    softmax,
    views,
)
from models.transitions import Transitions, is_real

__all__ = ["BehaviorCloning", "CqlAgent", "NotFittedError", "Transitions"]

logger = logging.getLogger(__name__)

DType = Literal["float32", "float64"]
ProgressCallback = Callable[[int, Mapping[str, float]], None]

# A feature whose std is below this is treated as constant (scale 1), as scikit-learn's
# StandardScaler does; flooring it at a tiny value would blow up any unseen value at serving.
_STD_FLOOR = 1e-8


# --------------------------------------------------------------------------------------------
# Input checks shared by the estimators


def check_states(states: ArrayLike, n_features: int, name: str = "states") -> FloatArray:
    """Return ``states`` as a float64 (n, d) array; a single 1-D state becomes one row."""
    x = np.asarray(states)
    if not is_real(x):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one state) or 2-D (n, d), got {x.ndim}-D")
    if x.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features, got {x.shape[1]}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contain NaN or inf values")
    return x


def _check_temperature(temperature: float) -> None:
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")


def check_n_actions(n_actions: int) -> None:
    if isinstance(n_actions, bool) or not isinstance(n_actions, int | np.integer):
        raise ValueError(f"n_actions must be an int, got {n_actions!r}")
    if n_actions < 2:
        raise ValueError(f"n_actions must be >= 2, got {n_actions}")


def standardizer(states: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean = states.mean(axis=0)
    scale = states.std(axis=0)
    scale[scale < _STD_FLOOR] = 1.0
    return mean, scale


def _dtype(name: str) -> np.dtype[Any]:
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return np.dtype(name)


class _DiscretePolicy:
    """Shared predict / probabilities / sampling on top of per-action scores."""

    n_actions: int

    def _scores(self, states: ArrayLike) -> FloatArray:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as passed to ``__init__`` (for artifact metadata)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def predict(self, states: ArrayLike) -> NDArray[np.intp]:
        """Greedy action per state, shape (n,); a 1-D input counts as one state."""
        greedy: NDArray[np.intp] = np.argmax(self._scores(states), axis=1)
        return greedy

    def action_probabilities(self, states: ArrayLike, temperature: float = 1.0) -> FloatArray:
        """``softmax(scores / temperature)``, shape (n, n_actions); temperature 0 is greedy."""
        _check_temperature(temperature)
        scores = self._scores(states)
        if temperature == 0:
            probs = np.zeros_like(scores)
            probs[np.arange(scores.shape[0]), np.argmax(scores, axis=1)] = 1.0
            return probs
        return softmax(scores / temperature)

    def sample_action(
        self,
        states: ArrayLike,
        temperature: float = 1.0,
        rng: np.random.Generator | int | None = None,
    ) -> NDArray[np.intp]:
        """Draw one action per state from ``action_probabilities``; shape (n,)."""
        probs = self.action_probabilities(states, temperature)
        gen = np.random.default_rng(rng)
        cdf = np.cumsum(probs, axis=1)
        u: FloatArray = gen.random(size=(int(probs.shape[0]), 1)) * cdf[:, -1:]
        # Inverse CDF; the clip guards against u landing on the top edge through rounding.
        drawn: NDArray[np.intp] = np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)
        return drawn.astype(np.intp)


# --------------------------------------------------------------------------------------------
# CQL agent


class CqlAgent(_DiscretePolicy):
    """Discrete-action CQL(H) on a ReLU MLP; ``alpha=0`` gives plain offline double DQN.

    Loss per minibatch: ``mean Huber(Q(s,a) - y) + alpha * mean(logsumexp_a' Q(s,a') - Q(s,a))``
    with the double-DQN target ``y = r + gamma * (1 - done) * Q_target(s', argmax_a Q(s', a))``.
    The target network tracks the online one by Polyak averaging with ``target_update_tau``.
    ``weight_decay`` is decoupled (AdamW) and applies to weights, not biases.
    """

    def __init__(
        self,
        n_actions: int,
        hidden: tuple[int, ...] = (128, 128),
        alpha: float = 1.0,
        gamma: float = 0.95,
        lr: float = 1e-3,
        batch_size: int = 256,
        n_steps: int = 5_000,
        target_update_tau: float = 0.005,
        huber_delta: float = 1.0,
        weight_decay: float = 0.0,
        grad_clip: float | None = 10.0,
        seed: int | None = 0,
        dtype: DType = "float32",
        verbose: int = 0,
    ) -> None:
        self.n_actions = n_actions
        self.hidden = hidden
        self.alpha = alpha
        self.gamma = gamma
        self.lr = lr
        self.batch_size = batch_size
        self.n_steps = n_steps
        self.target_update_tau = target_update_tau
        self.huber_delta = huber_delta
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.seed = seed
        self.dtype = dtype
        self.verbose = verbose

    def _validate_params(self) -> np.dtype[Any]:
        check_n_actions(self.n_actions)
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(
                f"hidden must be a non-empty tuple of positive ints, got {self.hidden}"
            )
        checks = [
            (self.alpha >= 0, "alpha must be >= 0"),
            (0 <= self.gamma <= 1, "gamma must be in [0, 1]"),
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.n_steps >= 1, "n_steps must be >= 1"),
            (0 < self.target_update_tau <= 1, "target_update_tau must be in (0, 1]"),
            (self.huber_delta > 0, "huber_delta must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be None or > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return _dtype(self.dtype)

    def fit(self, data: Transitions, callback: ProgressCallback | None = None) -> CqlAgent:
        """Train on logged transitions; ``callback(step, losses)`` runs after every step."""
        dtype = self._validate_params()
        data.validate(self.n_actions)
        states = np.asarray(data.states, dtype=np.float64)
        n, d = states.shape
        # Fitted attributes are set only at the end, so a failed refit leaves no mixed state.
        mean, scale = standardizer(states)
        x = ((states - mean) / scale).astype(dtype)
        x_next = ((np.asarray(data.next_states, dtype=np.float64) - mean) / scale).astype(dtype)
        actions = np.asarray(data.actions, dtype=np.intp)
        rewards = np.asarray(data.rewards, dtype=dtype)
        # gamma * (1 - done) per transition, so the target is one fused multiply-add.
        discount = (self.gamma * (1.0 - np.asarray(data.dones, dtype=np.float64))).astype(dtype)

        rng = np.random.default_rng(self.seed)
        shapes = layer_shapes(d, [int(h) for h in self.hidden], self.n_actions)
        theta = he_init(shapes, rng, dtype)
        target = theta.copy()
        grad = np.zeros_like(theta)
        coefs, intercepts = views(theta, shapes)
        t_coefs, t_intercepts = views(target, shapes)
        g_coefs, g_intercepts = views(grad, shapes)
        decay_mask = np.zeros_like(theta)
        for w in views(decay_mask, shapes)[0]:
            w[...] = 1.0
        adam = Adam(theta.size, dtype, self.lr, self.weight_decay)
        tau = self.target_update_tau
        batch = self.batch_size
        rows = np.arange(batch)

        history = {k: np.empty(self.n_steps) for k in ("loss", "td", "cql", "grad_norm")}
        log_every = max(1, self.n_steps // 10)
        for step in range(self.n_steps):
            # Sampling with replacement keeps every step O(batch) whatever the data size.
            idx = rng.integers(0, n, size=batch)
            s_next = x_next[idx]
            a_star = np.argmax(forward(coefs, intercepts, s_next), axis=1)
            q_next = forward(t_coefs, t_intercepts, s_next)[rows, a_star]
            y = rewards[idx] + discount[idx] * q_next
            losses, _, _ = cql_loss_and_grad(
                coefs,
                intercepts,
                x[idx],
                actions[idx],
                y,
                alpha=self.alpha,
                huber_delta=self.huber_delta,
                grad_coefs=g_coefs,
                grad_intercepts=g_intercepts,
            )
            grad_norm = clip_grad_norm(grad, self.grad_clip)
            adam.step(theta, grad, decay_mask)
            target += tau * (theta - target)

            for key, value in losses.items():
                history[key][step] = value
            history["grad_norm"][step] = grad_norm
            if callback is not None:
                callback(step, {**losses, "grad_norm": grad_norm})
            if self.verbose and (step + 1) % log_every == 0:
                logger.info(
                    "CQL step %d/%d loss=%.4f td=%.4f cql=%.4f",
                    step + 1,
                    self.n_steps,
                    losses["loss"],
                    losses["td"],
                    losses["cql"],
                )
            if not math.isfinite(losses["loss"]):
                raise FloatingPointError(
                    f"CQL loss became non-finite at step {step}; lower lr or rescale rewards"
                )

        self.mean_, self.scale_ = mean, scale
        # Copies, not views, so the pickled model holds plain independent arrays.
        self.coefs_ = [w.copy() for w in coefs]
        self.intercepts_ = [b.copy() for b in intercepts]
        self.loss_history_ = history
        self.n_features_in_ = d
        return self

    def _check_is_fitted(self) -> None:
        check_fitted(self, "coefs_")

    def q_values(self, states: ArrayLike) -> FloatArray:
        """Q(s, a) for every action, shape (n, n_actions), float64."""
        self._check_is_fitted()
        x = check_states(states, self.n_features_in_)
        z = ((x - self.mean_) / self.scale_).astype(self.coefs_[0].dtype)
        return forward_chunked(self.coefs_, self.intercepts_, z).astype(np.float64)

    def _scores(self, states: ArrayLike) -> FloatArray:
        return self.q_values(states)


# --------------------------------------------------------------------------------------------
# Behaviour cloning


class BehaviorCloning(_DiscretePolicy):
    """Multinomial logistic regression of logged actions on states (estimates the logging policy).

    Fit by Nesterov-accelerated full-batch gradient descent on standardized inputs; the step size
    is 1/L from a power-iteration bound, so the convex objective converges without tuning.
    ``l2`` penalizes weights, not intercepts (as scikit-learn does).
    """

    def __init__(
        self, n_actions: int, l2: float = 1e-3, max_iter: int = 500, tol: float = 1e-5
    ) -> None:
        self.n_actions = n_actions
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, states: ArrayLike, actions: ArrayLike) -> BehaviorCloning:
        """Fit on ``states`` (n, d) and integer ``actions`` (n,)."""
        check_n_actions(self.n_actions)
        if self.l2 < 0 or self.max_iter < 1 or self.tol < 0:
            raise ValueError("need l2 >= 0, max_iter >= 1 and tol >= 0")
        x_raw = np.asarray(states)
        if x_raw.ndim != 2:
            raise ValueError(f"states must be 2-D (n, d), got shape {x_raw.shape}")
        x = check_states(x_raw, x_raw.shape[1])
        a = np.asarray(actions)
        if a.shape != (x.shape[0],):
            raise ValueError(f"actions must have shape ({x.shape[0]},), got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {a.dtype}")
        if a.size == 0 or a.min() < 0 or a.max() >= self.n_actions:
            raise ValueError(f"actions must be non-empty and in [0, {self.n_actions - 1}]")

        n, d = x.shape
        self.mean_, self.scale_ = standardizer(x)
        z = np.hstack([(x - self.mean_) / self.scale_, np.ones((n, 1))])
        onehot = np.zeros((n, self.n_actions))
        onehot[np.arange(n), a] = 1.0
        penalty = np.ones((d + 1, 1))
        penalty[-1] = 0.0
        penalty *= self.l2

        # Softmax cross-entropy has Hessian <= 0.5 * Z'Z/n (x) I, so L bounds the curvature.
        v = np.ones(d + 1) / math.sqrt(d + 1)
        for _ in range(30):
            v = z.T @ (z @ v) / n
            v /= np.linalg.norm(v)
        lam = float(v @ (z.T @ (z @ v)) / n)
        step = 1.0 / (0.5 * lam * 1.05 + self.l2 + 1e-12)

        def gradient(w: FloatArray) -> FloatArray:
            g: FloatArray = z.T @ (softmax(z @ w) - onehot) / n + penalty * w
            return g

        w = np.zeros((d + 1, self.n_actions))
        w_prev = w
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            look = w + (n_iter - 1) / (n_iter + 2) * (w - w_prev)
            g = gradient(look)
            w_prev, w = w, look - step * g
            if float(np.max(np.abs(g))) < self.tol:
                break
        self.coef_ = w[:-1].copy()
        self.intercept_ = w[-1].copy()
        self.n_iter_ = n_iter
        self.n_features_in_ = d
        return self

    def decision_function(self, states: ArrayLike) -> FloatArray:
        """Per-action logits, shape (n, n_actions)."""
        check_fitted(self, "coef_")
        x = check_states(states, self.n_features_in_)
        out: FloatArray = ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return out

    def _scores(self, states: ArrayLike) -> FloatArray:
        return self.decision_function(states)
