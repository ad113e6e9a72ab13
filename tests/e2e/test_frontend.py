"""The original FinCoach web client, unchanged, against this backend served as ``make serve``
serves it (``fincoach serve``: Ray Serve behind HAProxy), in headless Chromium.

The client is built from ``../shared/fincoach-original/frontend`` with Vite (``npm ci`` from its
lock file) for this backend's address and served on http://localhost:5173, one of the origins
the backend allows in development. A new user registers in the UI, logs out and in, sees the
dashboard (wallet, coach card with the label of the action the API chose), adds an expense and
an income on the wallet page, sees them on the dashboard, opens the analytics page (every panel
drawn), and logs out: no console error, no failed request, no error answer. A screenshot of
each page goes to the folder the run names (``FINCOACH_E2E_SCREENSHOTS``, else
``e2e-screenshots/<time>``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fincoach.cli.preflight import spare_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT.parent / "shared" / "fincoach-original" / "frontend"
CHROMIUM = os.environ.get("FINCOACH_E2E_CHROMIUM", "/usr/bin/chromium")
CLIENT_PORT = 5173  # an origin the backend allows by default in development
# What the client shows for each legacy action (its coachingService.getActionTypeInfo).
ACTION_LABELS = {
    "continue_current_behavior": "Keep Going",
    "spending_alert": "Spending Alert",
    "budget_suggestion": "Budget Tip",
    "savings_nudge": "Save More",
    "positive_reinforcement": "Great Job!",
}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def api_port() -> int:
    return spare_port()


@pytest.fixture(scope="module")
def client_dist(api_port: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The web client built for the backend at ``api_port`` (its own code, unchanged)."""
    if not FRONTEND.is_dir():
        pytest.fail(f"the original web client is expected at {FRONTEND}", pytrace=False)
    work = tmp_path_factory.mktemp("client") / "frontend"
    shutil.copytree(FRONTEND, work, ignore=shutil.ignore_patterns("node_modules", "dist"))
    _run(["npm", "ci", "--no-audit", "--no-fund"], work)
    env = {**os.environ, "VITE_API_URL": f"http://localhost:{api_port}"}
    _run(["npx", "vite", "build"], work, env)
    return work / "dist"


class _SpaHandler(SimpleHTTPRequestHandler):
    """Files of the build; any other path is the app's index.html (client-side routes)."""

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if not path.exists():
            self.path = "/index.html"
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture(scope="module")
def client_url(client_dist: Path) -> Iterator[str]:
    handler = functools.partial(_SpaHandler, directory=str(client_dist))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", CLIENT_PORT), handler)
    except OSError as exc:
        pytest.fail(f"port {CLIENT_PORT} (the client's origin) is taken: {exc}", pytrace=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{CLIENT_PORT}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def backend(api_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``fincoach serve`` (what ``make serve`` runs), on a fresh database and model registry,
    with serve_config.yaml as it is but for the port."""
    home = tmp_path_factory.mktemp("backend")
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"]["port"] = api_port
    (home / "serve_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        **os.environ,
        "FINCOACH_SERVE_CONFIG": str(home / "serve_config.yaml"),
        "FINCOACH_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'fincoach.db'}",
        "FINCOACH_MODEL_DIR": str(home / "artifacts"),
        "FINCOACH_ENV": "development",
    }
    env.pop("FINCOACH_CORS_ORIGINS", None)
    log = (home / "serve.log").open("w")
    fincoach = Path(sys.executable).with_name("fincoach")
    proc = subprocess.Popen(
        [str(fincoach), "serve", "--demo-users", "20"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            assert proc.poll() is None, (home / "serve.log").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(2)
        else:
            pytest.fail("the backend did not become healthy:\n" + (home / "serve.log").read_text())
        yield url
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server as a terminal's Ctrl-C does, then its whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = Path(
        os.environ.get("FINCOACH_E2E_SCREENSHOTS")
        or ROOT / "e2e-screenshots" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    )
    folder.mkdir(parents=True, exist_ok=True)
    sys.stderr.write(f"\nscreenshots of the run: {folder}\n")
    return folder


@pytest.fixture
async def page(
    backend: str, client_url: str, screenshots: Path
) -> AsyncIterator[tuple[Any, list[str]]]:
    """A Chromium page and the list of problems it met (console errors, failed requests,
    answers of 400 and above)."""
    from playwright.async_api import async_playwright

    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once, before the browser starts
        pytest.fail(f"Chromium is expected at {CHROMIUM} (Debian: apt-get install chromium)")
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # Tall enough for every page: a full-page capture would resize the window and restart
        # the charts' animations in the picture.
        tab = await browser.new_page(viewport={"width": 1280, "height": 1800})
        tab.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        tab.on("requestfailed", lambda r: problems.append(f"failed: {r.method} {r.url}"))
        tab.on(
            "response",
            lambda r: (
                problems.append(f"{r.status}: {r.request.method} {r.url}")
                if r.status >= 400
                else None
            ),
        )
        try:
            yield tab, problems
        finally:
            await browser.close()


async def _shot(tab: Any, folder: Path, name: str) -> None:
    await tab.wait_for_timeout(1500)  # charts animate in
    await tab.screenshot(path=str(folder / f"{name}.png"))


async def _api(tab: Any, backend: str, path: str) -> Any:
    """What the API answers the signed-in user (the client's own token)."""
    token = await tab.evaluate("localStorage.getItem('access_token')")
    r = await tab.request.get(f"{backend}{path}", headers={"Authorization": f"Bearer {token}"})
    assert r.ok, await r.text()
    return await r.json()


@pytest.mark.timeout(1500)  # the build, the models' first training and Ray's start included
async def test_the_original_client_works_end_to_end(
    page: tuple[Any, list[str]], backend: str, client_url: str, screenshots: Path
) -> None:
    tab, problems = page
    email, password = f"erin.{int(time.time())}@example.com", "Secret-pass1"

    # Register in the UI; the client signs in and opens the dashboard.
    await tab.goto(client_url)
    await tab.wait_for_url("**/login")
    await tab.click("text=Sign up")
    await tab.fill("input[name=first_name]", "Erin")
    await tab.fill("input[name=last_name]", "Tester")
    await tab.fill("input[name=email]", email)
    await tab.fill("input[name=password]", password)
    await tab.fill("input[name=confirmPassword]", password)
    await tab.click("button[type=submit]")
    await tab.wait_for_url("**/dashboard", timeout=20_000)
    await tab.get_by_text("Welcome, Erin").wait_for()
    await _shot(tab, screenshots, "01-registered-dashboard")

    # Log out, and in again.
    await tab.click("text=Logout")
    await tab.wait_for_url("**/login")
    await _shot(tab, screenshots, "02-logged-out")
    await tab.fill("input[name=email]", email)
    await tab.fill("input[name=password]", password)
    await tab.click("button[type=submit]")
    await tab.wait_for_url("**/dashboard", timeout=20_000)

    # The dashboard: the new wallet and the coach card labelled for the action chosen.
    await tab.get_by_text("$1,000.00").first.wait_for()
    recommendation = await _api(tab, backend, "/coaching/recommendation")
    assert 0 <= recommendation["action_id"] <= 4
    await tab.get_by_text(ACTION_LABELS[recommendation["action_type"]]).first.wait_for()
    await tab.get_by_text("No transactions yet").wait_for()
    await _shot(tab, screenshots, "03-dashboard")

    # The wallet page: an expense and an income, in the list and in the balance.
    await tab.click("nav >> text=Wallet")
    await tab.wait_for_url("**/wallet")
    for amount, category, description in (
        ("-42.50", "groceries", "Weekly shop"),
        ("250", "income", "Freelance"),
    ):
        await tab.click("text=Add Transaction")
        await tab.fill("input[name=amount]", amount)
        await tab.select_option("select[name=category]", category)
        await tab.fill("input[name=description]", description)
        await tab.click("button:has-text('Create Transaction')")
        await tab.get_by_text(description).first.wait_for()
    await tab.get_by_text("$1,207.50").first.wait_for()
    wallet = await _api(tab, backend, "/financial/wallet")
    assert wallet["balance"] == 1207.5
    await _shot(tab, screenshots, "04-wallet")

    # Back on the dashboard, the recent transactions list them.
    await tab.click("nav >> text=Dashboard")
    await tab.wait_for_url("**/dashboard")
    for description in ("Weekly shop", "Freelance"):
        await tab.get_by_text(description).first.wait_for()
    await _shot(tab, screenshots, "05-dashboard-transactions")

    # Analytics: every panel drawn from this backend's answers.
    await tab.click("text=Analytics")
    await tab.wait_for_url("**/analytics")
    await tab.get_by_text("Financial Health Metrics").wait_for()
    await tab.get_by_text("$1,208").first.wait_for()  # the balance metric, to the dollar
    # Drawn: a pie sector, a bar (this month's; last month's are empty), the balance's points.
    for part in (".recharts-pie-sector path", ".recharts-bar-rectangle path", ".recharts-line-dot"):
        await tab.locator(part).first.wait_for(timeout=15_000)
    await _shot(tab, screenshots, "06-analytics")

    await tab.click("text=Logout")
    await tab.wait_for_url("**/login")
    await _shot(tab, screenshots, "07-logged-out")

    assert not problems, "\n".join(problems)
