"""Logging in and out of the console in a real browser, and what every page is served with."""

from __future__ import annotations

import re
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from .conftest import PASSWORD, Console, console_errors, needs_browser, wait

pytestmark = needs_browser


def test_log_in_and_out_in_a_browser(console: Console, browser: Any) -> None:
    driver: Any = browser
    driver.get(console.url + "/console/review")
    assert "/console/login?next=" in driver.current_url  # not logged in: the login page, then back
    driver.find_element(By.NAME, "name").send_keys("ann")
    driver.find_element(By.NAME, "password").send_keys("not the password")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, "[role=alert]"), "the refused login said nothing")  # loading
    assert "the name or the password is wrong" in driver.find_element(By.CSS_SELECTOR, "[role=alert]").text
    console.shot(driver, "login")
    console_errors(driver)  # forget the 401 of that refusal
    console.login(driver, "ann")
    assert driver.current_url.endswith("/console/review")
    cookie = driver.get_cookie("vigil_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert driver.execute_script("return document.cookie").find("vigil_session") == -1  # no script reads it
    # The vendored libraries load under the Content-Security-Policy, and nothing was refused.
    wait(lambda: driver.execute_script("return typeof htmx !== 'undefined' && typeof uPlot !== 'undefined'"),
         "htmx and uPlot did not load")
    assert console_errors(driver) == []
    driver.find_element(By.CSS_SELECTOR, "header form button").click()
    wait(lambda: "/console/login" in driver.current_url, "logging out did not lead to the login page")
    assert driver.get_cookie("vigil_session") is None
    driver.get(console.url + "/console/review")
    assert "/console/login" in driver.current_url


def test_pages_carry_the_security_headers_and_forms_need_the_token(console: Console) -> None:
    with httpx.Client(base_url=console.url) as client:
        page = client.get("/console/login")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert token is not None
        # Without the token (or with another browser's), nothing happens: 403, and no session.
        refused = client.post("/console/login", data={"name": "ann", "password": PASSWORD, "csrf": "0" * 64})
        assert refused.status_code == 403 and "vigil_session" not in refused.headers.get("set-cookie", "")
        # From another site's page: refused before the form is read.
        foreign = client.post("/console/login", data={"name": "ann", "password": PASSWORD, "csrf": token[1]},
                              headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        done = client.post("/console/login?next=https://evil.example/", follow_redirects=False,
                           data={"name": "ann", "password": PASSWORD, "csrf": token[1]})
        assert done.status_code == 303 and done.headers["location"] == "/console/"  # never an open redirect
        assert "HttpOnly" in done.headers["set-cookie"] and "SameSite=strict" in done.headers["set-cookie"]
