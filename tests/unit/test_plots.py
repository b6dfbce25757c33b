"""The report's figures as matplotlib objects: titles, axis labels with units, legends, CI bands.

Drawn from the synthetic study of ``test_analysis_curves`` (3 seeds whose offsets 0, +0.004,
-0.004 cancel, so the mean OOD curve is ``OOD_CURVE`` exactly) and from its one-seed variant,
which has no interval anywhere and so must show no band.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection

from sweeps.analysis import plots
from sweeps.analysis.curves import analyse
from sweeps.analysis.tables import OOD, read_study
from tests.unit.test_analysis_curves import DELTA, OOD_CURVE, OPTS, STEPS, make_study

UNIT = re.compile(r"\S.*\([^()]+\)$")  # "what (unit)"
KINDS = {"study", "sft", "recovery", "rotation", "layers", "errors"}


def draw(root, monkeypatch, **kw):
    """{figure kind: (Figure, rows of the analysis)} as draw_all made them."""
    figs, save = {}, plots._save
    monkeypatch.setattr(
        plots, "_save", lambda fig, path: (figs.__setitem__(path.name.split("_")[0], fig), save(fig, path))[1]
    )
    study = read_study(make_study(root, **kw))
    res = analyse(study, OPTS)
    written = plots.draw_all(res, study, root / "figures")
    assert all(p.is_file() for _, p in written) and len(written) == len(figs)
    return figs, res


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return draw(tmp_path_factory.mktemp("plots3"), mp)


def plot_axes(fig):
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def vertices(ax) -> set[tuple[float, float]]:
    return {
        (round(x, 9), round(y, 9))
        for c in ax.collections
        if isinstance(c, PolyCollection)
        for path in c.get_paths()
        for x, y in path.vertices
    }


def test_every_figure_has_title_labels_with_units_and_a_legend(three):
    figs, _ = three
    assert set(figs) == KINDS
    for kind, fig in figs.items():
        for ax in fig.axes:
            labels = [ax.get_ylabel()] if hasattr(ax, "_colorbar") else [ax.get_xlabel(), ax.get_ylabel()]
            for label in labels:
                assert UNIT.match(label), f"{kind}: axis label {label!r} names no unit"
        for ax in plot_axes(fig):
            assert ax.get_title(), f"{kind}: an axes without a title"
        colorbars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
        assert any(ax.get_legend() for ax in fig.axes) or colorbars, f"{kind}: no legend and no colour bar"
        for ax in plot_axes(fig):
            if ax.get_legend():
                assert all(t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.parametrize("kind", ["sft", "study", "recovery"])
def test_ood_mean_curve_and_its_ci_band(three, kind):
    """The mean OOD line is OOD_CURVE (the seed offsets cancel); the band spans [lo, hi] of the
    curves table at every step."""
    figs, res = three
    (ax,) = plot_axes(figs[kind])
    label = {"sft": "OOD success", "study": "SFT: OOD success", "recovery": "SFT OOD"}[kind]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert list(line.get_xdata()) == STEPS
    assert np.allclose(line.get_ydata(), OOD_CURVE)
    rows = [r for r in res.curves if r["metric"] == OOD]
    assert len(rows) == len(STEPS) and all(r["lo"] < r["mean"] < r["hi"] for r in rows)
    verts = vertices(ax)
    for r in rows:
        assert (r["step"], round(r["lo"], 9)) in verts and (r["step"], round(r["hi"], 9)) in verts, r


def test_recovery_shows_rl_intervals_and_the_window(three):
    figs, res = three
    (ax,) = plot_axes(figs["recovery"])
    rl = sorted((r for r in res.summary if r["metric"] == "rl_end_ood"), key=lambda r: r["init_step"])
    assert [r["init_step"] for r in rl] == sorted(DELTA)
    bars = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    for r in rl:
        assert any(np.allclose(seg, [[r["init_step"], r["lo"]], [r["init_step"], r["hi"]]]) for seg in bars), r
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "recovery window [30, 60]" in texts and "SFT_MaxOOD (mean)" in texts


def test_errors_figure_draws_no_band_the_table_lacks(three):
    """The analysis gives error-type curves means only (no CI): lines, no band."""
    figs, res = three
    rows = [r for r in res.curves if "/err/" in r["metric"]]
    assert rows and not [r for r in rows if math.isfinite(r["lo"])]
    for ax in plot_axes(figs["errors"]):
        assert ax.get_lines() and not vertices(ax)


def test_one_seed_no_band_anywhere(tmp_path, monkeypatch):
    figs, res = draw(tmp_path, monkeypatch, seeds=(0,), spectral=False)
    assert set(figs) == {"study", "sft", "recovery", "errors"}
    assert not [r for r in res.curves if math.isfinite(r["lo"])]
    for kind, fig in figs.items():
        for ax in plot_axes(fig):
            assert not vertices(ax), f"{kind}: a band without an interval"
            assert ax.get_lines(), kind
