"""The forecasting deployment: weekly spending per category and goal-achievement probability."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from ray import serve

from deployments.base import ModelDeployment
from models.names import FORECAST, GOAL_PROBABILITY
from models.serving import ForecastingService


@serve.deployment(health_check_period_s=10)
class ForecastingDeployment(ModelDeployment):
    service_class = ForecastingService
    _service: ForecastingService

    async def forecast(
        self, history: np.ndarray, segment: int | None, horizon: int, week_of_year: int
    ) -> tuple[np.ndarray, str]:
        return await self._run(
            self._service.forecast, history, segment, horizon, week_of_year, model=FORECAST
        )

    async def forecast_total(self, history: Any, horizon: int) -> tuple[dict[str, Any], str]:
        return await self._run(self._service.forecast_total, history, horizon, model=FORECAST)

    async def goal(
        self, features: np.ndarray, saving_inputs: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        return await self._run(self._service.goal, features, saving_inputs, model=GOAL_PROBABILITY)
