"""Regenerates docs/run-page.png: the MLflow UI's page of a `model=stacked` run, as the README shows it.

Runs the CLI into a temporary store, starts `mlflow ui` on it and opens the link the run printed in
headless chromium, with the browser test's own helpers (tests/test_browser.py); the screenshot is
scaled to WIDTH pixels.
Usage: .venv/bin/python scripts/screenshot_run_page.py [OUT]   (default docs/run-page.png)
"""

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import run_cli  # noqa: E402
from PIL import Image  # noqa: E402
from services import mlflow_server  # noqa: E402
from test_browser import UI, chromium, printed_link  # noqa: E402

WIDTH = 1200  # px; the browser window is 1400 wide


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="lstm_exp_screenshot_") as tmp:
        launch = Path(tmp) / "launch"
        launch.mkdir()
        proc = run_cli("model=stacked", cwd=launch)
        if proc.returncode != 0:
            sys.exit(f"the run failed:\n{proc.stderr[-3000:]}")
        with mlflow_server(f"sqlite:///{launch / 'mlflow.db'}", Path(tmp) / "ui", ui=True) as url, \
                chromium("1400,1000") as driver:
            ui = UI(driver)
            ui.open_run_page(printed_link(proc.stdout, url))
            ui.see("Description", "Reference check", "Metrics (", "About this run", "Finished")
            shot = Path(tmp) / "page.png"
            driver.save_screenshot(str(shot))
        with Image.open(shot) as image:
            height = round(image.height * WIDTH / image.width)
            small = image.convert("RGB").resize((WIDTH, height), Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out}: {WIDTH}x{height}, {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "run-page.png")
