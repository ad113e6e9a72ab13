"""The Q-network of the CQL recommender: an MLP with its loss, backward pass and Adam, written
by hand in numpy (float32 or float64, one flat parameter vector with per-layer views), so
serving replicas need no deep-learning framework."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]
_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8
# Rows per forward pass when scoring a whole data set, to bound the activation memory.
_CHUNK_ROWS = 65_536


def layer_shapes(n_in: int, hidden: Sequence[int], n_out: int) -> list[tuple[int, int]]:
    sizes = [n_in, *hidden, n_out]
    return [(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]


def n_params(shapes: Sequence[tuple[int, int]]) -> int:
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in shapes)


def views(
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


def he_init(
    shapes: Sequence[tuple[int, int]], rng: np.random.Generator, dtype: np.dtype[Any]
) -> FloatArray:
    flat = np.zeros(n_params(shapes), dtype=dtype)
    coefs, _ = views(flat, shapes)
    for w, (fan_in, _fan_out) in zip(coefs, shapes, strict=True):
        w[...] = rng.standard_normal(w.shape) * math.sqrt(2.0 / fan_in)
    return flat


def forward(
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


def forward_chunked(
    coefs: Sequence[FloatArray], intercepts: Sequence[FloatArray], x: FloatArray
) -> FloatArray:
    if x.shape[0] <= _CHUNK_ROWS:
        return forward(coefs, intercepts, x)
    return np.concatenate(
        [
            forward(coefs, intercepts, x[i : i + _CHUNK_ROWS])
            for i in range(0, x.shape[0], _CHUNK_ROWS)
        ]
    )


def softmax(logits: FloatArray) -> FloatArray:
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


class Adam:
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


def clip_grad_norm(grad: FloatArray, max_norm: float | None) -> float:
    norm = math.sqrt(float(grad @ grad))
    if max_norm is not None and norm > max_norm:
        grad *= max_norm / norm
    return norm
