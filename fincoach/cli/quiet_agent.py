"""Stands in for the raylet's agents that the embedded run of `fincoach serve` does not use.

    python fincoach/cli/quiet_agent.py dashboard|runtime_env --session-dir=DIR --node-id=HEX [...]

The raylet starts two Python agents and waits for the ports each writes into the session
directory before the node registers. The dashboard agent (about 130 MB, and a few percent of a
core at idle) serves the dashboard's per-node API, the node's resource reports and the export
of Ray's metrics; the runtime-env agent (about 80 MB) builds the `runtime_env` of a task or an
actor that has one. A run without the dashboard, without a metrics port and without a
runtime_env uses neither. This script writes what Ray's own minimal agent writes for a part it
does not serve (the port -1: "not served") and then waits, doing nothing, until the raylet that
started it is gone or a signal stops it. It imports no Ray and nothing of the application
(about 10 MB). runtime.quiet_agents decides which agents it replaces.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

# The port files the dashboard agent persists (ray._raylet's *_PORT_NAME constants; checked
# against Ray's in tests/unit/test_quiet_agent.py).
PORT_NAMES = {
    "dashboard": ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port"),
    "runtime_env": ("runtime_env_agent_port",),
}
PR_SET_PDEATHSIG = 1


def options(argv: list[str]) -> dict[str, str]:
    """Ray's ``--name=value`` options; other arguments are ignored (Ray adds some over time)."""
    found = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            found[name.replace("-", "_")] = value
    return found


def persist_unserved_ports(kind: str, session_dir: Path, node_id: str) -> None:
    """Write -1 ("not served") for each of the agent's ports, atomically, as persist_port does."""
    for name in PORT_NAMES[kind]:
        path = session_dir / f"{name}_{node_id}"
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text("-1")
        os.replace(tmp, path)


def _die_with_parent() -> None:
    # The raylet is the parent: when it goes, so does this process (Linux); elsewhere the loop
    # below notices the new parent.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    kind, opts = (argv[0] if argv else ""), options(argv[1:])
    if kind not in PORT_NAMES or "session_dir" not in opts or "node_id" not in opts:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    parent = os.getppid()
    _die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the supervisor's to handle
    persist_unserved_ports(kind, Path(opts["session_dir"]), opts["node_id"])
    while os.getppid() == parent:
        time.sleep(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
