"""The coaching environment: simulated users receive one coaching action a week and respond.

It is how every recommender is trained (offline transitions logged by a noisy rule-based
behavior policy) and scored (policies run online on held-out seeds). The ground truth lives in
``training/simulator.py``: ``RESPONSE_ACCEPT`` (how likely each latent type follows each action),
``RESPONSE_SPEND_CUT`` / ``RESPONSE_SAVINGS_UP`` (what following it does) and
``RESPONSE_DECAY`` (how fast the effect fades). On top of that, advice only works where it fits
the situation, which is what makes the state worth reading:

- a spending alert works when spending is running above the usual (velocity > 1.15);
- "reduce dining out" and "review subscriptions" scale with the dining / entertainment share;
- a savings nudge works when little is being saved; praise lands with those who save;
- "build an emergency fund" needs a thin buffer, "pay down debt" needs debt, "goal focus" an
  unfinished goal;
- the same action two weeks running is followed less (fatigue), and advice that is rejected
  costs a little engagement.

Reward: the money the advice saved this week, as a share of the user's weekly income: the same
week is simulated with and without the coaching effects (common random numbers), so the reward
measures the coaching and not the user's luck. Observations are the real feature vectors
(``features.state``) computed from the simulated transactions, as serving would compute them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from fincoach.features.frames import EventFrame, GoalRow, Profile, TransactionFrame, UserSnapshot
from fincoach.features.state import LEGACY_FEATURE_NAMES, behavior_features, enhanced_state
from fincoach.features.vocab import ACTIONS
from fincoach.training.sim_profiles import (
    RESPONSE_ACCEPT,
    RESPONSE_DECAY,
    RESPONSE_SAVINGS_UP,
    RESPONSE_SPEND_CUT,
    seasonality,
)
from fincoach.training.simulator import (
    INCOME_IDX,
    SPEND_IDX,
    SimConfig,
    simulate,
    simulate_week,
    to_transactions,
)
from models.cql import Transitions

N_ACTIONS = len(ACTIONS)
A = {name: i for i, name in enumerate(ACTIONS)}
L = {name: i for i, name in enumerate(LEGACY_FEATURE_NAMES)}
KEEP_WEEKS = 13  # transaction history kept per user (features look back 12 weeks)
REJECTION_COST = 0.01
FATIGUE = 0.5

Policy = Callable[[np.ndarray], np.ndarray]  # enhanced states (n, d) -> actions (n,)
SegmentFn = Callable[[np.ndarray], np.ndarray]  # behavior features (n, k) -> segment ids


@dataclass(frozen=True)
class EnvConfig:
    n_users: int = 500
    warmup_weeks: int = 12
    horizon: int = 8
    seed: int = 0
    start: date = date(2025, 1, 6)


class CoachingEnv:
    """A batch of simulated users stepped together, one week per step."""

    def __init__(self, config: EnvConfig, segment_fn: SegmentFn | None = None) -> None:
        self.config = config
        pop = simulate(
            SimConfig(
                n_users=config.n_users,
                n_weeks=config.warmup_weeks,
                seed=config.seed,
                start=config.start,
                future_weeks=0,
            )
        )
        assert pop.params is not None and pop.events is not None
        self.params = pop.params
        self.rng = np.random.default_rng([config.seed, 1])
        self.week = config.warmup_weeks
        self.season = seasonality(np.arange(config.warmup_weeks + config.horizon + 1), config.start)
        n = config.n_users
        self.mood = np.zeros(n)
        self.cut = np.zeros(n)
        self.save = np.zeros(n)
        self.last_action = np.full(n, -1)
        self.t = 0
        self.segment_fn = segment_fn

        txs = pop.transactions
        bounds = np.searchsorted(txs.user, np.arange(n + 1))
        self._chunks: list[list[TransactionFrame]] = []
        self._opening = np.array([u.opening_balance for u in pop.users])
        for i in range(n):
            lo, hi = bounds[i], bounds[i + 1]
            self._chunks.append(
                [
                    TransactionFrame(
                        txs.occurred_at[lo:hi],
                        txs.amount[lo:hi],
                        txs.category[lo:hi],
                        txs.merchant[lo:hi],
                    )
                ]
            )
        ev = pop.events
        ebounds = np.searchsorted(ev.user, np.arange(n + 1))
        self._events = [
            EventFrame(
                ev.timestamp[ebounds[i] : ebounds[i + 1]],
                ev.event_type[ebounds[i] : ebounds[i + 1]],
            )
            for i in range(n)
        ]
        self._profiles = [
            Profile(0.0, round(u.weekly_income * 52 / 12, 2), u.monthly_budget) for u in pop.users
        ]
        goals: list[list[GoalRow]] = [[] for _ in range(n)]
        for g in pop.goals:
            if g.status == "active":
                goals[g.user].append(
                    GoalRow(g.target_amount, g.current_amount, pop.week_start(g.target_week))
                )
        self._goals = [tuple(g) for g in goals]
        self._states: np.ndarray | None = None
        self._segments: list[int | None] | None = None

    # --- observation ------------------------------------------------------------------------
    def _snapshot(self, i: int) -> UserSnapshot:
        chunks = self._chunks[i]
        frame = TransactionFrame(
            np.concatenate([c.occurred_at for c in chunks]),
            np.concatenate([c.amount for c in chunks]),
            np.concatenate([c.category for c in chunks]),
            np.concatenate([c.merchant for c in chunks]),
        )
        profile = self._profiles[i]
        return UserSnapshot(
            as_of=np.datetime64(self.config.start + timedelta(weeks=self.week), "s"),
            transactions=frame,
            events=self._events[i],
            profile=Profile(
                float(self._opening[i]), profile.monthly_income, profile.monthly_budget
            ),
            goals=self._goals[i],
            last_action=None if self.last_action[i] < 0 else int(self.last_action[i]),
        )

    def observe(self) -> np.ndarray:
        """(n_users, ENHANCED_DIM) enhanced states now; the legacy state is the first 17."""
        if self._states is None:
            snaps = [self._snapshot(i) for i in range(self.config.n_users)]
            if self._segments is None:
                # Segments are assigned once per episode, as the daily refresh job would.
                self._segments = [None] * len(snaps)
                if self.segment_fn is not None:
                    behavior = np.stack([behavior_features(s) for s in snaps])
                    self._segments = [int(s) for s in self.segment_fn(behavior)]
            self._states = np.stack(
                [enhanced_state(s, seg) for s, seg in zip(snaps, self._segments, strict=True)]
            )
        return self._states

    @property
    def done(self) -> bool:
        return self.t >= self.config.horizon

    # --- dynamics ---------------------------------------------------------------------------
    def _situational(self, states: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Multipliers of acceptance and of effect size for each user's action."""
        n = actions.shape[0]
        accept = np.ones(n)
        effect = np.ones(n)
        spending = np.maximum(states[:, L["total_spending"]], 1e-9)
        savings_rate = states[:, L["savings_rate"]]
        velocity = states[:, L["spending_velocity"]]
        monthly_spend = spending * 52 / 12
        buffer_months = states[:, L["current_balance"]] / np.maximum(monthly_spend, 1e-9)
        has_goal = np.array(
            [any(g.current_amount < 0.5 * g.target_amount for g in gs) for gs in self._goals]
        )
        rules: dict[int, tuple[Any, Any]] = {
            A["spending_alert"]: (1.0, np.where(velocity > 1.15, 1.0, 0.2)),
            A["budget_suggestion"]: (1.0, np.where(savings_rate < 0.4, 1.0, 0.4)),
            A["savings_nudge"]: (1.0, np.where(savings_rate < 0.2, 1.0, 0.3)),
            A["positive_reinforcement"]: (np.where(savings_rate > 0.2, 1.0, 0.3), 1.0),
            A["reduce_dining_out"]: (
                1.0,
                np.clip(states[:, L["weekly_dine_out"]] / spending / 0.15, 0.0, 1.5),
            ),
            A["review_subscriptions"]: (
                1.0,
                np.clip(states[:, L["weekly_entertainment"]] / spending / 0.1, 0.0, 1.5),
            ),
            A["build_emergency_fund"]: (np.where(buffer_months < 2.0, 1.0, 0.25), 1.0),
            A["pay_down_debt"]: (np.where(self.params.has_debt, 1.0, 0.1), 1.0),
            A["goal_focus"]: (np.where(has_goal, 1.0, 0.3), 1.0),
        }
        for action, (acc, eff) in rules.items():
            mask = actions == action
            accept[mask] = np.broadcast_to(acc, (n,))[mask]
            effect[mask] = np.broadcast_to(eff, (n,))[mask]
        accept *= np.where(actions == self.last_action, FATIGUE, 1.0)
        return accept, effect

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Apply one action per user, simulate the week, return the rewards."""
        if self.done:
            raise RuntimeError("episode is over; make a new environment")
        actions = np.asarray(actions, dtype=int)
        if (
            actions.shape != (self.config.n_users,)
            or actions.min() < 0
            or actions.max() >= N_ACTIONS
        ):
            raise ValueError(f"expected {self.config.n_users} actions in 0..{N_ACTIONS - 1}")
        states = self.observe()
        latent = self.params.latent
        accept_mult, effect_mult = self._situational(states, actions)
        p_accept = np.clip(RESPONSE_ACCEPT[latent, actions] * accept_mult, 0.0, 1.0)
        accepted = self.rng.random(actions.shape[0]) < p_accept
        decay = RESPONSE_DECAY
        self.cut = decay * self.cut + accepted * RESPONSE_SPEND_CUT[actions] * effect_mult
        self.save = decay * self.save + accepted * RESPONSE_SAVINGS_UP[actions] * effect_mult

        # The same week with and without coaching, from the same random draws.
        season = self.season[self.week]
        saved_state = self.rng.bit_generator.state
        baseline = simulate_week(self.params, self.mood, season, self.rng)
        self.rng.bit_generator.state = saved_state
        treated = simulate_week(
            self.params,
            self.mood,
            season,
            self.rng,
            discretionary_cut=self.cut,
            savings_up=self.save,
        )
        base_spend = baseline.amounts[:, SPEND_IDX].sum(axis=1)
        treated_spend = treated.amounts[:, SPEND_IDX].sum(axis=1)
        reward = (base_spend - treated_spend) / self.params.income
        reward -= REJECTION_COST * (~accepted & (actions != A["continue_current_behavior"]))
        self.mood = treated.mood
        self._append_week(np.round(treated.amounts, 2))
        self.last_action = actions
        self.week += 1
        self.t += 1
        self._states = None
        return reward

    def _append_week(self, amounts: np.ndarray) -> None:
        start = self.config.start + timedelta(weeks=self.week)
        txs, _ = to_transactions(amounts[:, None, :], self.params.latent, start, self.rng)
        bounds = np.searchsorted(txs.user, np.arange(self.config.n_users + 1))
        n_events = self.rng.poisson(self.params.engagement)
        origin = np.datetime64(start, "s")
        for i in range(self.config.n_users):
            lo, hi = bounds[i], bounds[i + 1]
            chunks = self._chunks[i]
            chunks.append(
                TransactionFrame(
                    txs.occurred_at[lo:hi],
                    txs.amount[lo:hi],
                    txs.category[lo:hi],
                    txs.merchant[lo:hi],
                )
            )
            if len(chunks) > KEEP_WEEKS:
                # Fold the oldest week into the opening balance so the balance stays right.
                old = chunks.pop(0)
                sign = np.where(old.category == INCOME_IDX, 1.0, -1.0)
                self._opening[i] += float(np.sum(sign * old.amount))
            ev = self._events[i]
            stamps = origin + np.sort(self.rng.integers(0, 7 * 86400, n_events[i])).astype(
                "timedelta64[s]"
            )
            keep = ev.timestamp >= origin - np.timedelta64(28, "D")
            self._events[i] = EventFrame(
                np.concatenate([ev.timestamp[keep], stamps]),
                np.concatenate([ev.event_type[keep], np.zeros(n_events[i], dtype=int)]),
            )


def run_policy(
    config: EnvConfig,
    policy: Policy,
    *,
    segment_fn: SegmentFn | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """Each user's (discounted) return under ``policy`` over one episode."""
    env = CoachingEnv(config, segment_fn)
    total = np.zeros(config.n_users)
    discount = 1.0
    while not env.done:
        total += discount * env.step(policy(env.observe()))
        discount *= gamma
    return total


def collect(
    config: EnvConfig,
    behavior_probs: Callable[[np.ndarray], np.ndarray],
    *,
    segment_fn: SegmentFn | None = None,
) -> tuple[Transitions, Transitions]:
    """Offline data logged by a stochastic behavior policy, with its propensities:
    (legacy-state transitions, enhanced-state transitions) from the same episodes."""
    env = CoachingEnv(config, segment_fn)
    rows: list[tuple[np.ndarray, ...]] = []
    while not env.done:
        states = env.observe()
        probs = behavior_probs(states)
        u = np.asarray(env.rng.random(probs.shape[0]))[:, None]
        actions = (u > probs.cumsum(axis=1)).sum(axis=1).clip(0, N_ACTIONS - 1)
        rewards = env.step(actions)
        next_states = env.observe()
        done = np.full(actions.shape[0], env.done)
        rows.append(
            (
                states,
                actions,
                rewards,
                next_states,
                done,
                probs[np.arange(actions.shape[0]), actions],
            )
        )
    s, a, r, s2, d, p = (np.concatenate(col) for col in zip(*rows, strict=True))
    legacy = len(LEGACY_FEATURE_NAMES)
    return (
        Transitions(s[:, :legacy], a, r, s2[:, :legacy], d, p),
        Transitions(s, a, r, s2, d, p),
    )
