"""The attention explorer: its views and numbers, its static picture, and the widget in a real JupyterLab."""

import base64
import io
import shutil
import time
from dataclasses import replace

import nbformat
import pytest
from lab_server import TOKEN, jupyterlab
from PIL import Image

from labkit.models import build_model, fit_to_data
from labkit.notebook.explorer import Explorer, explore, without_widgets
from labkit.presets import get_preset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def explorer(quick):
    model = build_model(fit_to_data(get_preset("fast").model, len(quick.classes)), seed=0)
    return Explorer(model, quick)


def test_each_control_changes_the_view(explorer):
    first = explorer.png(0, 3, 0, (3, 3))
    changes = [(1, 3, 0, (3, 3)), (0, 2, 0, (3, 3)), (0, 3, 1, (3, 3)), (0, 3, "rollout", (3, 3)), (0, 3, 0, (0, 0))]
    for other in changes:  # another image, block, head, the rollout, another patch position
        assert explorer.png(*other) != first, other


def test_a_head_map_and_the_cls_weight_it_leaves_out_sum_to_one(explorer):
    from labkit.notebook.explain import cls_to_itself

    head = explorer.attention(0, 3, 2)
    assert head.shape == (7, 7)
    assert head.sum() + cls_to_itself(explorer.maps(0), 3)[2] == pytest.approx(1, abs=1e-5)


def test_next_mistake_finds_a_misclassified_image_and_wraps(explorer):
    wrong = (explorer.predicted() != explorer.data.test.y).nonzero().flatten().tolist()
    assert wrong, "an untrained model gets some wrong"
    assert explorer.next_mistake(-1) == wrong[0]
    assert explorer.next_mistake(wrong[-1]) == wrong[0]
    assert explorer.next_of_class(2, len(explorer.data.test)) == (explorer.data.test.y == 2).nonzero()[0].item()


@pytest.mark.hostile
def test_the_numbers_table_escapes_class_names(quick):
    hostile = replace(quick, classes=["<img src=x onerror=alert(1)>", *quick.classes[1:]])
    model = build_model(fit_to_data(get_preset("fast").model, len(quick.classes)), seed=0)
    text = Explorer(model, hostile).numbers(0, 0, "rollout")
    assert "<img" not in text and "&lt;img" in text


def test_where_no_widget_runs_the_panel_is_a_picture_of_its_first_view(quick):
    model = build_model(fit_to_data(get_preset("fast").model, len(quick.classes)), seed=0)
    bundle = explore(model, quick)._repr_mimebundle_()
    assert bundle["text/plain"] == "Attention explorer: test image 0, block 4, head 1: [CLS] attention (its first view)"
    assert Image.open(io.BytesIO(base64.b64decode(bundle["image/png"]))).size[0] > 500
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data=bundle)]))
    without_widgets(nb)
    assert set(nb.cells[0].outputs[0].data) == {"text/plain", "image/png"} and "widgets" not in nb.metadata


EXPLORER_NOTEBOOK = """\
from labkit.data import DataConfig, load_data
from labkit.notebook.explorer import explore
from labkit.models import build_model, fit_to_data
from labkit.presets import get_preset

data = load_data(DataConfig())
model = build_model(fit_to_data(get_preset("fast").model, len(data.classes)), seed=0)
explore(model, data)"""


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs both)",
)
def test_the_explorer_runs_in_jupyterlab_and_a_control_changes_the_map(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(EXPLORER_NOTEBOOK))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "explorer.ipynb")
    (tmp_path / "home").mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # both paths given: Selenium Manager downloads nothing
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    with jupyterlab(tmp_path, tmp_path / "home") as lab:
        browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            browser.get(f"{lab.url}/lab/tree/explorer.ipynb?token={TOKEN}")
            wait = WebDriverWait(browser, 120)
            ready = "return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget"
            ready += " && window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle')"
            wait.until(lambda b: b.execute_script(ready))
            browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            picture = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".jp-OutputArea img.widget-image"))[0]
            wait.until(lambda b: picture.size["width"] > 100)
            time.sleep(1)
            before = picture.screenshot_as_png
            browser.save_screenshot(str(tmp_path / "explorer-first-view.png"))
            assert "official Jupyter news" not in browser.page_source
            source = picture.get_attribute("src")
            maps = [s for s in browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")]
            head = next(s for s in maps if "rollout" in s.text)
            Select(head).select_by_visible_text("rollout")
            wait.until(lambda b: picture.get_attribute("src") != source)
            time.sleep(1)
            after = picture.screenshot_as_png
            browser.save_screenshot(str(tmp_path / "explorer-rollout.png"))
        finally:
            browser.quit()
    assert after != before
    assert Image.open(io.BytesIO(after)).convert("L").getcolors(4096) is not None
    print(f"screenshots: {tmp_path}")
