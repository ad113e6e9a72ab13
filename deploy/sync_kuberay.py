"""Rewrite the Serve config embedded in deploy/kuberay/rayservice.yaml from serve_config.yaml.

    python -m deploy.sync_kuberay           # rewrite the `serveConfigV2` block in place
    python -m deploy.sync_kuberay --check   # exit 1 (and say so) if the block is out of date

The block is serve_config.yaml's text, comments included, with one change: `http_options.host`
becomes 0.0.0.0, because in a pod the proxy must listen on the pod's address for the Kubernetes
Service to reach it (the local file binds 127.0.0.1). Everything else of the manifest is kept
as written. tests/unit/test_kuberay.py fails when the two files drift apart.
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
POD_HTTP_HOST = "0.0.0.0"
_BLOCK_KEY = re.compile(r"^(?P<indent> *)serveConfigV2: \|[-+]?\s*$")
_HOST = re.compile(r"^(?P<indent> +)host:")


class SyncError(Exception):
    """The manifest or the config is not in the shape this tool rewrites."""


def pod_config_text(serve_config_text: str) -> str:
    """serve_config.yaml's text with ``http_options.host`` set to 0.0.0.0 (added if absent)."""
    out: list[str] = []
    in_http = replaced = False
    for line in serve_config_text.splitlines():
        top_level = bool(line) and not line[0].isspace() and not line.startswith("#")
        if top_level:
            if in_http and not replaced:
                out.append(f"  host: {POD_HTTP_HOST}")
                replaced = True
            in_http = line.split(":", 1)[0] == "http_options"
        elif in_http and (m := _HOST.match(line)):
            line = f"{m['indent']}host: {POD_HTTP_HOST}"
            replaced = True
        out.append(line)
    if in_http and not replaced:
        out.append(f"  host: {POD_HTTP_HOST}")
    elif not replaced:
        out += ["http_options:", f"  host: {POD_HTTP_HOST}"]
    text = "\n".join(out) + "\n"
    expected = copy.deepcopy(yaml.safe_load(serve_config_text))
    expected.setdefault("http_options", {})["host"] = POD_HTTP_HOST
    if yaml.safe_load(text) != expected:  # a layout this line-based edit does not understand
        raise SyncError("could not set http_options.host in serve_config.yaml's text")
    return text


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


def render(manifest_text: str, serve_config_text: str) -> str:
    """The manifest with its serveConfigV2 block replaced by the pod form of the config."""
    lines = manifest_text.splitlines()
    start, end, indent = _block_span(lines)
    inner = indent + "  "
    config_lines = pod_config_text(serve_config_text).splitlines()
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
    opts = p.parse_args(argv)
    current = opts.manifest.read_text()
    wanted = render(current, opts.config.read_text())
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
