"""The names of the served models (registry names, user_config keys, cache-key parts, metric
labels) and which deployment serves each. One place: a typo elsewhere is an import error."""

from __future__ import annotations

from typing import Final

SEGMENTATION: Final = "segmentation"
FORECAST: Final = "forecast"
GOAL_PROBABILITY: Final = "goal_probability"
CQL_LEGACY: Final = "cql_legacy"
CQL_ENHANCED: Final = "cql_enhanced"
# Not registry models, but named alike in training steps and metrics: both CQL networks
# together, and the strategy bandit (the actor).
RECOMMENDER: Final = "recommender"
BANDIT: Final = "bandit"

SEGMENTATION_DEPLOYMENT: Final = "SegmentationDeployment"
FORECASTING_DEPLOYMENT: Final = "ForecastingDeployment"
RECOMMENDER_DEPLOYMENT: Final = "RecommenderDeployment"
INGRESS_DEPLOYMENT: Final = "CoachIngress"

# Deployment name -> the registry models it serves (its user_config.versions keys).
DEPLOYMENT_MODELS: Final[dict[str, tuple[str, ...]]] = {
    SEGMENTATION_DEPLOYMENT: (SEGMENTATION,),
    FORECASTING_DEPLOYMENT: (FORECAST, GOAL_PROBABILITY),
    RECOMMENDER_DEPLOYMENT: (CQL_LEGACY, CQL_ENHANCED),
}
SERVED_MODELS: Final = tuple(m for models in DEPLOYMENT_MODELS.values() for m in models)


def cql_model(variant: str) -> str:
    """The registry name of the CQL network for a state variant ("legacy" or "enhanced")."""
    return CQL_ENHANCED if variant == "enhanced" else CQL_LEGACY


def deployment_of(model: str) -> str:
    """The deployment that serves ``model`` (KeyError for an unknown name)."""
    for deployment, models in DEPLOYMENT_MODELS.items():
        if model in models:
            return deployment
    raise KeyError(model)
