"""`fincoach serve` runs fincoach/cli/runtime.py and supervise.py by path, and Ray puts the
directory of a driver's script on every worker's sys.path: a module there named like a top-level
package (models.py did) shadows it in the replicas whenever the server is started from another
directory than the checkout ("'models' is not a package")."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = {"actors", "deployments", "fincoach", "models", "schemas", "ray", "fastapi"}


def test_no_cli_module_shadows_a_top_level_package() -> None:
    names = {p.stem for p in (ROOT / "fincoach" / "cli").glob("*.py")}
    assert not names & TOP_LEVEL, f"rename {sorted(names & TOP_LEVEL)} in fincoach/cli"
