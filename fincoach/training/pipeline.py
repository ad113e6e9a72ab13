"""The training pipeline: simulate, fit every model, score it on held-out data beside its peers,
and write a new registry version of each (with its metrics) plus a model_performance row.

`fincoach train` runs it; `fincoach evaluate` prints the stored table. Every figure is measured on
data the model never saw: another simulator seed for users, the simulated future for outcomes,
held-out seeds of the coaching environment for policies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fincoach.features.state import (
    BEHAVIOR_FEATURE_NAMES,
    ENHANCED_FEATURE_NAMES,
    LEGACY_FEATURE_NAMES,
)
from fincoach.training.datasets import behavior_matrix
from fincoach.training.real_sources import default_real_data, real_histories, real_sources
from fincoach.training.simulator import Population, SimConfig, simulate
from models.registry import Manifest, ModelRegistry
from models.segmentation import Segmenter

MODEL_NAMES = ("segmentation", "forecast", "goal_probability", "recommender", "bandit")
# Registry names of the artifacts each pipeline step writes.
ARTIFACTS = {
    "segmentation": ("segmentation",),
    "forecast": ("forecast",),
    "goal_probability": ("goal_probability",),
    "recommender": ("cql_legacy", "cql_enhanced"),
    "bandit": ("bandit",),
}
# The artifact whose manifest carries each step's evaluation (for `fincoach evaluate`).
EVALUATION_ARTIFACT = {
    "segmentation": "segmentation",
    "forecast": "forecast",
    "goal_probability": "goal_probability",
    "recommender": "cql_enhanced",
    "bandit": "bandit",
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    users: int = 3000
    weeks: int = 104
    seed: int = 42
    quick: bool = False
    # Scoring policies online takes most of a quick run; `fincoach serve` skips it when it only
    # needs demo models (their manifests then say the evaluation was skipped).
    score_policies: bool = True
    # Real transaction histories (CSV, see training.real_data) trained on together with the
    # simulator: the forecaster and the goal model learn from the first REAL_TRAIN_SHARE of
    # each history's time span; the rest is left for `fincoach evaluate --real`.
    real_data: tuple[str, ...] = field(default_factory=lambda: default_real_data())

    @classmethod
    def quick_config(cls, seed: int = 42, *, score_policies: bool = True) -> TrainConfig:
        return cls(users=400, weeks=60, seed=seed, quick=True, score_policies=score_policies)


@dataclass
class StepResult:
    """One pipeline step: its evaluation (nested), and the registry versions it wrote."""

    name: str
    evaluation: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics to dotted keys, numbers only (the registry stores float metrics)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, int | float | np.floating | np.integer) and np.isfinite(value):
            flat[name] = float(value)
    return flat


def populations(config: TrainConfig) -> tuple[Population, Population]:
    """Training users and held-out users (another seed), each with a simulated future."""
    train = simulate(
        SimConfig(n_users=config.users, n_weeks=config.weeks, seed=config.seed, future_weeks=52)
    )
    test = simulate(
        SimConfig(
            n_users=max(config.users // 2, 200),
            n_weeks=config.weeks,
            seed=config.seed + 1,
            future_weeks=52,
        )
    )
    return train, test


def step_segmentation(
    train: Population, test: Population, registry: ModelRegistry, quick: bool
) -> tuple[StepResult, Segmenter]:
    from fincoach.training.segmentation_eval import evaluate_segmentation

    train_X, test_X = behavior_matrix(train), behavior_matrix(test)
    # The confidence is calibrated on the training users' known types (names follow types).
    model = Segmenter().fit(train_X, train.latent).calibrate(train_X, train.latent)
    evaluation = evaluate_segmentation(
        model, train_X, test_X, test.latent, n_bootstrap=3 if quick else 5
    )
    manifest = registry.save(
        "segmentation",
        model,
        metrics=flatten(evaluation),
        feature_names=list(BEHAVIOR_FEATURE_NAMES),
        extra={
            "evaluation": evaluation,
            "trained_on": {"simulator": _sim_setup(train)},
            "evaluated_on": {"simulator": _sim_setup(test)},
        },
    )
    return StepResult("segmentation", evaluation, {"segmentation": manifest.version}), model


def _sim_setup(population: Population) -> dict[str, Any]:
    c = population.config
    return {"users": c.n_users, "weeks": c.n_weeks, "seed": c.seed}


def step_forecast(
    train: Population,
    test: Population,
    registry: ModelRegistry,
    quick: bool,
    real_paths: tuple[str, ...] = (),
) -> StepResult:
    from fincoach.features.forecast_groups import FORECAST_INPUT_NAMES
    from fincoach.training.forecast_eval import evaluate, fit_forecaster

    real = real_histories(real_paths)
    model, trained_on = fit_forecaster(train, real, quick=quick, seed=train.config.seed)
    evaluation = evaluate(test, model)
    settings = {
        "half_life_weeks": model.half_life_,
        "prior_weight_weeks": model.prior_weight_,
        "mood_power": model.mood_power_,
        "interval_tails": model.tails_,
    }
    manifest = registry.save(
        "forecast",
        model,
        metrics=flatten({k: evaluation[k] for k in ("model", "targets")}),
        feature_names=list(FORECAST_INPUT_NAMES),
        extra={
            "evaluation": evaluation,
            "settings": settings,
            "trained_on": {
                **trained_on,
                "real": [
                    {**source, "cutoffs": fitted["cutoffs"]}
                    for source, fitted in zip(
                        real_sources(real, real_paths), trained_on["real"], strict=True
                    )
                ],
            },
            "evaluated_on": {
                "simulator": _sim_setup(test),
                "real": "fincoach evaluate --real PATH: cut-offs after outcomes_until",
            },
        },
    )
    return StepResult("forecast", evaluation, {"forecast": manifest.version})


def step_goal(
    train: Population,
    test: Population,
    registry: ModelRegistry,
    quick: bool,
    real_paths: tuple[str, ...] = (),
) -> StepResult:
    from fincoach.features.goals import GOAL_FEATURE_NAMES
    from fincoach.training.goal_eval import evaluate
    from models.goal import GoalProbabilityModel

    real = real_histories(real_paths)
    model = GoalProbabilityModel()
    evaluation = evaluate(train, test, model, real=real)
    manifest = registry.save(
        "goal_probability",
        model,
        metrics=flatten({k: v for k, v in evaluation.items() if k in ("model", "logistic")}),
        feature_names=list(GOAL_FEATURE_NAMES),
        extra={
            "evaluation": evaluation,
            "trained_on": {"simulator": _sim_setup(train), "real": real_sources(real, real_paths)},
            "evaluated_on": {
                "simulator": _sim_setup(test),
                "real": "fincoach evaluate --real PATH: cut-offs after outcomes_until",
            },
        },
    )
    return StepResult("goal_probability", evaluation, {"goal_probability": manifest.version})


def step_recommender(
    registry: ModelRegistry,
    segmenter: Segmenter,
    quick: bool,
    progress: Progress,
    score: bool = True,
) -> StepResult:
    from fincoach.training.recommender import (
        QUICK_RECOMMENDER,
        RecommenderConfig,
        evaluate_policies,
        train_recommenders,
    )

    config = QUICK_RECOMMENDER if quick else RecommenderConfig()
    trained = train_recommenders(config, segmenter.predict, progress)
    evaluation: dict[str, Any] = (
        evaluate_policies(trained, config, segmenter.predict, progress)
        if score
        else {"skipped": "policies were not scored (fincoach serve demo models)"}
    )
    versions = {}
    for name, agent, features in (
        ("cql_legacy", trained.legacy, LEGACY_FEATURE_NAMES),
        ("cql_enhanced", trained.enhanced, ENHANCED_FEATURE_NAMES),
    ):
        manifest = registry.save(
            name,
            agent,
            metrics=flatten({k: v for k, v in evaluation.items() if k != "per_seed"}),
            feature_names=list(features),
            extra={"evaluation": evaluation, "segmentation_used": True},
        )
        versions[name] = manifest.version
    return StepResult("recommender", evaluation, versions)


def step_bandit(registry: ModelRegistry, quick: bool) -> StepResult:
    from fincoach.features.vocab import STRATEGIES
    from fincoach.training.bandit_eval import compare
    from models.bandit import BanditStats

    means = [0.25, 0.35, 0.40, 0.45, 0.55]
    seeds = range(2) if quick else range(4)
    regret = compare(means, 2000 if quick else 5000, list(seeds), params={"ucb1": {"ucb_c": 0.5}})
    evaluation = {
        "final_regret": regret,
        "ratio_to_random": {k: v / regret["random"] for k, v in regret.items()},
    }
    evaluation["targets"] = {
        "ucb1<=25%_random": evaluation["ratio_to_random"]["ucb1"] <= 0.25,
        "thompson<=25%_random": evaluation["ratio_to_random"]["thompson"] <= 0.25,
    }
    # The artifact is the untrained policy (algorithm and priors) the bandit actor starts from;
    # its statistics come from the database, never from training.
    manifest = registry.save(
        "bandit",
        BanditStats(list(STRATEGIES), algorithm="thompson"),
        metrics=flatten(evaluation),
        feature_names=["segment"],
        extra={"evaluation": evaluation},
    )
    return StepResult("bandit", evaluation, {"bandit": manifest.version})


def resolve_selection(only: Iterable[str] | None) -> set[str]:
    selected = set(only or MODEL_NAMES)
    unknown = selected - set(MODEL_NAMES)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {list(MODEL_NAMES)}")
    return selected


def run(
    config: TrainConfig,
    registry: ModelRegistry,
    *,
    only: Iterable[str] | None = None,
    progress: Progress = lambda _msg: None,
) -> list[StepResult]:
    """Train and evaluate the selected models (all by default); return each step's result."""
    import time

    selected = resolve_selection(only)
    results: list[StepResult] = []
    progress("simulating training and held-out users")
    train, test = populations(config)

    # The enhanced recommender's state uses the segment, so it is trained with the segmenter it
    # will be served with: selecting it retrains the segmenter.
    segmenter: Segmenter | None = None
    if selected & {"segmentation", "recommender"}:
        progress("training segmentation")
        started = time.perf_counter()
        segmentation, segmenter = step_segmentation(train, test, registry, config.quick)
        segmentation.seconds = time.perf_counter() - started
        results.append(segmentation)

    steps: list[tuple[str, Callable[[], StepResult]]] = [
        (
            "forecast",
            lambda: step_forecast(train, test, registry, config.quick, config.real_data),
        ),
        (
            "goal_probability",
            lambda: step_goal(train, test, registry, config.quick, config.real_data),
        ),
        (
            "recommender",
            lambda: step_recommender(
                registry, _required(segmenter), config.quick, progress, config.score_policies
            ),
        ),
        ("bandit", lambda: step_bandit(registry, config.quick)),
    ]
    for name, step in steps:
        if name not in selected:
            continue
        progress(f"training {name}")
        started = time.perf_counter()
        result = step()
        result.seconds = time.perf_counter() - started
        progress(f"{name} done in {result.seconds:.1f} s")
        results.append(result)
    return results


def _required(segmenter: Segmenter | None) -> Segmenter:
    assert segmenter is not None, "segmentation runs whenever a model that needs it does"
    return segmenter


def stored_evaluations(registry: ModelRegistry) -> list[tuple[str, Manifest]]:
    """(step, manifest) of the newest version of each step's artifact, in pipeline order."""
    out = []
    for step in MODEL_NAMES:
        name = EVALUATION_ARTIFACT[step]
        if registry.latest_version(name) is not None:
            out.append((step, registry.manifest(name, None)))
    return out


HEADLINE = {
    "segmentation": "segmenter.ari",
    "forecast": "model.mase",
    "goal_probability": "model.accuracy",
    "recommender": "cql_enhanced.mean",
    "bandit": "ratio_to_random.thompson",
}


async def record_performance(
    database_url: str, results: list[StepResult], sample_count: int
) -> None:
    """One model_performance row per trained artifact."""
    from fincoach.db.engine import make_engine
    from fincoach.db.tables import ModelPerformance

    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            from sqlalchemy import insert

            rows = []
            for result in results:
                flat = flatten(result.evaluation)
                for artifact, version in result.versions.items():
                    rows.append(
                        {
                            "model_name": artifact,
                            "model_version": version,
                            "accuracy_metric": flat.get(HEADLINE[result.name]),
                            "metrics": flat,
                            "sample_count": sample_count,
                        }
                    )
            if rows:
                await conn.execute(insert(ModelPerformance), rows)
    finally:
        await engine.dispose()
