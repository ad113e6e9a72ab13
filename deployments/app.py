"""The application graph: ``serve run deployments.app:build_app`` or serve_config.yaml."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.forecast import ForecastingDeployment
from deployments.ingress import CoachIngress
from deployments.policy import RecommenderDeployment
from deployments.segmentation import SegmentationDeployment
from schemas.app_args import AppArgs


def build_app(args: dict[str, Any]) -> Application:
    """Build the application from its `args:` (validated, so a typo fails the deploy)."""
    app_args = AppArgs.model_validate(args)
    model_dir = app_args.resolved_model_dir()
    return CoachIngress.bind(
        SegmentationDeployment.bind(model_dir),
        ForecastingDeployment.bind(model_dir),
        RecommenderDeployment.bind(model_dir),
        app_args.model_dump(),
    )
