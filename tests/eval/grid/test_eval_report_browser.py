"""report.html in a real browser (headless Chromium; skipped where it is not installed): every
image loads, the A/B view flips, a 200-cell grid opens without loading its full-size images.

The demo's own report (``runs/demo/eval_grid/report.html``, written by ``make demo``) is checked
when it exists, the study's committed ``docs/study_cpu/report.html`` always; set
``LIT_RPE_REPORT_SCREENSHOT`` to keep the demo's screenshot (the README's is
``docs/report_screenshot.png``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser import chromium, load_every_image, skip_without_chromium
from report_fixtures import fake_grid

from lit_rpe.eval.grid.report import write_report

pytestmark = pytest.mark.browser

DEMO_REPORT = Path("runs/demo/eval_grid/report.html")
STUDY_REPORT = Path("docs/study_cpu/report.html")


def check_report(driver, report: Path, screenshot: Path) -> None:
    """Open ``report``: every image loads, the A/B flip changes the shown grid, a screenshot."""
    from selenium.webdriver.common.by import By

    driver.get(report.resolve().as_uri())
    cells = driver.find_elements(By.CSS_SELECTOR, "#matrix tbody td img.thumb")
    assert cells, "the matrix shows thumbnails"
    images = load_every_image(driver)
    assert len(images) > len(cells)  # the thumbnails, the A/B grid, the plots
    assert [i["src"] for i in images if i["width"] == 0] == []
    ab = driver.find_element(By.ID, "ab-image")
    shown = ab.get_attribute("src")
    caption = driver.find_element(By.ID, "ab-caption").text
    driver.find_element(By.ID, "ab-flip").click()
    assert (
        ab.get_attribute("src") != shown and driver.find_element(By.ID, "ab-caption").text[0] == "B"
    )
    assert caption[0] == "A"
    assert load_every_image(driver)  # the flipped image loads too
    assert driver.execute_script("return arguments[0].naturalWidth;", ab) > 0
    driver.find_element(By.ID, "ab-flip").click()
    assert ab.get_attribute("src") == shown
    # clicking a cell opens its full grid in the lightbox
    cells[0].click()
    box = driver.find_element(By.ID, "lightbox")
    assert box.is_displayed() and box.find_element(By.TAG_NAME, "img").get_attribute(
        "src"
    ).endswith("/grid.png")
    box.click()
    assert not box.is_displayed()
    driver.execute_script("window.scrollTo(0, 0);")
    assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000


def test_fake_grid_report_in_chromium(tmp_path):
    skip_without_chromium()
    spec = fake_grid(tmp_path / "grid", differing=("m0", "extrapolate", "64x64"))
    write_report(spec)
    with chromium() as driver:
        check_report(driver, tmp_path / "grid" / "report.html", tmp_path / "shot.png")


def test_demo_report_in_chromium(tmp_path):
    skip_without_chromium()
    if not DEMO_REPORT.is_file():
        pytest.skip(f"{DEMO_REPORT} not found: `make demo` writes it")
    screenshot = Path(os.environ.get("LIT_RPE_REPORT_SCREENSHOT", tmp_path / "demo.png"))
    with chromium() as driver:
        driver.set_window_size(1280, 1000)
        check_report(driver, DEMO_REPORT, screenshot)


def test_study_report_in_chromium(tmp_path):
    """Every strip and plot of the committed study page loads; the A/B flip changes the strip."""
    skip_without_chromium()
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(STUDY_REPORT.resolve().as_uri())
        images = load_every_image(driver)
        strips = [i for i in images if "/samples_" in i["src"]]
        assert len(strips) >= 2 and any(i["src"].endswith("_rules.png") for i in images)
        assert [i["src"] for i in images if i["width"] == 0] == []
        ab = driver.find_element(By.ID, "ab-image")
        shown = ab.get_attribute("src")
        driver.find_element(By.ID, "ab-flip").click()
        assert ab.get_attribute("src") != shown and "/samples_" in ab.get_attribute("src")
        assert driver.find_element(By.ID, "ab-caption").text.startswith("B: ")
        assert load_every_image(driver)
        assert driver.execute_script("return arguments[0].naturalWidth;", ab) > 0
        strip = driver.find_element(By.CSS_SELECTOR, "a.enlarge img.strip")
        strip.click()  # click to enlarge: the full strip in the lightbox
        box = driver.find_element(By.ID, "lightbox")
        assert box.is_displayed()
        assert box.find_element(By.TAG_NAME, "img").get_attribute("src").endswith(".png")
        box.click()
        assert not box.is_displayed()
        assert driver.save_screenshot(str(tmp_path / "study.png"))


def test_200_cell_report_opens_without_its_full_size_images(tmp_path):
    skip_without_chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sides = (16, 24, 32, 40, 48, 56, 64, 72)
    rules = ("rpe2d_even", "extrapolate", "dype_yarn", "ntk", "yarn")
    spec = fake_grid(tmp_path / "grid", models=5, rules=rules, sides=sides)
    write_report(spec)
    with chromium() as driver:
        driver.get((tmp_path / "grid" / "report.html").as_uri())  # returns after the load event
        timing = driver.execute_script(
            "const t = performance.getEntriesByType('navigation')[0];"
            "return {load: t.loadEventEnd, cells: document.querySelectorAll('#matrix td').length};"
        )
        assert timing["load"] > 0 and timing["cells"] == 200  # the whole matrix at load
        loaded = driver.execute_script(  # resource timing has no file:// entries: ask the DOM
            "const done = [...document.images].filter((i) => i.complete && i.naturalWidth > 0);"
            "return done.map((i) => i.currentSrc);"
        )
        full = [u for u in loaded if u.endswith("/grid.png")]
        thumbs = [u for u in loaded if u.endswith("/thumb.png")]
        assert len(full) <= 1  # only the A/B view's grid; the matrix links the others
        assert 0 < len(thumbs) < 200  # lazy: the thumbnails below the fold wait
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight);")
        last = driver.find_elements(By.CSS_SELECTOR, "img.thumb")[-1]
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return arguments[0].naturalWidth > 0;", last)
        )  # ... and load once scrolled to
        print(f"200-cell report: load event at {timing['load']:.0f} ms, {len(thumbs)} thumbnails")
