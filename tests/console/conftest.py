"""Fixtures for the console's tests: a real `vigil serve` app on a loopback port (uvicorn in a thread,
over a SQLite store with the record, review queues and people), and one headless Debian Chromium per
session driven by Selenium. Selenium never downloads a browser or a driver here: both paths are given
and SE_OFFLINE is set. Without /usr/bin/chromium and /usr/bin/chromedriver (scripts/services.sh installs
them) the browser tests are skipped, saying so.

    def test_walk(console, browser):
        console.login(browser, "ann")
        browser.get(console.url + "/console/review")
        console.shot(browser, "review")

Screenshots go to $VIGIL_SCREENSHOTS, or build/screenshots/ in the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from tests.backends.servers import free_port
from vigil.people import parse_grants
from vigil.service import ServiceSettings, create_app
from vigil.service.auth import create_token
from vigil.settings import Settings
from vigil.stores.sqlite import SqliteStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HAVE_BROWSER = CHROMIUM.exists() and CHROMEDRIVER.exists()
needs_browser = pytest.mark.skipif(not HAVE_BROWSER, reason="Debian chromium and chromium-driver are not "
                                   "installed (/usr/bin/chromium, /usr/bin/chromedriver): bash scripts/services.sh")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("VIGIL_SCREENSHOTS", ROOT / "build" / "screenshots"))
PASSWORD = "a long enough passphrase"

RULES = """\
entity user = event.actor.id
entity ip = event.ip
entity device = event.device

define new_account = age(event.actor.created_at) < 1 day

rule "Spam link"
  severity high, owner "spam-team"
  when event is "post" and event.text contains "free crypto"
  then review, output "spam-review" with subject user

rule "Spammer posts"
  when event is "post" and user has label "spammer"
  then block

rule "New account posting"
  when event is "post" and new_account
  then flag
"""
TOML_SINKS: dict[str, Any] = {"review": {"kind": "queue", "queue": "spam", "poll": 0.05}}
QUEUES: dict[str, Any] = {"spam": {"require_reason": True, "target": 3600,
                                   "actions": {"spammer": {"kind": "label", "label": "spammer"},
                                               "dismiss": {"kind": "dismiss"},
                                               "escalate": {"kind": "escalate", "queue": "spam-senior"}}},
                          "spam-senior": {"actions": {"dismiss": {"kind": "dismiss"}}}}
PEOPLE = {"ann": ["reviewer"], "bob": ["reviewer"], "ana": ["analyst", "review_lead"], "root": ["admin"]}


@dataclass
class Console:
    """A running service with the console: its URL, store file, people (all with PASSWORD) and tokens."""

    url: str
    db: Path
    tokens: dict[str, str]
    app: Any
    shots: list[Path] = field(default_factory=list)

    def login(self, browser: Any, name: str) -> None:
        """Log `name` in through the login form (cookies of an earlier person are dropped first)."""
        from selenium.webdriver.common.by import By

        browser.get(self.url + "/console/login")
        browser.delete_all_cookies()
        browser.get(self.url + "/console/login")
        browser.find_element(By.NAME, "name").send_keys(name)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait(lambda: "/login" not in browser.current_url, f"{name} could not log in: {browser.page_source[-500:]}")

    def shot(self, browser: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        browser.save_screenshot(str(path))
        self.shots.append(path)
        return path

    def send(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        """Send events as the ingest token; their decisions."""
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens['ingest']}"},
                          timeout=30) as client:
            out = []
            for body in events:
                response = client.post("/v1/events", json=body)
                assert response.status_code == 200, response.text
                out.append(response.json())
            return out

    def api(self, name: str = "root") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[name]}"}, timeout=30)


def wait(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def post(n: int, user: str, text: str, **more: Any) -> dict[str, Any]:
    return {"type": "post", "id": f"p{n}", "time": time.time(), "actor": {"id": user, "created_at": time.time() - 60},
            "text": text, **more}


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    """The service with the console over a fresh store, on a free loopback port."""
    yield from _serve(tmp_path)


def _serve(tmp_path: Path, rules: str = RULES, **service_settings: Any) -> Iterator[Console]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.vigil").write_text(rules)
    db = tmp_path / "vigil.sqlite"
    store = SqliteStore(db)
    tokens = {"ingest": create_token(store, "ingest", ["ingest"])[1].get_secret_value(),
              "root": create_token(store, "root-token", ["admin"])[1].get_secret_value()}
    port = free_port()
    service = ServiceSettings(port=port, rules_dir=str(tmp_path / "rules"), rules_source="store",
                              reload_interval=0.2, auth_failure_rate=0.0, **service_settings)
    config = Settings(service=service, sinks=TOML_SINKS, outputs={"spam-review": "review"}, queues=QUEUES)
    app = create_app(service, store, config=config)
    svc = app.state.service
    svc.people.hasher = PasswordHasher.from_parameters(CHEAPEST)  # logins in milliseconds
    for name, roles in PEOPLE.items():
        svc.people.create(name, parse_grants(roles), actor="test", password=PASSWORD)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                       lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait(lambda: uv.started, "the server did not start", timeout=30)
    try:
        yield Console(f"http://127.0.0.1:{port}", db, tokens, app)
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (Debian's, through its chromedriver)."""
    if not HAVE_BROWSER:
        pytest.skip("Debian chromium and chromium-driver are not installed: bash scripts/services.sh")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vigil-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(browser: Any) -> list[str]:
    """The browser console's errors since the last call (CSP violations show up here)."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"
            and not re.search(r"favicon\.ico", e["message"])]
