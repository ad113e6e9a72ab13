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


# What `fincoach serve` changes in the HAProxy config Serve renders (ray[serve]==2.60.0's
# template; each line is checked to be there exactly once, else nothing is changed and a
# warning says so):
# - the statistics page and the Prometheus exporter listen on 127.0.0.1 only (Serve binds them
#   on every interface, without authentication);
# - X-Forwarded-For is replaced by the address HAProxy saw, so that a client cannot name its
#   own (the app believes the header only from FINCOACH_TRUSTED_PROXIES, loopback here);
# - an X-Request-ID that is not 1-128 safe characters is replaced by a fresh one (Serve uses
#   the header as the request id and echoes it back).
FRONTEND_BIND = "    bind {{ config.frontend_host }}:{{ config.frontend_port }}\n"
TEMPLATE_EDITS = (
    ("    bind :{{ config.metrics_port }}\n", "    bind 127.0.0.1:{{ config.metrics_port }}\n"),
    ("  bind *:{{ config.stats_port }}\n", "  bind 127.0.0.1:{{ config.stats_port }}\n"),
    (
        FRONTEND_BIND,
        FRONTEND_BIND
        + "    http-request set-header X-Forwarded-For %[src]\n"
        + "    http-request set-header x-request-id %[uuid]"
        " unless { req.hdr(x-request-id) -m reg ^[A-Za-z0-9._-]+$ }"
        " { req.hdr(x-request-id),length le 128 }\n",
    ),
)


def hardened_template(template: str) -> str | None:
    """``template`` with TEMPLATE_EDITS applied, or None if any line is not there once."""
    for old, new in TEMPLATE_EDITS:
        if template.count(old) != 1:
            return None
        template = template.replace(old, new)
    return template


def harden_template() -> bool:
    """Apply TEMPLATE_EDITS to the template this process renders HAProxy's config from."""
    from ray.serve._private import haproxy

    hardened = hardened_template(haproxy.HAPROXY_CONFIG_TEMPLATE)
    if hardened is None:
        logger.warning(
            "fincoach: HAProxy's config template is not the one expected (another ray "
            "version?): stats and metrics stay on every interface, X-Forwarded-For as sent"
        )
        return False
    haproxy.HAPROXY_CONFIG_TEMPLATE = hardened
    return True


def _hardened_manager() -> object:
    import ray
    from ray.serve._private import haproxy

    # The plain class under Ray's actor wrapper.
    base = haproxy.HAProxyManager.__ray_metadata__.modified_class.__mro__[1]

    class HardenedHAProxyManager(base):  # type: ignore[valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            harden_template()
            super().__init__(*args, **kwargs)

    return ray.remote(num_cpus=0)(HardenedHAProxyManager)


def controller_hooks() -> None:
    """Everything `fincoach serve` changes in the Serve controller: no fallback proxy, and an
    HAProxy whose config is hardened (TEMPLATE_EDITS)."""
    from ray.serve._private import controller

    no_fallback_proxy()
    controller.HAProxyManager = _hardened_manager()  # type: ignore[assignment]
    logger.info("fincoach: HAProxy stats and metrics on 127.0.0.1, X-Forwarded-For replaced")
