"""The arena in a real browser: Debian's chromium driven by Selenium through Debian's chromedriver
(headless; ``--no-sandbox`` because CI runs as root). A voter opens their link, asks, sees two
answers arrive, votes, sees the names and the leaderboard change; the Japanese page renders with
Noto CJK; a question holding markup stays text. ``TANUKI_SCREENSHOTS=DIR`` keeps the screenshots."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Models, arena_config

pytestmark = pytest.mark.slow
TOKEN = "0123456789abcdef0123"


@pytest.fixture
def arena_url(tmp_path: Path, models: Models) -> Iterator[str]:
    import uvicorn

    from tanuki_pipelines.arena.app import create_app
    from tanuki_pipelines.votes.database import database_url, open_database

    tokens = tmp_path / "tokens"
    tokens.write_text(f"hanako:{TOKEN}\n")
    config = arena_config(tmp_path, models, identity={"mode": "tokens", "tokens_file": str(tokens)})
    engine = open_database(database_url(config.database_url, tmp_path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config, engine),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Debian's chromium and chromium-driver are not installed (the README's install command does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--lang=ja"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(driver: Any, name: str) -> None:
    folder = os.environ.get("TANUKI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def test_ask_watch_vote_reveal_and_rank_in_a_browser(arena_url: str, browser: Any, models: Models) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(f"{arena_url}/leaderboard?token={TOKEN}")  # the voter's link; the cookie keeps the token
    wait.until(lambda d: d.find_element(By.ID, "vote-count").text == "0")
    assert browser.find_element(By.ID, "too-few").is_displayed()

    browser.get(arena_url + "/")
    assert browser.title == "Tanuki アリーナ"
    assert browser.execute_script("return document.fonts.check('16px \"Noto Sans CJK JP\"', 'アリーナ')")
    hostile = '<img src=x onerror="window.pwned=1">東京の名所を教えて'
    browser.find_element(By.ID, "question").send_keys(hostile)
    shot(browser, "1-question")
    browser.find_element(By.ID, "send").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".message.assistant.finished")) == 2)
    answers = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".message.assistant")]
    assert answers == ["1通目への回答です。よろしくお願いします。"] * 2
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".message.user")] == [hostile] * 2
    assert browser.execute_script("return window.pwned") is None  # the markup stayed text
    shot(browser, "2-answers")

    wait.until(until.element_to_be_clickable((By.ID, "vote-a"))).click()
    revealed = wait.until(until.visibility_of_element_located((By.ID, "revealed"))).text
    asked = {request["model"] for request in models.requests}
    assert len(asked) == 2 and all(model in revealed for model in asked)
    assert browser.find_element(By.ID, "recorded").text == "投票を記録しました。"
    shot(browser, "3-revealed")

    browser.find_element(By.ID, "to-leaderboard").click()
    wait.until(lambda d: d.find_element(By.ID, "vote-count").text == "1")
    rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#board tbody tr") or None)
    assert {row.get_attribute("data-model") for row in rows} == asked
    # one vote cannot rate either model: each row says why instead of a number
    assert {row.find_elements(By.TAG_NAME, "td")[2].text for row in rows} == {"— (負けなし)", "— (勝ちなし)"}
    shot(browser, "4-leaderboard")

    browser.find_element(By.ID, "switch-language").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h2").text == "Leaderboard")
