"""Rewrite the Serve config embedded in deploy/kuberay/rayservice.yaml from serve_config.yaml.

    python -m deploy.sync_kuberay           # rewrite the `serveConfigV2` block in place
    python -m deploy.sync_kuberay --check   # exit 1 (and say so) if the block is out of date

The block is serve_config.yaml (as YAML, its comments left in that file) with two changes:
`http_options.host` becomes 0.0.0.0, because in a pod the proxy must listen on the pod's address
for the Kubernetes Service to reach it (the local file binds 127.0.0.1); and the cluster keeps
its own sizing: each deployment named in deploy/kuberay/cluster_sizing.yaml takes the options
given there instead of the laptop's. Everything else of the manifest is kept as written.
tests/unit/test_kuberay.py fails when the files drift apart.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVE_CONFIG = ROOT / "serve_config.yaml"
MANIFEST = ROOT / "deploy" / "kuberay" / "rayservice.yaml"
CLUSTER_SIZING = ROOT / "deploy" / "kuberay" / "cluster_sizing.yaml"
POD_HTTP_HOST = "0.0.0.0"
_BLOCK_KEY = re.compile(r"^(?P<indent> *)serveConfigV2: \|[-+]?\s*$")
HEADER = [
    "# serve_config.yaml with the cluster's sizing (deploy/kuberay/cluster_sizing.yaml) and the",
    "# pod's HTTP host, written by `python -m deploy.sync_kuberay`: edit those files, not this.",
]
_EXCLUSIVE = {"num_replicas": "autoscaling_config", "autoscaling_config": "num_replicas"}


class SyncError(Exception):
    """The manifest or the config is not in the shape this tool rewrites."""


def cluster_config(serve_config: dict[str, Any], sizing: dict[str, Any]) -> dict[str, Any]:
    """serve_config.yaml as the cluster runs it: the pod's HTTP host and, for each deployment
    ``sizing`` names, its options in place of the file's."""
    config = copy.deepcopy(serve_config)
    config.setdefault("http_options", {})["host"] = POD_HTTP_HOST
    wanted = dict((sizing or {}).get("deployments") or {})
    for app in config.get("applications", []):
        for deployment in app.get("deployments", []):
            for key, value in (wanted.pop(deployment["name"], None) or {}).items():
                deployment.pop(_EXCLUSIVE.get(key, ""), None)
                deployment[key] = copy.deepcopy(value)
    if wanted:
        raise SyncError(f"cluster sizing names deployments the config lacks: {sorted(wanted)}")
    return config


def pod_config_text(serve_config_text: str, sizing_text: str = "") -> str:
    """The Serve config the RayService carries, as YAML text."""
    config = cluster_config(yaml.safe_load(serve_config_text), yaml.safe_load(sizing_text or "{}"))
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=100)
    return "\n".join(HEADER) + "\n" + body


def _block_span(lines: list[str]) -> tuple[int, int, str]:
    """(index of the `serveConfigV2: |` line, index after its block, the key's indentation)."""
    for i, line in enumerate(lines):
        if m := _BLOCK_KEY.match(line):
            indent = m["indent"]
            end = i + 1
            while end < len(lines) and (
                not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > len(indent)
            ):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():  # trailing blank lines stay outside
                end -= 1
            return i, end, indent
    raise SyncError("no `serveConfigV2: |` block in the manifest")


def render(manifest_text: str, serve_config_text: str, sizing_text: str | None = None) -> str:
    """The manifest with its serveConfigV2 block replaced by the cluster form of the config
    (``sizing_text``: the cluster sizing file's text, by default the one beside the manifest)."""
    if sizing_text is None:
        sizing_text = CLUSTER_SIZING.read_text()
    lines = manifest_text.splitlines()
    start, end, indent = _block_span(lines)
    inner = indent + "  "
    config_lines = pod_config_text(serve_config_text, sizing_text).splitlines()
    block = [inner + line if line.strip() else "" for line in config_lines]
    return "\n".join(lines[: start + 1] + block + lines[end:]) + "\n"


def embedded_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Serve config a parsed RayService manifest carries."""
    return yaml.safe_load(manifest["spec"]["serveConfigV2"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--check", action="store_true", help="Only report; exit 1 if out of date")
    p.add_argument("--config", type=Path, default=SERVE_CONFIG, help="Serve config file")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="RayService manifest")
    p.add_argument("--sizing", type=Path, default=CLUSTER_SIZING, help="Cluster sizing file")
    opts = p.parse_args(argv)
    current = opts.manifest.read_text()
    wanted = render(current, opts.config.read_text(), opts.sizing.read_text())
    if wanted == current:
        sys.stdout.write(f"{opts.manifest} is in step with {opts.config}\n")
        return 0
    if opts.check:
        sys.stderr.write(f"{opts.manifest} is out of date: run `python -m deploy.sync_kuberay`\n")
        return 1
    opts.manifest.write_text(wanted)
    sys.stdout.write(f"rewrote serveConfigV2 in {opts.manifest} from {opts.config}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
