"""The Rules pages in a real browser (issue 15.4): edit a rule and see the checker's diagnostic as one
types, run the rules' tests, backtest the edit over the record (gained hits with examples), save it as a
new version and see the diff, then move a rule to shadow, to live, and roll it back, each change audited;
the hits chart draws under the Content-Security-Policy. Screenshots of each page are saved."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from .conftest import RULES, Console, console_errors, needs_browser, post, wait

pytestmark = needs_browser


def _type(driver: Any, text: str) -> None:
    area = driver.find_element(By.ID, "rules-text")
    area.clear()
    area.send_keys(text)


def _text(driver: Any, css: str) -> str:
    """The text of what `css` finds; empty while htmx is replacing it (its elements gone stale)."""
    try:
        return " ".join(f.text for f in driver.find_elements(By.CSS_SELECTOR, css))
    except StaleElementReferenceException:
        return ""


def test_edit_check_test_backtest_save_then_shadow_live_and_roll_back(console: Console, browser: Any) -> None:
    driver: Any = browser
    console.login(driver, "root")  # before the events: the review page it lands on is part A's
    console.send(post(1, "u1", "free crypto here"), post(2, "u2", "crypto is great"), post(3, "u3", "hello"))
    driver.get(console.url + "/console/rules")
    assert "Spam link" in _text(driver, "table.rules") and "live" in _text(driver, "tr[data-rule='Spam link'] .stage")
    console.shot(driver, "rules")

    driver.get(console.url + "/console/rules/edit")
    wait(lambda: driver.find_elements(By.ID, "check-ok"), "the checker did not answer for the active version")
    _type(driver, RULES.replace("and new_account", "and new_acount"))
    wait(lambda: "unknown name" in _text(driver, ".diagnostic"), "no diagnostic for the typo")
    assert "main.vigil:" in _text(driver, ".diagnostic") and "new_account" in _text(driver, ".diagnostic")
    console.shot(driver, "rules-edit-diagnostic")
    _type(driver, RULES.replace('contains "free crypto"', 'contains "crypto"'))
    wait(lambda: driver.find_elements(By.ID, "check-ok"), "the diagnostic did not clear once fixed")
    driver.find_element(By.ID, "run-tests").click()
    wait(lambda: "no tests" in _text(driver, "#tests-summary"), "the tests did not run")
    driver.find_element(By.ID, "backtest").click()
    wait(lambda: driver.find_elements(By.ID, "backtest-summary"), "the backtest did not answer")
    row = driver.find_element(By.CSS_SELECTOR, "table.backtest tr[data-rule='Spam link']")
    assert row.find_element(By.CSS_SELECTOR, ".gained").text == "1" and "+p2" in row.text
    console.shot(driver, "rules-backtest")
    driver.find_element(By.NAME, "message").send_keys("catch any crypto")
    driver.find_element(By.ID, "save").click()
    wait(lambda: "/console/rules/diff" in driver.current_url, "saving did not lead to the diff")
    assert '+  when event is "post" and event.text contains "crypto"' in _text(driver, "pre.diff")
    console.shot(driver, "rules-diff")

    driver.get(console.url + "/console/rules/rule?name=" + quote("Spam link"))
    for stage in ("shadow", "live"):
        Select(driver.find_element(By.ID, "stage-select")).select_by_value(stage)
        driver.find_element(By.ID, "set-stage").click()
        wait(lambda s=stage: driver.find_elements(By.CSS_SELECTOR, f".stage[data-stage='{s}']"), f"not {stage}")
    assert console.send(post(4, "u4", "crypto again"))[0]["verdict"] == "review"
    driver.find_element(By.CSS_SELECTOR, "button.rollback").click()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".stage[data-stage='shadow']"), "the rollback did not run")
    again = console.send(post(5, "u5", "crypto once more"))[0]
    assert again["verdict"] == "flag"  # the new account's flag; the spam rule in shadow again, not applied
    assert ("Spam link", "shadow") in [(h["rule"], h["mode"]) for h in again["explanation"]]
    wait(lambda: driver.execute_script("return !!document.querySelector('.chart canvas')"), "no chart drawn")
    console.shot(driver, "rules-rule")
    with console.api() as api:
        entries = api.get("/v1/audit", params={"target": "rule:Spam link"}).json()["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("root", "rules.stage"), ("root", "rules.stage"), ("root", "rules.stage_rollback")]
    assert console_errors(driver) == []


def test_rules_pages_check_roles_on_the_server(console: Console, browser: Any) -> None:
    driver: Any = browser
    console.login(driver, "ann")  # a reviewer: no `read` of rules? reviewers read; no rules.write
    driver.get(console.url + "/console/rules")
    assert driver.find_elements(By.CSS_SELECTOR, "button.pause") == []  # no actions shown
    # Posting the form anyway (with her own CSRF token) is refused on the server.
    token = driver.find_element(By.CSS_SELECTOR, "body").get_attribute("hx-headers")
    result = driver.execute_script(
        "const t = JSON.parse(arguments[0])['X-CSRF-Token'];"
        "return fetch('/console/rules/stage', {method: 'POST', headers: {'Content-Type': "
        "'application/x-www-form-urlencoded'}, body: 'csrf=' + t + '&rule=Spam%20link&op=pause'})"
        ".then(r => r.status);", token)
    assert result == 403
    with console.api() as api:
        assert api.get("/v1/rules/lifecycle").json()["rules"][0]["stage"] == "live"
