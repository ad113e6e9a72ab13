"""The segmentation model deployment."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from deployments.base import ModelDeployment
from models.names import SEGMENTATION
from models.serving import SegmentationService


@serve.deployment(health_check_period_s=10)
class SegmentationDeployment(ModelDeployment):
    service_class = SegmentationService
    _service: SegmentationService

    async def assign(self, features: np.ndarray) -> list[dict[str, Any]]:
        return await self._run(self._service.assign, features, model=SEGMENTATION)

    async def characteristics(self) -> list[dict[str, Any]]:
        return self._service.characteristics()

    async def standardize(self, features: np.ndarray) -> np.ndarray:
        return await self._run(self._service.standardize, features, model=SEGMENTATION)
