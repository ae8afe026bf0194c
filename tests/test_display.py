"""Tests of LossCurveDisplay: what it draws, where, and how it fails."""

import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skbackprop import BackpropMLPClassifier, LossCurveDisplay  # noqa: E402

X, y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)
SMALL = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)


def fit(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


@pytest.fixture(scope="module")
def plain():
    return fit(BackpropMLPClassifier(max_iter=40, **SMALL))


@pytest.fixture(scope="module")
def early():
    clf = fit(BackpropMLPClassifier(
        max_iter=200, early_stopping=True, validation_fraction=0.3, n_iter_no_change=5, **SMALL
    ))
    assert len(clf.validation_scores_) == len(clf.loss_curve_) > 5  # the test needs a curve
    return clf


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legend_texts(display):
    return [text.get_text() for text in display.legend_.get_texts()]


def test_training_loss_only(plain):
    display = LossCurveDisplay.from_estimator(plain)
    assert list(display.lines_) == ["loss"]
    line = display.lines_["loss"]
    n = len(plain.loss_curve_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, n + 1))
    np.testing.assert_array_equal(line.get_ydata(), plain.loss_curve_)
    assert line.axes is display.ax_
    assert display.ax2_ is None and display.best_epoch is None
    assert display.figure_.axes == [display.ax_]  # no twin axis without validation scores
    assert display.ax_.get_xlabel() == "epoch"
    assert display.ax_.get_ylabel() == "loss"
    assert legend_texts(display) == ["training loss"]


def test_validation_curves_and_best_epoch(early):
    display = LossCurveDisplay.from_estimator(early)
    assert set(display.lines_) == {"loss", "validation_loss", "validation_score", "best_epoch"}
    for name, curve in [
        ("loss", early.loss_curve_),
        ("validation_loss", early.validation_loss_curve_),
        ("validation_score", early.validation_scores_),
    ]:
        line = display.lines_[name]
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(curve) + 1))
        np.testing.assert_allclose(line.get_ydata(), curve)

    # The losses share the left axis; the accuracy has its own, on the right.
    assert display.lines_["loss"].axes is display.ax_
    assert display.lines_["validation_loss"].axes is display.ax_
    assert display.lines_["validation_score"].axes is display.ax2_
    assert display.ax2_ is not display.ax_
    assert display.ax2_.get_shared_x_axes().joined(display.ax_, display.ax2_)
    assert set(display.figure_.axes) == {display.ax_, display.ax2_}
    assert display.ax_.get_ylabel() == "loss"
    assert display.ax2_.get_ylabel() == "validation accuracy"

    # The marked epoch is the one whose accuracy best_validation_score_ records.
    best = display.best_epoch
    assert best == int(np.argmax(early.validation_scores_)) + 1
    assert early.validation_scores_[best - 1] == early.best_validation_score_
    assert list(display.lines_["best_epoch"].get_xdata()) == [best, best]

    texts = legend_texts(display)
    assert texts[:3] == ["training loss", "validation loss", "validation accuracy"]
    assert texts[3] == (
        f"best validation accuracy {early.best_validation_score_:.4g} (epoch {best})"
    )
    assert display.legend_.axes is display.ax2_  # on top of every line


def test_lbfgs_counts_iterations():
    clf = fit(BackpropMLPClassifier(solver="lbfgs", max_iter=15, **SMALL))
    display = LossCurveDisplay.from_estimator(clf)
    assert display.ax_.get_xlabel() == "iteration"
    np.testing.assert_array_equal(display.lines_["loss"].get_ydata(), clf.loss_curve_)


def test_draws_on_the_given_axes(plain):
    fig, ax = plt.subplots()
    n_figures = len(plt.get_fignums())
    display = LossCurveDisplay.from_estimator(plain, ax=ax)
    assert display.ax_ is ax
    assert display.figure_ is fig
    assert ax.get_lines() == [display.lines_["loss"]]
    assert len(plt.get_fignums()) == n_figures  # no new figure


def test_twin_axis_goes_on_the_given_axes(early):
    fig, ax = plt.subplots()
    display = LossCurveDisplay.from_estimator(early, ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    assert display.ax2_.figure is fig
    assert display.ax2_.get_shared_x_axes().joined(ax, display.ax2_)


def test_without_axes_draws_a_new_figure(plain):
    before = set(plt.get_fignums())
    display = LossCurveDisplay.from_estimator(plain)
    assert len(set(plt.get_fignums()) - before) == 1
    assert display.figure_ is plt.gcf()


def test_keyword_arguments_style_the_training_loss(early):
    display = LossCurveDisplay.from_estimator(
        early, color="red", linestyle=":", label="my run"
    )
    line = display.lines_["loss"]
    assert line.get_color() == "red" and line.get_linestyle() == ":"
    assert line.get_label() == "my run"
    assert legend_texts(display)[0] == "my run"
    assert display.lines_["validation_loss"].get_color() != "red"  # only that line


def test_plot_returns_the_display_itself(plain):
    display = LossCurveDisplay(plain.loss_curve_)
    assert display.plot() is display
    assert display.ax_.get_xlabel() == "epoch"


def test_accepts_a_pipeline():
    pipe = fit(make_pipeline(StandardScaler(), BackpropMLPClassifier(max_iter=20, **SMALL)))
    display = LossCurveDisplay.from_estimator(pipe)
    np.testing.assert_array_equal(display.lines_["loss"].get_ydata(), pipe[-1].loss_curve_)


def test_works_with_sklearn_mlpclassifier():
    # It has validation_scores_ but no validation_loss_curve_.
    clf = fit(MLPClassifier(max_iter=30, early_stopping=True, validation_fraction=0.3, **SMALL))
    display = LossCurveDisplay.from_estimator(clf)
    assert set(display.lines_) == {"loss", "validation_score", "best_epoch"}
    np.testing.assert_allclose(display.lines_["validation_score"].get_ydata(),
                               clf.validation_scores_)


def test_from_curves():
    display = LossCurveDisplay(
        [1.0, 0.6, 0.5, 0.45, 0.44],
        validation_loss_curve=[0.9, 0.7, 0.65, 0.7],  # shorter, as after a divergence
        validation_scores=[0.5, 0.9, 0.9, 0.8],
        xlabel="step",
    ).plot()
    assert display.best_epoch == 2  # the first of equal best scores, as in training
    np.testing.assert_array_equal(display.lines_["validation_loss"].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(display.lines_["loss"].get_xdata(), [1, 2, 3, 4, 5])
    assert display.ax_.get_xlabel() == "step"
    assert legend_texts(display)[-1] == "best validation accuracy 0.9 (step 2)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loss_curve=[]), "loss_curve is empty"),
        (dict(loss_curve=None), "loss_curve is required"),
        (dict(loss_curve=[[1.0, 2.0]]), "loss_curve must be one-dimensional"),
        (dict(loss_curve=["a", "b"]), "loss_curve must be a sequence of numbers"),
        (dict(loss_curve=[1.0], validation_scores=[]), "validation_scores is empty"),
    ],
)
def test_bad_curves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossCurveDisplay(**kwargs)


def test_bad_xlabel():
    with pytest.raises(TypeError, match="xlabel must be a string"):
        LossCurveDisplay([1.0], xlabel=3)


@pytest.mark.parametrize(
    "estimator",
    [BackpropMLPClassifier(), make_pipeline(StandardScaler(), BackpropMLPClassifier())],
    ids=["classifier", "pipeline"],
)
def test_unfitted_estimator(estimator):
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(estimator)


def test_estimator_without_loss_curve():
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(TypeError, match="LogisticRegression has no loss_curve_"):
        LossCurveDisplay.from_estimator(clf)


def test_missing_matplotlib_says_how_to_install_it(plain, monkeypatch):
    # A None entry in sys.modules makes ``import`` fail as if it were not installed.
    for name in ["matplotlib", "matplotlib.pyplot", "matplotlib.ticker"]:
        monkeypatch.setitem(sys.modules, name, None)
    display = LossCurveDisplay(plain.loss_curve_)  # holding the data needs no matplotlib
    for draw in [display.plot, lambda: LossCurveDisplay.from_estimator(plain)]:
        with pytest.raises(ImportError, match="needs matplotlib") as error:
            draw()
        assert "pip install 'skbackprop[plot]'" in str(error.value)
    assert not hasattr(display, "ax_")
