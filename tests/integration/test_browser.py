"""What users look at, checked as they see it (slow): the MLflow UI of a finished study, served
by ``mlflow server`` on 127.0.0.1, and the study's HTML report, in headless Chromium (Debian's
``chromium``, driven by Playwright with that executable).

The expectations come from the run directories on disk (the source of truth), never from
MLflow's REST API: every finished run directory must appear as a child of the study's parent run
in the runs table with its axis tags, its ``eval/ood/success`` chart must have one point per
checkpoint directory (the chart's own data and the markers drawn), and the parent's artifacts
must list every figure in ``analysis/figures``. The report must load with no console error, no
failed request and every ``<img>`` decoded.

Screenshots (runs table, charts, artifacts, reports) go to ``$SWEEPS_SCREENSHOTS`` or a pytest
temp folder; the path is printed (``pytest -s``). ``SWEEPS_BROWSER_STUDY=<output_dir>`` reuses a
finished ``tiny_smoke`` study instead of running one (~1 min). Without Chromium or Playwright the
tests skip, unless ``SWEEPS_REQUIRE_BROWSER=1`` (as in CI, ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_tracking_outage import Server
from tests.unit.test_analysis_curves import make_study

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("SWEEPS_CHROMIUM", "/usr/bin/chromium")
# Headless on a closed network: no sandbox (root in CI), no GPU, no background traffic.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STUDY = "tiny_smoke"
# The smallest study with a parent, an SFT child and an RL child, each with 2 checkpoints.
STUDY_ARGS = [f"experiment={STUDY}", "plan.seeds=[0]", "plan.rl.init_steps=[6]", "plan.spectral.enabled=false"]
AXES = ("stage", "model", "task", "init", "seed")
TIMEOUT_MS = 60_000
ASSISTANT_CLOSE = "mlflow.assistant.chat_panel.close"

# The Plotly chart whose legend entry ends with "(<metric>)": its traces' x and the markers drawn.
CHART_JS = """key => {
  const legends = Array.from(document.querySelectorAll('*')).filter(
      e => e.children.length === 0 && e.textContent.trim().endsWith('(' + key + ')'));
  return legends.map(e => {
    while (e && !e.querySelector('.js-plotly-plot')) e = e.parentElement;
    if (!e) return null;
    const plot = e.querySelector('.js-plotly-plot');
    return {x: (plot.data || []).map(t => Array.from(t.x)),
            markers: plot.querySelectorAll('.scatterlayer .trace path.point').length};
  });
}"""


def need_browser() -> None:
    problem = None
    try:
        import playwright  # noqa: F401
    except ImportError:
        problem = "the playwright package is missing: pip install -e '.[test]'"
    if problem is None and not Path(CHROMIUM).is_file():
        problem = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set SWEEPS_CHROMIUM)"
    if problem:
        (pytest.fail if os.environ.get("SWEEPS_REQUIRE_BROWSER") == "1" else pytest.skip)(problem)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:  # launch() gives each browser a fresh temporary profile
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("SWEEPS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {out}")
    return out


@contextmanager
def page(browser: Any, shot: Path, width: int = 2400) -> Iterator[tuple[Any, list[str]]]:
    """A page and the problems it reports (console errors, page errors, failed requests); a
    full-page screenshot to ``shot`` when done, failed or not."""
    pg = browser.new_page(viewport={"width": width, "height": 1000})
    pg.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    try:
        yield pg, problems
    finally:
        try:
            assistant = pg.locator(f"[data-component-id='{ASSISTANT_CLOSE}']")
            if assistant.count():  # MLflow's chat panel: closed, so the screenshot shows the page
                assistant.first.click(timeout=2000)
            pg.screenshot(path=str(shot), full_page=True)
        finally:
            pg.close()


# --- the study and its MLflow server ----------------------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A finished study's output dir (mlflow.db, mlartifacts/, tiny_smoke/)."""
    reuse = os.environ.get("SWEEPS_BROWSER_STUDY")
    if reuse:
        return Path(reuse)
    need_browser()  # no minute of training for a test that would skip
    out = tmp_path_factory.mktemp("study")
    res = subprocess.run(
        [str(BIN / "sweeps-study"), *STUDY_ARGS, f"paths.output_dir={out}"], capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def runs_on_disk(out: Path) -> dict[str, dict[str, Any]]:
    """{run name: {"tags": {axis: value}, "checkpoints": [step, ...]}} of the finished run dirs."""
    runs = {}
    for done in sorted((out / STUDY).glob("*/*/*/*/seed=*/DONE")):
        parts = done.parent.relative_to(out / STUDY).parts
        tags = dict(zip(AXES, parts[:4] + (parts[4].removeprefix("seed="),)))
        ckpts = sorted(int(p.name.removeprefix("step=")) for p in (done.parent / "ckpt").glob("step=*"))
        runs["/".join(parts)] = {"tags": tags, "checkpoints": ckpts}
    return runs


@pytest.fixture(scope="module")
def server(study) -> Iterator[Server]:
    s = Server(study)  # mlflow server on <study>/mlflow.db, a free port
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def runs_table(browser, server, shots) -> dict[str, dict[str, str]]:
    """The runs table as the UI shows it, the parent expanded and a column per axis tag added
    through the Columns menu: {run name: {"href": ..., axis: cell text}}."""
    with page(browser, shots / "runs_table.png") as (pg, _):
        pg.goto(f"{server.uri}/#/experiments")
        link = pg.get_by_role("link", name=STUDY, exact=True)
        href = link.get_attribute("href")  # #/experiments/<id>
        pg.goto(f"{server.uri}/{href}/runs")
        parent = pg.locator(".ag-pinned-left-cols-container .ag-row").filter(has_text=f"study/{STUDY}")
        parent.locator("[col-id='attributes.`Run Name`'] button").click()  # expand: the child runs
        pg.locator(".ag-pinned-left-cols-container .ag-row").nth(1).wait_for()
        pg.get_by_role("button", name="Columns").click()
        pg.get_by_placeholder("Search columns").fill("sweeps.")
        for name in ("role", *AXES):
            pg.get_by_text(f"sweeps.{name}", exact=True).click()
        pg.keyboard.press("Escape")
        pg.locator("[col-id='tags.`sweeps.seed`']").first.wait_for()
        pg.wait_for_timeout(500)
        table: dict[str, dict[str, str]] = {}
        for row in pg.locator(".ag-pinned-left-cols-container .ag-row").all():
            idx, a = row.get_attribute("row-index"), row.locator("[col-id='attributes.`Run Name`'] a")
            cells = pg.locator(f".ag-center-cols-container .ag-row[row-index='{idx}']")
            table[a.inner_text().strip()] = {
                "href": a.get_attribute("href"),
                **{
                    name: cells.locator(f"[col-id='tags.`sweeps.{name}`']").inner_text().strip()
                    for name in ("role", *AXES)
                },
            }
        return table


def test_runs_table_shows_the_parent_and_each_child_with_its_axis_tags(runs_table, study):
    disk = runs_on_disk(study)
    assert len(disk) == 2  # the SFT run and the GRPO run from step 6
    assert set(runs_table) == {f"study/{STUDY}", *disk}
    assert runs_table[f"study/{STUDY}"]["role"] == "parent"
    for name, run in disk.items():
        shown = runs_table[name]
        assert {a: shown[a] for a in AXES} == run["tags"], name
        assert shown["role"] == "-"


def test_each_childs_ood_success_chart_has_one_point_per_checkpoint(browser, server, runs_table, study, shots):
    for name, run in runs_on_disk(study).items():
        assert len(run["checkpoints"]) >= 2, name
        with page(browser, shots / f"chart_{name.split('/')[0]}.png", width=1600) as (pg, _):
            pg.goto(f"{server.uri}/{runs_table[name]['href']}/model-metrics")
            pg.get_by_placeholder("Search metric charts").fill("eval/ood/success")
            pg.wait_for_function(f"({CHART_JS})('eval/ood/success').some(c => c && c.markers > 0)", timeout=TIMEOUT_MS)
            (chart,) = pg.evaluate(CHART_JS, "eval/ood/success")
            assert chart["x"] and all(x == run["checkpoints"] for x in chart["x"]), (name, chart)
            assert chart["markers"] == len(run["checkpoints"]), (name, chart)


def test_parent_artifacts_list_the_report_figures(browser, server, runs_table, study, shots):
    figures = sorted(p.name for p in (study / STUDY / "analysis" / "figures").glob("*.png"))
    assert len(figures) >= 3
    with page(browser, shots / "parent_artifacts.png", width=1600) as (pg, _):
        pg.goto(f"{server.uri}/{runs_table[f'study/{STUDY}']['href']}/artifacts")
        pg.get_by_text("report", exact=True).wait_for()
        pg.get_by_text("analysis", exact=True).first.click()
        pg.get_by_text("figures", exact=True).click()
        for name in figures:
            pg.get_by_text(name, exact=True).wait_for()
        pg.get_by_text(figures[0], exact=True).click()  # the preview shows the image itself
        pg.wait_for_function(
            "Array.from(document.images).some(i => i.complete && i.naturalWidth >= 400)"
        )  # not an icon


# --- the HTML report -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory) -> Path:
    """The report of a 3-seed synthetic study with spectral data: every kind of figure, CI bands."""
    out = tmp_path_factory.mktemp("syn")
    make_study(out)
    res = subprocess.run(
        [
            str(BIN / "sweeps-analyze"),
            "study=syn",
            f"paths.output_dir={out}",
            "tracking=none",
            "analysis.n_resamples=999",
        ],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return out / "syn" / "report" / "index.html"


def check_report(browser, report: Path, shot: Path) -> None:
    figures = sorted((report.parent.parent / "analysis" / "figures").glob("*.png"))
    with page(browser, shot, width=1400) as (pg, problems):
        pg.goto(report.as_uri(), wait_until="load")
        images = pg.evaluate(
            "Array.from(document.images).map(i => ({src: i.src, alt: i.alt, w: i.naturalWidth,"
            " h: i.naturalHeight, done: i.complete}))"
        )
        assert problems == []
    assert sorted(Path(i["src"].removeprefix("file://")).name for i in images) == [f.name for f in figures]
    for i in images:
        assert i["done"] and i["w"] > 0 and i["h"] > 0 and i["alt"], i


def test_study_report_loads_with_every_image_and_no_error(browser, study, shots):
    check_report(browser, study / STUDY / "report" / "index.html", shots / "report_study.png")


def test_synthetic_report_loads_with_every_image_and_no_error(browser, synthetic_report, shots):
    check_report(browser, synthetic_report, shots / "report_synthetic.png")
