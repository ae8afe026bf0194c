"""Every gallery example, examples/plot_*.py, runs to the end and draws a figure.

The documentation build runs them too (sphinx-gallery); this test catches a
broken example without building the site. Matplotlib is an optional
dependency (the ``plot`` and ``docs`` extras): without it these tests skip.
Together the examples take well under a minute on two cores.
"""

import runpy
import time
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # no display: draw into memory, and plt.show() returns at once
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))


def test_the_gallery_has_its_examples():
    names = {script.stem for script in SCRIPTS}
    assert {
        "plot_learning_rates",
        "plot_gradient_descent_quadratic",
        "plot_decision_boundaries",
        "plot_grid_search_learning_rate",
        "plot_early_stopping",
        "plot_gradient_check",
    } <= names


@pytest.fixture
def no_open_figures():
    """Start without figures, and close whatever the example drew afterwards."""
    plt.close("all")
    yield
    plt.close("all")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_example_runs_and_draws_a_figure(script, no_open_figures, monkeypatch, capsys):
    monkeypatch.chdir(EXAMPLES)  # sphinx-gallery runs each example from its folder
    start = time.perf_counter()
    namespace = runpy.run_path(str(script), run_name="__main__")
    elapsed = time.perf_counter() - start

    assert namespace, f"{script.name} did not run"
    figures = plt.get_fignums()
    assert figures, f"{script.name} finished without drawing a figure"
    for number in figures:
        assert plt.figure(number).get_axes(), f"{script.name}: figure {number} is empty"
    # Reported with -s or on failure; the examples should stay fast (about 15 s
    # at most each), but a slow CI machine should not fail the test.
    print(f"{script.name}: {elapsed:.1f} s, {len(figures)} figure(s)")
