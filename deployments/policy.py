"""The CQL recommender deployment (legacy 17-dim and enhanced state variants)."""

from __future__ import annotations

import numpy as np
from ray import serve

from deployments.base import ModelDeployment
from models.names import cql_model
from models.serving import RecommenderService


@serve.deployment(health_check_period_s=10)
class RecommenderDeployment(ModelDeployment):
    service_class = RecommenderService
    _service: RecommenderService

    async def q_values(self, state: np.ndarray, variant: str) -> tuple[np.ndarray, str]:
        return await self._run(self._service.q_values, state, variant, model=cql_model(variant))

    async def q_values_many(
        self, states: list[np.ndarray], variants: list[str]
    ) -> list[tuple[np.ndarray, str]]:
        """``q_values`` for several requests in one call (the ingress sends together what its
        concurrent requests ask while a call is out: AppArgs.q_value_coalescing)."""
        model = cql_model(variants[0]) if len(set(variants)) == 1 else "cql_mixed"
        return await self._run(self._service.q_values_many, states, variants, model=model)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)  # type: ignore[arg-type]
    async def q_values_batched(
        self, states: list[np.ndarray], variants: list[str]
    ) -> list[tuple[np.ndarray, str]]:
        """The same answers as ``q_values``, computed one forward pass per variant for the
        requests that arrive within 2 ms of each other (AppArgs.recommender_batching)."""
        model = cql_model(variants[0]) if len(set(variants)) == 1 else "cql_mixed"
        return await self._run(self._service.q_values_many, states, variants, model=model)
