"""End to end in headless Chromium (Debian's chromium + chromedriver driven by Selenium; nothing is downloaded):
upload the sample photo, click, move the slider, add a negative click, commit two objects, export, and check the
export with pycocotools against the library's own masks. Screenshots go to ``--screenshots DIR`` (default: the
test's tmp dir). Deselect with ``-m 'not browser'``; skipped, with the reason, only when no browser is installed.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn", reason="the [app] extra (fastapi, uvicorn) is not installed")

from granseg.app import AppConfig  # noqa: E402
from granseg.app.harness import ServerThread, browser_missing_reason, chrome_driver, click_image, wait_for  # noqa: E402

# In CI (.ci/run installs the browser) a missing browser is a failure, never a silent skip.
_MISSING = browser_missing_reason()
if _MISSING is not None and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    raise RuntimeError(f"CI must run the browser tests: {_MISSING}")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)),
]

CUP, NEGATIVE, SAUCER = (330, 60), (380, 120), (450, 320)
DATA = "return document.body.dataset"


@pytest.fixture
def shots(request, tmp_path) -> Path:
    folder = request.config.getoption("--screenshots")
    folder = Path(folder) if folder else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path):
    driver = chrome_driver(download_dir=tmp_path / "downloads")
    yield driver
    driver.quit()


@functools.cache
def _library_predictor(image_path: Path):
    import granseg

    predictor = granseg.load_predictor("hierarchy")
    predictor.set_image(granseg.load_image(image_path))
    return predictor


def library_mask(image_path: Path, points, labels, g: float) -> np.ndarray:
    """The library's own answer, to compare with what the browser shows."""
    return (
        _library_predictor(image_path)
        .predict(point_coords=points, point_labels=labels, granularity=g)
        .masks[0]
    )


def shown(driver) -> dict:
    return driver.execute_script(DATA)


def wait_mask(driver, after_seq: int) -> dict:
    wait_for(
        driver, f"return Number(document.body.dataset.maskSeq) > {after_seq} && !window.granseg.inflight"
    )
    wait_for(driver, "return !window.granseg.queued && !window.granseg.inflight")
    return shown(driver)


def test_click_slide_negative_commit_export(tmp_path, sample_image_path, shots, browser):
    from pycocotools.coco import COCO
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver = browser
    with ServerThread(AppConfig(model="hierarchy", workdir=str(tmp_path / "work"))) as server:
        driver.get(server.url)
        wait_for(driver, "return document.body.dataset.ready")
        assert driver.find_element(By.ID, "video-tab").is_displayed() is False  # no video session yet
        driver.find_element(By.ID, "file-input").send_keys(str(sample_image_path))
        wait_for(driver, "return document.body.dataset.busy === '1' && !!window.granseg.image", 30)
        assert driver.find_element(By.ID, "busy").is_displayed()  # the embedding is shown as busy
        driver.save_screenshot(str(shots / "01_embedding.png"))
        wait_for(driver, "return document.body.dataset.imageId && document.body.dataset.busy === '0'", 60)
        assert not driver.find_element(By.ID, "busy").is_displayed()
        driver.save_screenshot(str(shots / "01_uploaded.png"))

        click_image(driver, *CUP)
        at_one = wait_mask(driver, 0)
        assert float(at_one["maskG"]) == 1.0
        assert int(at_one["maskArea"]) == int(library_mask(sample_image_path, [CUP], [1], 1.0).sum())
        assert len(driver.find_elements(By.CSS_SELECTOR, "#thumbs .thumb")) == 10
        driver.save_screenshot(str(shots / "02_click_g1.png"))

        # drag the slider thumb left in small steps: every step asks for a mask, only the latest is shown
        slider = driver.find_element(By.ID, "g-slider")
        width = slider.size["width"]
        chain = ActionChains(driver).move_to_element_with_offset(slider, width // 2 - 6, 0).click_and_hold()
        for _ in range(12):
            chain.move_by_offset(-width // 24, 0).pause(0.02)
        chain.release().perform()
        after_slide = wait_mask(driver, int(at_one["maskSeq"]))
        final_g = float(slider.get_attribute("value"))
        assert final_g < 0.7 and float(after_slide["maskG"]) == pytest.approx(final_g)
        assert int(after_slide["maskArea"]) == int(library_mask(sample_image_path, [CUP], [1], final_g).sum())
        assert int(after_slide["maskArea"]) != int(at_one["maskArea"])  # the mask changed with g
        driver.save_screenshot(str(shots / "03_slider.png"))

        driver.find_element(By.TAG_NAME, "body").send_keys("5")  # shortcut: g = 0.5
        at_half = wait_mask(driver, int(after_slide["maskSeq"]))
        click_image(driver, *NEGATIVE, right=True)
        negative = wait_mask(driver, int(at_half["maskSeq"]))
        expected = library_mask(sample_image_path, [CUP, NEGATIVE], [1, 0], 0.5)
        assert int(negative["maskArea"]) == int(expected.sum()) != int(at_half["maskArea"])
        assert driver.execute_script("return window.granseg.labels") == [1, 0]
        driver.save_screenshot(str(shots / "04_negative.png"))

        name = driver.find_element(By.ID, "object-name")
        name.send_keys("inner wall", Keys.ENTER)
        wait_for(driver, "return document.body.dataset.objects === '1'")
        click_image(driver, *SAUCER)
        wait_mask(driver, 0)
        driver.find_element(By.TAG_NAME, "body").send_keys("0")  # g = 1.0
        wait_for(driver, "return document.body.dataset.maskG === '1'")
        driver.find_element(By.ID, "commit").click()
        wait_for(driver, "return document.body.dataset.objects === '2'")
        time.sleep(0.2)
        driver.save_screenshot(str(shots / "05_two_objects.png"))

        driver.find_element(By.ID, "export-coco").click()
        download = tmp_path / "downloads" / "coffee_coco.json"
        deadline = time.monotonic() + 60
        while not download.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        doc = json.loads(download.read_text())
        coco = COCO()
        coco.dataset = doc
        coco.createIndex()
        anns = coco.loadAnns(coco.getAnnIds())
        assert [a["name"] for a in anns] == ["inner wall", "object 2"]
        assert [a["granularity"] for a in anns] == [0.5, 1.0]
        assert anns[0]["point_labels"] == [1, 0]
        assert np.array_equal(coco.annToMask(anns[0]).astype(bool), expected)
        saucer = library_mask(sample_image_path, [SAUCER], [1], 1.0)
        assert np.array_equal(coco.annToMask(anns[1]).astype(bool), saucer)

        driver.find_element(By.TAG_NAME, "body").send_keys("?")
        assert driver.find_element(By.ID, "help").is_displayed()
        driver.save_screenshot(str(shots / "06_help.png"))
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)

        driver.find_element(By.CSS_SELECTOR, '.tab[data-tab="auto"]').click()
        driver.find_element(By.ID, "auto-run").click()
        wait_for(driver, "return document.body.dataset.autoCount", 60)
        assert int(shown(driver)["autoCount"]) > 0
        time.sleep(0.2)
        driver.save_screenshot(str(shots / "07_whole_image.png"))
        # the same at g as a partition of the image (hierarchy)
        driver.execute_script("delete document.body.dataset.autoCount")
        Select(driver.find_element(By.ID, "auto-source")).select_by_value("partition")
        driver.find_element(By.ID, "auto-run").click()
        wait_for(driver, "return document.body.dataset.autoCount", 60)
        assert int(shown(driver)["autoCount"]) > 1
        assert "regions at g" in driver.find_element(By.ID, "auto-status").text
        driver.save_screenshot(str(shots / "08_partition.png"))

        origins = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
        )
        assert set(origins) <= {server.url, "null"}, origins  # nothing fetched from anywhere else
    assert len(list(shots.glob("*.png"))) >= 8


def test_box_undo_redo_rename_hide_reedit_and_folder(tmp_path, sample_image_path, shots, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(sample_image_path.read_bytes())
    (folder / "b.jpg").write_bytes(sample_image_path.read_bytes() + b"\0")
    config = AppConfig(model="hierarchy", workdir=str(tmp_path / "work"), images_dir=str(folder))
    with ServerThread(config) as server:
        driver.get(server.url)
        wait_for(driver, "return document.body.dataset.ready")
        assert [o.text for o in driver.find_elements(By.CSS_SELECTOR, "#folder-select option")] == [
            "a.jpg",
            "b.jpg",
        ]
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("d")  # next image in the folder: a.jpg
        wait_for(driver, "return document.body.dataset.imageId && document.body.dataset.busy === '0'", 60)
        first_id = shown(driver)["imageId"]

        canvas = driver.find_element(By.ID, "canvas")
        scale = driver.execute_script(
            "const c = arguments[0]; return c.getBoundingClientRect().width / c.width;", canvas
        )
        start = (round((170 - 300) * scale), round((15 - 200) * scale))  # a box around the cup, image pixels
        ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold().move_by_offset(
            round(240 * scale), round(200 * scale)
        ).release().perform()
        boxed = wait_mask(driver, 0)
        box = driver.execute_script("return window.granseg.box")
        assert box is not None and abs(box[0] - 170) <= 2 and abs(box[3] - 215) <= 2
        expected = _library_predictor(sample_image_path).predict(box=box, granularity=1.0).masks[0]
        assert int(boxed["maskArea"]) == int(expected.sum())

        click_image(driver, *CUP)
        clicked = wait_mask(driver, int(boxed["maskSeq"]))
        body.send_keys("z")  # undo the click: back to the box alone
        undone = wait_mask(driver, int(clicked["maskSeq"]))
        assert (
            driver.execute_script("return window.granseg.points") == []
            and undone["maskArea"] == boxed["maskArea"]
        )
        body.send_keys("y")  # redo
        redone = wait_mask(driver, int(undone["maskSeq"]))
        assert redone["maskArea"] == clicked["maskArea"]
        # 30 slider events at once: one request in flight, only the latest queued, the last g is what is shown
        sent = driver.execute_script("return window.granseg.sent")
        driver.execute_script(
            "const s = document.getElementById('g-slider');"
            "for (let k = 0; k < 30; k++) { s.value = String(0.2 + 0.02 * k); s.dispatchEvent(new Event('input')); }"
        )
        wait_for(driver, "return document.body.dataset.maskG === '0.78' && !window.granseg.inflight")
        assert driver.execute_script("return window.granseg.sent") - sent == 2
        body.send_keys("n")  # negative mode: a left click now removes
        click_image(driver, *NEGATIVE)
        wait_mask(driver, int(redone["maskSeq"]))
        assert driver.execute_script("return window.granseg.labels") == [1, 0]
        body.send_keys("n")
        body.send_keys("\n")  # Enter commits
        wait_for(driver, "return document.body.dataset.objects === '1'")

        name = driver.find_element(By.CSS_SELECTOR, "#objects li .name")
        name.clear()
        name.send_keys("cup", "\t")  # rename (saved on change)
        wait_for(driver, "return window.granseg.objects[0].name === 'cup'")
        driver.find_element(By.CSS_SELECTOR, "#objects li .hide").click()
        wait_for(driver, "return document.querySelector('#objects li.hidden-object') !== null")
        objects = json.loads((tmp_path / "work" / "images" / first_id / "objects.json").read_text())[
            "objects"
        ]
        assert [(o["name"], o["hidden"], o["labels"]) for o in objects] == [("cup", True, [1, 0])]

        driver.find_element(By.CSS_SELECTOR, "#objects li .edit").click()  # re-edit: clicks and g come back
        wait_for(driver, "return window.granseg.editing === 1 && document.body.dataset.maskSeq !== undefined")
        assert driver.execute_script("return window.granseg.points") == [[330, 60], [380, 120]]
        body.send_keys("3")
        wait_for(driver, "return document.body.dataset.maskG === '0.3' && !window.granseg.inflight")
        assert driver.find_element(By.ID, "commit").text == "Update"
        driver.find_element(By.ID, "commit").click()
        wait_for(driver, "return document.querySelector('#objects li .g').textContent === 'g 0.30'")
        driver.save_screenshot(str(shots / "11_reedited.png"))

        body.send_keys("d")  # next image: b.jpg, embedded once with the busy state shown
        wait_for(driver, f"return document.body.dataset.imageId !== '{first_id}'")
        wait_for(driver, "return document.body.dataset.busy === '0'", 60)
        assert shown(driver)["objects"] == "0"
        body.send_keys("a")
        wait_for(
            driver,
            f"return document.body.dataset.imageId === '{first_id}' && document.body.dataset.objects === '1'",
        )
        driver.save_screenshot(str(shots / "12_back_to_first.png"))
