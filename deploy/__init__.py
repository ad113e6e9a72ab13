"""Deployment manifests and the tools that keep them in step with serve_config.yaml."""
