"""The Banks page in a real browser (issue 15.5): a bank and its entries, a CSV import with an error for
each bad line (nothing imported), then a good one; an entry and the bank disabled and enabled; a file
matched against the bank. Screenshots of each page are saved."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from .conftest import Console, _serve, console_errors, needs_browser, wait

pytestmark = needs_browser


@pytest.fixture
def banked(tmp_path: Path) -> Iterator[Console]:
    yield from _serve(tmp_path, banks=str(tmp_path / "banks.sqlite"))


def _holds(check: Any) -> Any:
    """`check` for `wait`, false while the page is being replaced (its elements gone stale)."""
    def run() -> bool:
        try:
            return bool(check())
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    return run


def _import(driver: Any, text: str) -> None:
    area = driver.find_element(By.ID, "csv")
    area.clear()
    area.send_keys(text)
    driver.find_element(By.ID, "import").click()


def test_import_toggle_and_match_a_file(banked: Console, browser: Any, tmp_path: Path) -> None:
    driver: Any = browser
    with banked.api() as api:
        assert api.post("/v1/banks", json={"name": "known-files", "signal_type": "md5"}).status_code == 201
    sample = tmp_path / "sample.bin"
    sample.write_bytes(b"a file someone shared\n")
    digest = hashlib.md5(sample.read_bytes()).hexdigest()
    banked.login(driver, "root")
    driver.get(banked.url + "/console/banks")
    assert "known-files" in driver.find_element(By.CSS_SELECTOR, "table.banks").text
    banked.shot(driver, "banks")
    driver.find_element(By.LINK_TEXT, "known-files").click()
    _import(driver, f"hash,tags,source\n{digest},spam,tips\nnot-a-hash,spam,tips\n{'0' * 31},x,y\n")
    wait(_holds(lambda: driver.find_elements(By.ID, "import-errors")), "no line errors shown")
    errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".line-error")]
    assert len(errors) == 2 and errors[0].startswith("line 3:") and errors[1].startswith("line 4:")
    assert "expected 32 hex digits" in errors[0]
    assert "0 entries" in driver.find_element(By.CSS_SELECTOR, "main .muted").text  # nothing imported
    banked.shot(driver, "banks-import-errors")
    console_errors(driver)  # forget the 422 of that refusal
    _import(driver, f"hash,tags,source\n{digest},spam,tips\n{'1' * 32},other,tips\n")
    wait(_holds(lambda: driver.find_elements(By.ID, "imported")), "the import did not report")
    assert "2 added" in driver.find_element(By.ID, "imported").text
    driver.find_element(By.ID, "match-file").send_keys(str(sample))
    wait(_holds(lambda: driver.find_element(By.ID, "match-file-data").get_attribute("value")), "the file was not read")
    driver.find_element(By.ID, "match").click()
    wait(_holds(lambda: driver.find_elements(By.ID, "matches")), "no match answer")
    assert digest in driver.find_element(By.ID, "matches").text
    banked.shot(driver, "banks-match")
    driver.find_element(By.ID, "toggle-bank").click()
    wait(_holds(lambda: driver.find_element(By.ID, "bank-state").text == "disabled"), "the bank was not disabled")
    driver.find_element(By.ID, "match-file").send_keys(str(sample))
    wait(_holds(lambda: driver.find_element(By.ID, "match-file-data").get_attribute("value")), "the file was not read")
    driver.find_element(By.ID, "match").click()
    wait(_holds(lambda: "the bank is disabled" in driver.find_element(By.ID, "matches").text), "a disabled bank matched")
    driver.find_elements(By.CSS_SELECTOR, "button.toggle-entry")[0].click()
    wait(_holds(lambda: driver.find_elements(By.CSS_SELECTOR, "tr.disabled")), "the entry was not disabled")
    banked.shot(driver, "banks-bank")
    with banked.api() as api:
        actions = [e["action"] for e in api.get("/v1/audit", params={"target": "bank:known-files"}).json()["entries"]]
    assert actions == ["bank.create", "bank.entries.add", "bank.update", "bank.entries.enable"]
    assert console_errors(driver) == []
