"""The Administration pages in a real browser (issue 15.7): a person added with a per-queue role, their
roles changed, disabled, a token made for them (its secret shown once, usable, acting with their roles),
and the audit log filtered by who, action and target; a reviewer is refused the pages on the server.
Screenshots of each page are saved."""

from __future__ import annotations

from typing import Any

import httpx
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from .conftest import Console, console_errors, needs_browser, wait

pytestmark = needs_browser


def _holds(check: Any) -> Any:
    def run() -> bool:
        try:
            return bool(check())
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    return run


def _row(driver: Any, name: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f"tr[data-person='{name}']")


def test_people_roles_tokens_and_the_audit_log(console: Console, browser: Any) -> None:
    driver: Any = browser
    console.login(driver, "root")
    driver.get(console.url + "/console/admin")
    form = driver.find_element(By.ID, "new-person")
    form.find_element(By.NAME, "name").send_keys("carl")
    form.find_element(By.NAME, "roles").send_keys("reviewer:spam")
    driver.find_element(By.ID, "create-person").click()
    wait(_holds(lambda: _row(driver, "carl")), "carl was not added")
    roles = _row(driver, "carl").find_element(By.NAME, "roles")
    assert roles.get_attribute("value") == "reviewer:spam"
    roles.clear()
    roles.send_keys("reviewer:spam,analyst")
    _row(driver, "carl").find_element(By.CSS_SELECTOR, "button.save-roles").click()
    wait(_holds(lambda: _row(driver, "carl").find_element(By.NAME, "roles").get_attribute("value")
                == "reviewer:spam,analyst"), "the roles were not saved")
    _row(driver, "carl").find_element(By.NAME, "token").send_keys("carl-laptop")
    _row(driver, "carl").find_element(By.CSS_SELECTOR, "button.new-token").click()
    wait(_holds(lambda: driver.find_element(By.ID, "secret").text.startswith("vgl_")), "no secret shown")
    secret = driver.find_element(By.ID, "secret").text
    console.shot(driver, "admin-people")
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {secret}"}) as client:
        me = client.get("/v1/me").json()
        assert me["person"] == "carl" and me["roles"] == ["reviewer:spam", "analyst"]
    driver.get(console.url + "/console/admin")
    assert not driver.find_elements(By.ID, "secret")  # shown once, on the answer's page only
    _row(driver, "carl").find_element(By.CSS_SELECTOR, "button.toggle-person").click()
    wait(_holds(lambda: _row(driver, "carl").find_element(By.CSS_SELECTOR, ".person-state").text == "disabled"),
         "carl was not disabled")
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {secret}"}) as client:
        assert client.get("/v1/me").status_code == 401  # a disabled person's token no longer works
    bad = _row(driver, "carl").find_element(By.NAME, "roles")
    bad.clear()
    bad.send_keys("moderator")
    _row(driver, "carl").find_element(By.CSS_SELECTOR, "button.save-roles").click()
    wait(_holds(lambda: "unknown role 'moderator'" in driver.page_source), "a bad role was not refused with why")
    console_errors(driver)  # forget the 422 of that refusal

    driver.get(console.url + "/console/admin/audit")
    driver.find_element(By.NAME, "target").send_keys("user:carl")
    driver.find_element(By.ID, "filter").click()
    wait(_holds(lambda: "target=user" in driver.current_url), "the filter was not applied")
    rows = [[td.text for td in r.find_elements(By.TAG_NAME, "td")]
            for r in driver.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
    assert [(r[2], r[3]) for r in rows] == [("root", "user.disable"), ("root", "user.roles"), ("root", "user.create")]
    console.shot(driver, "admin-audit")
    assert console_errors(driver) == []


def test_a_reviewer_may_not_administer(console: Console, browser: Any) -> None:
    driver: Any = browser
    console.login(driver, "ann")
    assert "Administration" not in driver.find_element(By.CSS_SELECTOR, "header nav").text
    driver.get(console.url + "/console/admin")
    assert "may not users.manage" in driver.page_source
    driver.get(console.url + "/console/admin/audit")
    assert "may not audit.read" in driver.page_source
    console_errors(driver)
