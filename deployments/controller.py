"""A hook `fincoach serve` runs inside the Serve controller (``RAY_SERVE_CONTROLLER_CALLBACK_
IMPORT_PATH=deployments.controller:no_fallback_proxy``), before the controller starts proxies.

With HAProxy serving, Serve 2.60 also starts a Python "fallback" proxy (a ProxyActor on :8500,
about 140 MB) for two cases this application does not have: an ingress scaled to zero replicas
(ours has a fixed count) and gRPC (off). HAProxy routes straight to the ingress replicas
(direct ingress), so the fallback proxy never serves a request here; this hook keeps it from
being started. The patched method is private to ray[serve]==2.60.0 (the pinned version);
tests/integration checks that no ProxyActor runs and that requests are answered.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("ray.serve")


def no_fallback_proxy() -> None:
    from ray.serve._private.proxy_state import ProxyStateManager

    def _skip(self: ProxyStateManager, *args: object, **kwargs: object) -> None:
        return None

    ProxyStateManager._start_fallback_proxy_if_needed = _skip  # type: ignore[method-assign]
    logger.info("fincoach: no fallback Python proxy beside HAProxy (the ingress never scales to 0)")
