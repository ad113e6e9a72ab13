"""deploy/kuberay/rayservice.yaml carries serve_config.yaml's applications, with the cluster's own
sizing (deploy/kuberay/cluster_sizing.yaml) in place of the laptop's (no Ray)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.sync_kuberay import (
    CLUSTER_SIZING,
    MANIFEST,
    POD_HTTP_HOST,
    SERVE_CONFIG,
    cluster_config,
    embedded_config,
    render,
)

ROOT = Path(__file__).resolve().parents[2]


def _manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def _serve_config() -> dict[str, Any]:
    return yaml.safe_load(SERVE_CONFIG.read_text())


def _sizing() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_SIZING.read_text())


SIZING_KEYS = {"num_replicas", "autoscaling_config", "ray_actor_options"}


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = manifest["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_kuberay_manifest_embeds_the_serve_config_with_the_cluster_sizing() -> None:
    manifest, config = _manifest(), _serve_config()
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == "RayService"
    embedded = embedded_config(manifest)
    assert embedded == cluster_config(config, _sizing()), (
        "run `python -m deploy.sync_kuberay` after editing serve_config.yaml"
    )
    assert embedded["http_options"]["port"] == config["http_options"]["port"]
    assert embedded["http_options"]["host"] == POD_HTTP_HOST
    # Apart from the sizing of each deployment, the application is the laptop's exactly: the
    # same deployments, args, logging, user_config (model versions) and limits.
    (ours,), (theirs,) = config["applications"], embedded["applications"]
    assert {k: v for k, v in theirs.items() if k != "deployments"} == {
        k: v for k, v in ours.items() if k != "deployments"
    }
    for mine, pod in zip(ours["deployments"], theirs["deployments"], strict=True):
        assert {k: v for k, v in pod.items() if k not in SIZING_KEYS} == {
            k: v for k, v in mine.items() if k not in SIZING_KEYS
        }
    rest = {k: v for k, v in embedded.items() if k not in ("http_options", "applications")}
    assert rest == {k: v for k, v in config.items() if k not in ("http_options", "applications")}


def test_the_cluster_keeps_its_own_sizing() -> None:
    """The cluster autoscales the models and runs two ingress replicas, whatever the laptop's
    file says; a sizing entry replaces num_replicas by autoscaling_config and back."""
    (app,) = embedded_config(_manifest())["applications"]
    pods = {d["name"]: d for d in app["deployments"]}
    for name, wanted in _sizing()["deployments"].items():
        for key, value in wanted.items():
            assert pods[name][key] == value, (name, key)
        if "autoscaling_config" in wanted:
            assert "num_replicas" not in pods[name]
    laptop = _serve_config()
    laptop["applications"][0]["deployments"][1]["num_replicas"] = 5
    (changed,) = cluster_config(laptop, _sizing())["applications"]
    assert "num_replicas" not in changed["deployments"][1]
    with pytest.raises(Exception, match="NoSuchDeployment"):
        cluster_config(laptop, {"deployments": {"NoSuchDeployment": {"num_replicas": 1}}})


def test_kuberay_manifest_is_what_the_sync_script_writes() -> None:
    current = MANIFEST.read_text()
    assert render(current, SERVE_CONFIG.read_text()) == current, (
        "deploy/kuberay/rayservice.yaml is out of date: run `python -m deploy.sync_kuberay`"
    )


def test_kuberay_sync_replaces_a_stale_block_and_keeps_the_rest() -> None:
    config = _serve_config()
    config["applications"][0]["deployments"][0]["num_replicas"] = 7
    config["http_options"]["port"] = 8123
    changed = render(MANIFEST.read_text(), yaml.safe_dump(config, sort_keys=False))
    manifest = yaml.safe_load(changed)
    embedded = embedded_config(manifest)
    assert embedded == cluster_config(config, _sizing())
    assert embedded["applications"][0]["deployments"][0]["num_replicas"] == 2  # the cluster's
    assert embedded["http_options"]["port"] == 8123
    assert embedded["http_options"]["host"] == POD_HTTP_HOST
    assert manifest["spec"]["rayClusterConfig"] == _manifest()["spec"]["rayClusterConfig"]


def test_kuberay_head_and_one_worker_group_with_fractional_sizing() -> None:
    cluster = _manifest()["spec"]["rayClusterConfig"]
    assert len(cluster["workerGroupSpecs"]) == 1
    head_ports = {
        p["name"]: p["containerPort"]
        for p in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert head_ports["serve"] == _serve_config()["http_options"]["port"]
    head_cpus = float(cluster["headGroupSpec"]["rayStartParams"]["num-cpus"])

    def cluster_cpus(bound: str) -> float:
        return head_cpus + sum(
            float(g["rayStartParams"]["num-cpus"]) * g[bound] for g in cluster["workerGroupSpecs"]
        )

    (app,) = embedded_config(_manifest())["applications"]
    at_min = at_max = 0.0
    for d in app["deployments"]:
        cpus = d["ray_actor_options"]["num_cpus"]
        assert 0 < cpus < 1, d["name"]
        scaling = d.get("autoscaling_config", {})
        at_min += cpus * scaling.get("min_replicas", d.get("num_replicas", 1))
        at_max += cpus * scaling.get("max_replicas", d.get("num_replicas", 1))
    assert at_min <= cluster_cpus("minReplicas"), "the smallest cluster holds the minimum"
    assert at_max <= cluster_cpus("maxReplicas"), "the largest cluster holds the maximum"
    if at_max > cluster_cpus("minReplicas"):
        assert cluster.get("enableInTreeAutoscaling") is True, "worker pods must follow Serve"


@pytest.mark.parametrize("container", range(2))
def test_kuberay_containers_take_secrets_from_a_secret_and_run_in_production(
    container: int,
) -> None:
    c = _containers(_manifest())[container]
    env = {e["name"]: e for e in c["env"]}
    assert env["FINCOACH_ENV"]["value"] == "production"
    for name in ("FINCOACH_DATABASE_URL", "FINCOACH_JWT_SECRET"):
        assert "value" not in env[name], f"{name} must come from a Secret"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"], name
    assert env["FINCOACH_MODEL_DIR"]["value"].startswith(c["workingDir"])
    text = MANIFEST.read_text()
    assert "postgresql+asyncpg://" in text, "the Secret's URL form is documented"


def test_kuberay_ray_version_is_the_pinned_one() -> None:
    pin = re.search(r'"ray\[serve\]==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin is not None
    manifest = _manifest()
    assert manifest["spec"]["rayClusterConfig"]["rayVersion"] == pin[1]
    assert f"rayproject/ray:{pin[1]}" in MANIFEST.read_text(), "the image's base is documented"
