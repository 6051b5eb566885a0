"""The web page in headless Chromium (Selenium) against a live uvicorn server on 127.0.0.1 with the fake predictor.

Loads the page, uploads an image, checks the table rows and the boxes drawn on the canvas (pixel colours), asks a
question and checks the cited box is highlighted. Saves a screenshot (``service_page.png``) in the test's tmp dir
and, when ``$RTVP_ARTIFACTS`` is set, copies it there for CI. Skips only when Chromium or chromedriver is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import free_port, served

from rtvp.service import ServeSettings, create_app
from rtvp.service.testing import FakePredictor

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
DRIVER = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).is_file()), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
         "--force-device-scale-factor=1"]
W, H = 480, 320  # fake predictor, prompt i: box x1 = (0.05 + 0.32 i) W, y1 = 0.1 H, size 0.25 W x 0.2 H


@pytest.fixture
def live_url(request):
    pytest.importorskip("uvicorn")
    port = free_port()
    api_key = getattr(request, "param", None)
    app = create_app(FakePredictor(conf=0.25), ServeSettings(port=port, model_name="fake-demo", api_key=api_key))
    with served(app, port) as url:
        yield url


@pytest.fixture
def driver():
    if CHROMIUM is None or DRIVER is None:
        why = "Chromium/chromedriver not found (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":  # .ci/run installs them: in CI the page must really be opened
            pytest.fail(f"{why}; .ci/run should have installed them")
        pytest.skip(why)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rtvp-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _steel_image(path: Path) -> None:
    """A brushed-steel-like grey texture (uniform 128 where boxes are checked)."""
    rng = np.random.default_rng(0)
    rows = rng.normal(0, 6, (H, 1)) + np.linspace(-10, 10, W)[None, :]
    img = np.clip(128 + rows, 0, 255).astype(np.uint8)
    img[:, :] = np.where(np.abs(np.arange(W) - 30) < 3, img, img)  # keep deterministic
    Image.fromarray(np.repeat(img[:, :, None], 3, axis=2)).save(path)


def _wait(drv, condition, timeout: float = 15.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout).until(condition)


def _pixel(drv, x: int, y: int) -> list[int]:
    return drv.execute_script(
        "const c = document.getElementById('canvas');"
        "return Array.from(c.getContext('2d').getImageData(arguments[0], arguments[1], 1, 1).data);", x, y)


def _save_screenshot(drv, tmp_path: Path) -> Path:
    shot = tmp_path / "service_page.png"
    drv.save_screenshot(str(shot))
    if os.environ.get("RTVP_ARTIFACTS"):
        out = Path(os.environ["RTVP_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, out / "service_page.png")
    return shot


def test_page_detects_draws_and_answers(live_url, driver, tmp_path):
    from selenium.webdriver.common.by import By

    image = tmp_path / "steel.png"
    _steel_image(image)
    driver.get(live_url + "/")
    _wait(driver, lambda d: "fake-demo" in d.find_element(By.ID, "model-info").text)
    assert [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#vocab .chip")] == FakePredictor().vocabulary

    driver.find_element(By.ID, "prompts").send_keys("划痕, hole")
    driver.find_element(By.ID, "file-input").send_keys(str(image))  # choosing a file runs detection
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#detections tbody tr")) == 2)
    canvas = driver.find_element(By.ID, "canvas")
    assert canvas.get_attribute("data-boxes") == "2"
    assert (canvas.get_property("width"), canvas.get_property("height")) == (W, H)
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#detections tbody tr")]
    assert [r[:3] for r in rows] == [["0", "划痕", "scratch"], ["1", "hole", "hole"]]
    assert rows[0][4] == f"{0.05 * W:.0f}, {0.1 * H:.0f}, {0.30 * W:.0f}, {0.3 * H:.0f}"
    assert "划痕 → scratch" in driver.find_element(By.ID, "mapping").text
    assert "2 detections" in driver.find_element(By.ID, "status").text

    # the left edge of box 0 is stroked in palette colour 0 (#e6194b); the image there is grey
    x1, mid_y = round(0.05 * W), round(0.2 * H)
    assert _pixel(driver, x1, mid_y)[:3] == [0xE6, 0x19, 0x4B]
    r, g, b, _ = _pixel(driver, x1 + 20, mid_y + 5)  # inside the box: untouched grey image
    assert abs(r - g) < 3 and abs(g - b) < 3
    x1b = int(0.37 * W)  # box 1 (edge at 177.6 px, stroke 2 px: pixel 177 fully covered), colour 1 (#1f77b4)
    assert _pixel(driver, x1b, mid_y)[:3] == [0x1F, 0x77, 0xB4]

    driver.find_element(By.ID, "question").send_keys("how many holes?")
    driver.find_element(By.ID, "ask-btn").click()
    _wait(driver, lambda d: d.find_element(By.ID, "answer").is_displayed())
    answer = driver.find_element(By.ID, "answer")
    assert "1 hole" in answer.text and [c.text for c in answer.find_elements(By.CSS_SELECTOR, ".cite")] == ["#1"]
    assert canvas.get_attribute("data-highlighted") == "1"
    cited = driver.find_elements(By.CSS_SELECTOR, "#detections tbody tr.cited")
    assert [tr.get_attribute("data-id") for tr in cited] == ["1"]
    assert _pixel(driver, x1, mid_y)[3] == 255 and _pixel(driver, x1, mid_y)[:3] != [0xE6, 0x19, 0x4B]  # faded
    shot = _save_screenshot(driver, tmp_path)
    assert shot.stat().st_size > 10_000
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.parametrize("live_url", ["page-key-42"], indirect=True)
def test_page_api_key_and_grounding(live_url, driver, tmp_path):
    from selenium.webdriver.common.by import By

    image = tmp_path / "steel.png"
    _steel_image(image)
    driver.get(live_url + "/")
    _wait(driver, lambda d: d.find_element(By.ID, "auth-card").is_displayed())  # /v1/model answered 401
    assert "API key" in driver.find_element(By.ID, "status").text
    driver.find_element(By.ID, "api-key").send_keys("page-key-42")
    driver.find_element(By.CSS_SELECTOR, "#auth-form button").click()
    _wait(driver, lambda d: "fake-demo" in d.find_element(By.ID, "model-info").text)
    assert not driver.find_element(By.ID, "auth-card").is_displayed()

    driver.find_element(By.ID, "file-input").send_keys(str(image))  # empty prompts: the model vocabulary
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#detections tbody tr")) == 3)
    driver.find_element(By.ID, "query").send_keys("crack near the left edge")
    driver.find_element(By.ID, "ground-btn").click()
    _wait(driver, lambda d: "Best match" in d.find_element(By.ID, "status").text)
    rows = driver.find_elements(By.CSS_SELECTOR, "#detections tbody tr")
    assert len(rows) == 1 and rows[0].get_attribute("class") == "cited"
    assert driver.find_element(By.ID, "canvas").get_attribute("data-highlighted") == "1"
    assert "near the left edge" in driver.find_element(By.ID, "status").text


def test_page_find_more_like_a_drawn_box(driver, tmp_path):
    """Drag a box on the canvas, name it, "Find more like this": the server gets that box in image pixels."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pytest.importorskip("uvicorn")
    fake, port = FakePredictor(conf=0.25), free_port()
    image = tmp_path / "steel.png"
    _steel_image(image)
    with served(create_app(fake, ServeSettings(port=port, model_name="fake-demo")), port) as url:
        driver.get(url + "/")
        _wait(driver, lambda d: "fake-demo" in d.find_element(By.ID, "model-info").text)
        driver.find_element(By.ID, "file-input").send_keys(str(image))
        _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#detections tbody tr")) == 3)
        assert not driver.find_element(By.ID, "find-btn").is_enabled()
        canvas = driver.find_element(By.ID, "canvas")
        rect = canvas.rect  # CSS pixels; the image is drawn with object-fit: contain
        k = min(rect["width"] / W, rect["height"] / H)

        def offset(x: float, y: float) -> tuple[int, int]:  # image pixel -> offset from the element's centre
            return round((x - W / 2) * k), round((y - H / 2) * k)

        (ax, ay), (bx, by) = offset(100, 80), offset(220, 160)
        ActionChains(driver).move_to_element_with_offset(canvas, ax, ay).click_and_hold() \
            .move_by_offset(bx - ax, by - ay).release().perform()
        drawn = [int(v) for v in canvas.get_attribute("data-exemplar").split(",")]
        tol = 2 / k + 1
        assert all(abs(a - b) <= tol for a, b in zip(drawn, (100, 80, 220, 160), strict=True)), drawn
        driver.find_element(By.ID, "exemplar-name").send_keys("spur")
        driver.find_element(By.ID, "find-btn").click()
        _wait(driver, lambda d: "like the example box" in d.find_element(By.ID, "status").text)
        assert fake.last_exemplars == [(tuple(float(v) for v in drawn), "spur")]
        assert driver.find_element(By.ID, "mapping").text == "spur"
        assert [tr.find_elements(By.TAG_NAME, "td")[1].text
                for tr in driver.find_elements(By.CSS_SELECTOR, "#detections tbody tr")] == ["spur"]
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_page_draws_masks_and_shows_their_sizes(driver, tmp_path):
    """A model with masks: each mask is decoded from its RLE and drawn in the box colour; the table gives its sizes."""
    from selenium.webdriver.common.by import By

    from rtvp.masks import measure_mask

    pytest.importorskip("uvicorn")
    port = free_port()
    image = tmp_path / "steel.png"
    _steel_image(image)
    app = create_app(FakePredictor(conf=0.25, masks=True), ServeSettings(port=port, model_name="fake-demo"))
    with served(app, port) as url:
        driver.get(url + "/")
        _wait(driver, lambda d: "fake-demo" in d.find_element(By.ID, "model-info").text)
        driver.find_element(By.ID, "px-size").send_keys("0.1")
        driver.find_element(By.ID, "prompts").send_keys("scratch, hole")
        driver.find_element(By.ID, "file-input").send_keys(str(image))
        _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#detections tbody tr")) == 2)
        assert driver.find_element(By.ID, "canvas").get_attribute("data-masks") == "2"
        # box 0 is [24, 32, 144, 96]: its mask is the 3-px strip at rows 63-65, columns 24-143
        strip = np.zeros((H, W), bool)
        strip[63:66, 24:144] = True
        length_mm = round(measure_mask(strip)["length_px"], 2) * 0.1
        cells = driver.find_elements(By.CSS_SELECTOR, "#detections tbody tr td.mask")
        assert cells[0].text == f"{length_mm:.0f} mm long · 0.3 mm wide · 3.6 mm²"
        r, g, _, _ = _pixel(driver, 84, 64)  # inside the strip: grey blended with palette colour 0 (#e6194b)
        assert r - g > 60
        r, g, b, _ = _pixel(driver, 84, 60)  # above the strip, inside the box: untouched grey
        assert abs(r - g) < 3 and abs(g - b) < 3
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
