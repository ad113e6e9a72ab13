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

import json
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
#   the header as the request id and echoes it back);
# - what HAProxy answers itself is the app's problem JSON with the right status: 503 with
#   Retry-After while the application is not deployed yet (Serve's 404 "Path not found", for
#   every path, during the first seconds of a start) or has no ingress replica up (Serve's
#   errorfile turns that into a plain-text 500), 502 and 504 for a replica that failed or timed
#   out (also 500 in Serve's). The application is served at "/", so the default backend only
#   answers while it is not deployed.
FRONTEND_BIND = "    bind {{ config.frontend_host }}:{{ config.frontend_port }}\n"

REQUEST_ID = "%[req.hdr(x-request-id)]"  # made safe (or fresh) by the frontend rule below


def _problem(status: int, title: str, code: str, detail: str, retry_after: int = 0) -> str:
    """HAProxy arguments answering the app's problem+json body (problems.problem_response): the
    path and the request id filled in by HAProxy, the body's quotes escaped for its config."""
    fields = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    fields |= {"instance": "<path>", "code": code, "request_id": "<id>"}
    body = json.dumps(fields, separators=(",", ":")).replace('"', '\\"')
    body = body.replace("<path>", "%[path,json(utf8s)]").replace("<id>", REQUEST_ID)
    args = f'status {status} content-type application/problem+json lf-string "{body}"'
    args += f" hdr x-request-id {REQUEST_ID} hdr cache-control no-store"
    return args + (f" hdr retry-after {retry_after}" if retry_after else "")


UNAVAILABLE = ("Service unavailable", "SERVICE_UNAVAILABLE")
STARTING = _problem(503, *UNAVAILABLE, "The server is starting; retry shortly", retry_after=1)
NO_REPLICA = _problem(503, *UNAVAILABLE, "No server is up right now; retry shortly", 1)
BAD_GATEWAY = _problem(502, "Bad gateway", "BAD_GATEWAY", "The server failed; retry")
TIMEOUT = _problem(504, "Gateway timeout", "GATEWAY_TIMEOUT", "The server took too long")
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
    (
        "    http-request return status 404 content-type text/plain lf-string \"Path '%[path]'"
        ' not found. Ping http://.../-/routes for available routes."\n',
        f"    http-request return {STARTING}\n",
    ),
    ("    errorfile 502 {{ config.error_file_path }}\n", f"    http-error {BAD_GATEWAY}\n"),
    ("    errorfile 503 {{ config.error_file_path }}\n", f"    http-error {NO_REPLICA}\n"),
    ("    errorfile 504 {{ config.error_file_path }}\n", f"    http-error {TIMEOUT}\n"),
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
