"""What a reviewer and an analyst do, in headless Chromium against a real server: log in, open a queue,
claim with a key, reveal a blurred image, decide with a key and a reason, see the label on the entity
page; search with diagnostics as you type, bulk-label the results with a reason. Hostile event text
never runs. Screenshots of each page are saved."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from .conftest import Console, console_errors, needs_browser, post, wait

pytestmark = needs_browser

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> free crypto'


def png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (60, 40), (220, 30, 30)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def diagnostics(browser: Any, what: str) -> str:
    """The diagnostics list as it is now (read in one step: htmx replaces the element as you type)."""
    return str(browser.execute_script(f"const d = document.getElementById('diagnostics'); return d ? d.{what} : ''"))


def keys(browser: Any, *typed: str) -> None:
    ActionChains(browser).send_keys(*typed).perform()


def filter_of(browser: Any, css: str) -> str:
    return str(browser.execute_script("return getComputedStyle(document.querySelector(arguments[0])).filter", css))


def test_a_reviewer_claims_reveals_and_decides_with_the_keyboard(console: Console, browser: Any) -> None:
    console.send(post(1, "u1", HOSTILE, ip="10.0.0.9", device="d-42", link="javascript:window.__pwned=3",
                      media={"image": png()}),
                 post(2, "u2", "hello", ip="10.0.0.9"))
    with console.api() as api:
        # Two items: the user (the rule's output) and the event (its review verdict), in that order.
        wait(lambda: api.get("/v1/review/queues/spam").json()["pending"] == 2, "the items did not reach the queue")
    console.login(browser, "ann")
    browser.get(console.url + "/console/review")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="spam"]')
    assert row.find_element(By.CSS_SELECTOR, ".pending").text == "2"
    console.shot(browser, "review-queues")
    row.find_element(By.LINK_TEXT, "spam").click()
    console.shot(browser, "review-queue")
    keys(browser, "n")  # claim the next item
    wait(lambda: "/console/review/items/" in browser.current_url, "n did not claim the next item")
    assert browser.find_element(By.ID, "subject-key").text == "u1"
    page = browser.page_source
    # The evidence: the event's fields as text, the rule that fired with the values it used.
    fields = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "dd.field")]
    assert any("<script>window.__pwned = 1</script>" in f for f in fields), fields  # shown, never run
    assert "Spam link" in page and "javascript:window.__pwned=3" in fields
    assert browser.find_elements(By.CSS_SELECTOR, "a[href^='javascript']") == []
    # The image is blurred and gray until revealed.
    assert "blur" in filter_of(browser, ".media img") and "grayscale" in filter_of(browser, ".media img")
    console.shot(browser, "review-item")
    browser.find_element(By.CSS_SELECTOR, ".media").click()
    assert filter_of(browser, ".media img") == "none"
    console.shot(browser, "review-item-revealed")
    # Decide with keys only: r to write the reason, Escape, 1 for the first action (spammer).
    ActionChains(browser).move_by_offset(0, 0).perform()
    keys(browser, Keys.ESCAPE, "r")
    assert browser.switch_to.active_element.get_attribute("id") == "reason"
    keys(browser, "links to a crypto scam", Keys.ESCAPE, "1")
    wait(lambda: "done=" in browser.current_url, f"deciding did not finish: {browser.page_source[-800:]}")
    assert "Decided spammer" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    # The label is on the entity page, with who and why.
    browser.get(console.url + "/console/entities/user/u1")
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".labels [data-label]")] == ["spammer"]
    assert "links to a crypto scam" in browser.page_source
    console.shot(browser, "entity")
    assert browser.execute_script("return window.__pwned") is None
    assert console_errors(browser) == []


def test_an_analyst_searches_and_bulk_labels_with_a_reason(console: Console, browser: Any) -> None:
    console.send(*[post(10 + n, f"s{n % 3}", "free crypto now") for n in range(6)], post(20, "ok1", "hi there"))
    console.login(browser, "ana")
    browser.get(console.url + "/console/search")
    box = browser.find_element(By.ID, "q")
    box.send_keys('event is "post" and and')  # a mistake, shown while typing
    wait(lambda: "error" in diagnostics(browser, "innerHTML"),
         "no diagnostic appeared while typing")
    console.shot(browser, "search-diagnostic")
    box.clear()
    box.send_keys('event is "post" and event.text contains "crypto"')
    wait(lambda: "valid" in diagnostics(browser, "textContent"), "the condition was not found valid")
    browser.find_element(By.NAME, "top").send_keys("event.actor.id")
    browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait(lambda: browser.find_elements(By.CSS_SELECTOR, "table.results tbody tr"), "no results")
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.results tbody tr")) == 6
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.top tbody tr")) == 3
    wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".chart .uplot"), "the chart was not drawn")
    console.shot(browser, "search")
    bulk = browser.find_element(By.ID, "bulk")
    bulk.find_element(By.NAME, "label").send_keys("crypto-spam")
    bulk.find_element(By.NAME, "reason").send_keys("campaign of 2 December")
    bulk.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: browser.find_elements(By.ID, "confirm-bulk"), "no preview of the bulk label")
    assert "Label 3 user entities" in browser.find_element(By.TAG_NAME, "h1").text  # first: how many
    console.shot(browser, "search-bulk-preview")
    browser.find_element(By.ID, "confirm-bulk").click()
    wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".flash"), "the bulk label did not finish")
    assert "labelled 3 of 3 user entities" in browser.find_element(By.CSS_SELECTOR, ".flash").text.lower()
    browser.get(console.url + "/console/entities/user/s1")
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".labels [data-label]")] == ["crypto-spam"]
    with console.api() as api:
        audit = api.get("/v1/audit", params={"action": "label.bulk"}).json()["entries"]
    assert audit[0]["actor"] == "ana" and audit[0]["detail"]["touched"] == 3
    browser.get(console.url + "/console/dashboard")
    wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".chart .uplot"), browser.find_element(By.TAG_NAME, "main").text)
    assert "review 6" in browser.find_element(By.CSS_SELECTOR, ".totals").text
    console.shot(browser, "dashboard")
    assert console_errors(browser) == []
