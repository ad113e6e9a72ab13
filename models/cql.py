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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]
DType = Literal["float32", "float64"]
ProgressCallback = Callable[[int, Mapping[str, float]], None]
PolicyProbsFn = Callable[[FloatArray], ArrayLike]

# A feature whose std is below this is treated as constant (scale 1), as scikit-learn's
# StandardScaler does; flooring it at a tiny value would blow up any unseen value at serving.
_STD_FLOOR = 1e-8
_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8
# Rows per forward pass when scoring a whole data set, to bound the activation memory.
_CHUNK_ROWS = 65_536


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``; same bases as scikit-learn's NotFittedError."""


# --------------------------------------------------------------------------------------------
# Data


def _is_real(arr: NDArray[Any]) -> bool:
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
            if not _is_real(arr):
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
        if not _is_real(dones):
            raise ValueError(f"dones must be bool or 0/1 numbers, got dtype {dones.dtype}")
        if not np.all((dones == 0) | (dones == 1)):
            raise ValueError("dones must contain only 0/1 (or False/True)")
        if self.propensities is not None:
            prop = np.asarray(self.propensities)
            if prop.shape != (n,):
                raise ValueError(f"propensities must have shape ({n},), got {prop.shape}")
            if not _is_real(prop):
                raise ValueError(f"propensities must be real numbers, got dtype {prop.dtype}")
            if not np.all(np.isfinite(prop)):
                raise ValueError("propensities contain NaN or inf values")
            if np.any((prop <= 0) | (prop > 1)):
                raise ValueError("propensities must lie in (0, 1]")


# --------------------------------------------------------------------------------------------
# MLP building blocks (float32 or float64, flat parameter vector with per-layer views)


def _layer_shapes(n_in: int, hidden: Sequence[int], n_out: int) -> list[tuple[int, int]]:
    sizes = [n_in, *hidden, n_out]
    return [(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]


def _n_params(shapes: Sequence[tuple[int, int]]) -> int:
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in shapes)


def _views(
    flat: FloatArray, shapes: Sequence[tuple[int, int]]
) -> tuple[list[FloatArray], list[FloatArray]]:
    """Per-layer weight/bias views into one flat vector, so Adam updates all layers at once."""
    coefs: list[FloatArray] = []
    intercepts: list[FloatArray] = []
    pos = 0
    for fan_in, fan_out in shapes:
        coefs.append(flat[pos : pos + fan_in * fan_out].reshape(fan_in, fan_out))
        pos += fan_in * fan_out
        intercepts.append(flat[pos : pos + fan_out])
        pos += fan_out
    return coefs, intercepts


def _he_init(
    shapes: Sequence[tuple[int, int]], rng: np.random.Generator, dtype: np.dtype[Any]
) -> FloatArray:
    flat = np.zeros(_n_params(shapes), dtype=dtype)
    coefs, _ = _views(flat, shapes)
    for w, (fan_in, _fan_out) in zip(coefs, shapes, strict=True):
        w[...] = rng.standard_normal(w.shape) * math.sqrt(2.0 / fan_in)
    return flat


def _forward(
    coefs: Sequence[FloatArray], intercepts: Sequence[FloatArray], x: FloatArray
) -> FloatArray:
    h = x
    last = len(coefs) - 1
    for i, (w, b) in enumerate(zip(coefs, intercepts, strict=True)):
        z = h @ w
        z += b
        if i < last:
            np.maximum(z, 0, out=z)
        h = z
    return h


def _forward_chunked(
    coefs: Sequence[FloatArray], intercepts: Sequence[FloatArray], x: FloatArray
) -> FloatArray:
    if x.shape[0] <= _CHUNK_ROWS:
        return _forward(coefs, intercepts, x)
    return np.concatenate(
        [
            _forward(coefs, intercepts, x[i : i + _CHUNK_ROWS])
            for i in range(0, x.shape[0], _CHUNK_ROWS)
        ]
    )


def _softmax(logits: FloatArray) -> FloatArray:
    z: FloatArray = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def cql_loss_and_grad(
    coefs: Sequence[FloatArray],
    intercepts: Sequence[FloatArray],
    states: FloatArray,
    actions: IntArray,
    targets: FloatArray,
    *,
    alpha: float,
    huber_delta: float,
    grad_coefs: Sequence[FloatArray] | None = None,
    grad_intercepts: Sequence[FloatArray] | None = None,
) -> tuple[dict[str, float], list[FloatArray], list[FloatArray]]:
    """Loss ``mean Huber(Q(s,a) - y) + alpha * mean(lse_a' Q(s,a') - Q(s,a))`` and its gradient.

    ``targets`` are treated as constants (semi-gradient TD), as in DQN. ``states`` must already
    be standardized. Gradients are written into ``grad_coefs``/``grad_intercepts`` when given
    (the training loop passes views into its flat gradient buffer) and returned either way.
    Returns ``({"loss", "td", "cql"}, grad_coefs, grad_intercepts)``; the CQL term is reported
    even when ``alpha == 0``, since it tracks how far unseen actions are over-valued.
    """
    batch = states.shape[0]
    activations = [states]
    h = states
    for w, b in zip(coefs[:-1], intercepts[:-1], strict=True):
        h = h @ w
        h += b
        np.maximum(h, 0, out=h)
        activations.append(h)
    q = h @ coefs[-1]
    q += intercepts[-1]

    rows = np.arange(batch)
    q_sa = q[rows, actions]
    td = q_sa - targets
    abs_td = np.abs(td)
    quad = np.minimum(abs_td, huber_delta)
    # Equals 0.5*td^2 inside [-delta, delta] and delta*(|td| - delta/2) outside.
    td_loss = float(np.mean(quad * (abs_td - 0.5 * quad)))

    q_max = q.max(axis=1, keepdims=True)
    exp_q = np.exp(q - q_max)
    sum_exp = exp_q.sum(axis=1, keepdims=True)
    logsumexp = (np.log(sum_exp) + q_max)[:, 0]
    cql_loss = float(np.mean(logsumexp - q_sa))

    if alpha > 0:
        # d/dQ of alpha*mean(lse - Q(s,a)) = alpha/B * (softmax(Q) - onehot(a)).
        d_q = exp_q
        d_q *= alpha / batch / sum_exp
        d_q[rows, actions] -= alpha / batch
    else:
        d_q = np.zeros_like(q)
    d_q[rows, actions] += np.clip(td, -huber_delta, huber_delta) / batch

    n_layers = len(coefs)
    g_coefs = list(grad_coefs) if grad_coefs is not None else [np.empty_like(w) for w in coefs]
    g_inter = (
        list(grad_intercepts)
        if grad_intercepts is not None
        else [np.empty_like(b) for b in intercepts]
    )
    delta = d_q
    for i in range(n_layers - 1, -1, -1):
        np.matmul(activations[i].T, delta, out=g_coefs[i])
        np.sum(delta, axis=0, out=g_inter[i])
        if i > 0:
            delta = delta @ coefs[i].T
            # Post-ReLU activation > 0 exactly where the pre-activation was > 0.
            delta *= activations[i] > 0
    losses = {"loss": td_loss + alpha * cql_loss, "td": td_loss, "cql": cql_loss}
    return losses, g_coefs, g_inter


class _Adam:
    """Adam on one flat parameter vector, with optional decoupled (AdamW) weight decay."""

    def __init__(self, n: int, dtype: np.dtype[Any], lr: float, weight_decay: float = 0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.m = np.zeros(n, dtype=dtype)
        self.v = np.zeros(n, dtype=dtype)
        self.t = 0

    def step(self, theta: FloatArray, grad: FloatArray, decay_mask: FloatArray | None) -> None:
        self.t += 1
        self.m *= _ADAM_BETA1
        self.m += (1 - _ADAM_BETA1) * grad
        self.v *= _ADAM_BETA2
        self.v += (1 - _ADAM_BETA2) * (grad * grad)
        # Bias correction folded into the step size and epsilon (Kingma & Ba, sec. 2): the same
        # update as m_hat / (sqrt(v_hat) + eps) with two fewer full-vector passes.
        bc2 = math.sqrt(1 - _ADAM_BETA2**self.t)
        step_size = self.lr * bc2 / (1 - _ADAM_BETA1**self.t)
        denom = np.sqrt(self.v)
        denom += _ADAM_EPS * bc2
        if self.weight_decay > 0 and decay_mask is not None:
            theta -= (self.lr * self.weight_decay) * decay_mask * theta
        theta -= step_size * self.m / denom


def _clip_grad_norm(grad: FloatArray, max_norm: float | None) -> float:
    norm = math.sqrt(float(grad @ grad))
    if max_norm is not None and norm > max_norm:
        grad *= max_norm / norm
    return norm


# --------------------------------------------------------------------------------------------
# Input checks shared by the estimators


def _check_states(states: ArrayLike, n_features: int, name: str = "states") -> FloatArray:
    """Return ``states`` as a float64 (n, d) array; a single 1-D state becomes one row."""
    x = np.asarray(states)
    if not _is_real(x):
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


def _check_n_actions(n_actions: int) -> None:
    if isinstance(n_actions, bool) or not isinstance(n_actions, int | np.integer):
        raise ValueError(f"n_actions must be an int, got {n_actions!r}")
    if n_actions < 2:
        raise ValueError(f"n_actions must be >= 2, got {n_actions}")


def _standardizer(states: FloatArray) -> tuple[FloatArray, FloatArray]:
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
        return _softmax(scores / temperature)

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
        _check_n_actions(self.n_actions)
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
        mean, scale = _standardizer(states)
        x = ((states - mean) / scale).astype(dtype)
        x_next = ((np.asarray(data.next_states, dtype=np.float64) - mean) / scale).astype(dtype)
        actions = np.asarray(data.actions, dtype=np.intp)
        rewards = np.asarray(data.rewards, dtype=dtype)
        # gamma * (1 - done) per transition, so the target is one fused multiply-add.
        discount = (self.gamma * (1.0 - np.asarray(data.dones, dtype=np.float64))).astype(dtype)

        rng = np.random.default_rng(self.seed)
        shapes = _layer_shapes(d, [int(h) for h in self.hidden], self.n_actions)
        theta = _he_init(shapes, rng, dtype)
        target = theta.copy()
        grad = np.zeros_like(theta)
        coefs, intercepts = _views(theta, shapes)
        t_coefs, t_intercepts = _views(target, shapes)
        g_coefs, g_intercepts = _views(grad, shapes)
        decay_mask = np.zeros_like(theta)
        for w in _views(decay_mask, shapes)[0]:
            w[...] = 1.0
        adam = _Adam(theta.size, dtype, self.lr, self.weight_decay)
        tau = self.target_update_tau
        batch = self.batch_size
        rows = np.arange(batch)

        history = {k: np.empty(self.n_steps) for k in ("loss", "td", "cql", "grad_norm")}
        log_every = max(1, self.n_steps // 10)
        for step in range(self.n_steps):
            # Sampling with replacement keeps every step O(batch) whatever the data size.
            idx = rng.integers(0, n, size=batch)
            s_next = x_next[idx]
            a_star = np.argmax(_forward(coefs, intercepts, s_next), axis=1)
            q_next = _forward(t_coefs, t_intercepts, s_next)[rows, a_star]
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
            grad_norm = _clip_grad_norm(grad, self.grad_clip)
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
        if not hasattr(self, "coefs_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")

    def q_values(self, states: ArrayLike) -> FloatArray:
        """Q(s, a) for every action, shape (n, n_actions), float64."""
        self._check_is_fitted()
        x = _check_states(states, self.n_features_in_)
        z = ((x - self.mean_) / self.scale_).astype(self.coefs_[0].dtype)
        return _forward_chunked(self.coefs_, self.intercepts_, z).astype(np.float64)

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
        _check_n_actions(self.n_actions)
        if self.l2 < 0 or self.max_iter < 1 or self.tol < 0:
            raise ValueError("need l2 >= 0, max_iter >= 1 and tol >= 0")
        x_raw = np.asarray(states)
        if x_raw.ndim != 2:
            raise ValueError(f"states must be 2-D (n, d), got shape {x_raw.shape}")
        x = _check_states(x_raw, x_raw.shape[1])
        a = np.asarray(actions)
        if a.shape != (x.shape[0],):
            raise ValueError(f"actions must have shape ({x.shape[0]},), got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {a.dtype}")
        if a.size == 0 or a.min() < 0 or a.max() >= self.n_actions:
            raise ValueError(f"actions must be non-empty and in [0, {self.n_actions - 1}]")

        n, d = x.shape
        self.mean_, self.scale_ = _standardizer(x)
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
            g: FloatArray = z.T @ (_softmax(z @ w) - onehot) / n + penalty * w
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
        if not hasattr(self, "coef_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")
        x = _check_states(states, self.n_features_in_)
        out: FloatArray = ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return out

    def _scores(self, states: ArrayLike) -> FloatArray:
        return self.decision_function(states)


# --------------------------------------------------------------------------------------------
# Fitted Q evaluation


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
    _check_n_actions(n_actions)
    if not 0 <= gamma <= 1 or n_iters < 1:
        raise ValueError("need 0 <= gamma <= 1 and n_iters >= 1")
    if method not in ("mlp", "linear"):
        raise ValueError(f"method must be 'mlp' or 'linear', got {method!r}")
    data.validate(n_actions)
    states = np.asarray(data.states, dtype=np.float64)
    next_states = np.asarray(data.next_states, dtype=np.float64)
    n, d = states.shape
    starts = (
        states if initial_states is None else _check_states(initial_states, d, "initial_states")
    )
    pi_next = _check_probs(policy_probs_fn(next_states), n, n_actions, "next_states")
    pi_start = _check_probs(policy_probs_fn(starts), starts.shape[0], n_actions, "initial_states")
    actions = np.asarray(data.actions, dtype=np.intp)
    rewards = np.asarray(data.rewards, dtype=np.float64)
    discount = gamma * (1.0 - np.asarray(data.dones, dtype=np.float64))
    mean, scale = _standardizer(states)

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
    shapes = _layer_shapes(d, [int(h) for h in hidden], n_actions)
    theta = _he_init(shapes, rng, np.dtype(np.float64))
    grad = np.zeros_like(theta)
    coefs, intercepts = _views(theta, shapes)
    g_coefs, g_intercepts = _views(grad, shapes)
    adam = _Adam(theta.size, theta.dtype, lr)
    for it in range(n_iters):
        if it == 0:
            v_next = np.zeros(n)  # Q_0 = 0, whatever the freshly initialized network says.
        else:
            v_next = np.sum(pi_next * _forward_chunked(coefs, intercepts, x_next), axis=1)
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
    q_start = _forward_chunked(coefs, intercepts, standardize(starts))
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
