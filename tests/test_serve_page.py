"""serve.py's web chat page at `/`, in a real headless browser (Debian's chromium through selenium and
chromedriver) against the real server and a tiny clone: load the page, send a message, watch the reply stream in,
labelled as an AI clone; regenerate; start over.

Skips, saying why, where no browser is installed (`apt-get install chromium chromium-driver`; .ci/run installs
them). The screenshot goes to the test's tmp dir; with CHATCLONE_SCREENSHOT=<path> (the README's
docs/serve_page.png) it is saved there too, so the committed image is what this test saw.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.serving_helpers import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} not found: apt-get install -y chromium chromium-driver to run the browser test"
    return None


pytestmark = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")


@pytest.fixture(scope="module")
def page_server(serve_root: Path, tmp_path_factory: pytest.TempPathFactory):
    server = Server(
        tmp_path_factory.mktemp("serve-page") / "run",
        [f"outputs_root={serve_root}", f"clones=[{serve_root / 'train' / 'tamsin'}]", "sampling.max_new_tokens=24"],
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=412,860",
    ):  # a phone's width: the page must read well there
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(condition, message=what)


def _replies(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, ".msg.clone")


def _finished(driver):
    replies = _replies(driver)
    done = [r for r in replies if "writing" not in r.find_element("css selector", ".label").text]
    return replies if replies and len(done) == len(replies) else False


def test_chat_page_streams_a_labelled_reply(page_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(page_server.url + "/")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "the clone list to load")
    assert browser.find_element(By.ID, "model").get_attribute("value") == "tamsin"
    assert "AI model trained to imitate a real person" in browser.find_element(By.ID, "notice").text
    # every change to the reply's text, recorded in the page: a streamed reply grows in several steps
    browser.execute_script("""
        window.seen = [];
        new MutationObserver(() => { for (const t of document.querySelectorAll('.msg.clone .text'))
            if (t.textContent) window.seen.push(t.textContent); })
          .observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true});""")
    browser.find_element(By.ID, "text").send_keys("hey, you up?")
    browser.find_element(By.ID, "go").click()
    [reply] = _wait(browser, _finished, "the streamed reply to finish")
    assert reply.find_element(By.CSS_SELECTOR, ".label").text == "AI clone of Tamsin"
    text = reply.find_element(By.CSS_SELECTOR, ".text").text
    seen = browser.execute_script("return window.seen")
    assert text and len(set(seen)) >= 2 and all(text.startswith(s.strip()[:5]) for s in seen), seen
    assert [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".msg.user")] == ["hey, you up?"]
    shot = tmp_path / "serve_page.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("CHATCLONE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CHATCLONE_SCREENSHOT"])
    assert shot.stat().st_size > 1000


def test_regenerate_and_start_over(page_server, browser):
    from selenium.webdriver.common.by import By

    browser.get(page_server.url + "/")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"), "the clone list to load")
    browser.find_element(By.ID, "text").send_keys("free saturday?")
    browser.find_element(By.ID, "go").click()
    _wait(browser, _finished, "the first reply")
    _wait(browser, lambda d: d.find_element(By.ID, "regenerate").is_enabled(), "regenerate to be enabled")
    browser.find_element(By.ID, "regenerate").click()
    _wait(browser, lambda d: _finished(d) and d.find_element(By.ID, "regenerate").is_enabled(), "the new reply")
    assert len(_replies(browser)) == 1 and len(browser.find_elements(By.CSS_SELECTOR, ".msg.user")) == 1
    browser.find_element(By.ID, "reset").click()
    assert browser.find_elements(By.CSS_SELECTOR, ".msg") == []
