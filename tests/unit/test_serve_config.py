"""serve_config.yaml is a valid Serve config that sizes every deployment for a small machine."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

CONFIG = Path(__file__).resolve().parents[2] / "serve_config.yaml"


def _config() -> tuple[dict, ServeDeploySchema]:
    """serve_config.yaml as read, and as Serve validates it."""
    raw = yaml.safe_load(CONFIG.read_text())
    schema = (
        ServeDeploySchema.model_validate(raw)
        if hasattr(ServeDeploySchema, "model_validate")
        else ServeDeploySchema.parse_obj(raw)
    )
    return raw, schema


def test_serve_config_validates_and_sizes_each_deployment() -> None:
    raw, schema = _config()
    (app,) = schema.applications
    assert app.import_path == "deployments.app:build_app"
    assert app.deployments, "every deployment is sized explicitly"
    deployments = {d["name"]: d for d in raw["applications"][0]["deployments"]}
    assert set(deployments) == {
        "CoachIngress",
        "SegmentationDeployment",
        "ForecastingDeployment",
        "RecommenderDeployment",
    }
    for name, deployment in deployments.items():
        assert "max_ongoing_requests" in deployment, name
        assert 0 < deployment["ray_actor_options"]["num_cpus"] < 1, name
        # Laptop sizing: a fixed replica count (the cluster autoscales: test_kuberay).
        assert deployment["num_replicas"] >= 1 and "autoscaling_config" not in deployment, name
        if name != "CoachIngress":
            assert deployment["num_replicas"] == 1, name
            assert "versions" in deployment["user_config"], name


def test_serve_config_logs_json_with_access_logs() -> None:
    _, schema = _config()
    (app,) = schema.applications
    assert app.logging_config is not None
    assert str(app.logging_config.encoding).endswith("JSON")
    assert app.logging_config.enable_access_log is True


def test_build_app_refuses_unknown_args() -> None:
    import pytest
    from pydantic import ValidationError

    from deployments.app import build_app

    with pytest.raises(ValidationError):
        build_app({"modle_dir": "typo"})
