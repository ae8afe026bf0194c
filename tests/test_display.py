"""Tests of LossCurveDisplay: what it draws, where, and how it fails."""

import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
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
        validation_loss_curve=[0.9, 0.7, 0.65, 0.7, 0.72],
        validation_scores=[0.5, 0.9, 0.9, 0.8, 0.8],
        xlabel="step",
    ).plot()
    assert display.best_epoch == 2  # the first of equal best scores, as in training
    np.testing.assert_array_equal(display.lines_["validation_loss"].get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(display.lines_["loss"].get_xdata(), [1, 2, 3, 4, 5])
    assert display.ax_.get_xlabel() == "step"
    assert legend_texts(display)[-1] == "best validation accuracy 0.9 (step 2)"


def test_shorter_validation_curves_end_with_the_loss_curve():
    # as after a warm start that switched early stopping on in epoch 3
    display = LossCurveDisplay(
        [1.0, 0.6, 0.5, 0.45, 0.44],
        validation_loss_curve=[0.65, 0.7, 0.72],
        validation_scores=[0.8, 0.9, 0.9],
    ).plot()
    for name in ["validation_loss", "validation_score"]:
        np.testing.assert_array_equal(display.lines_[name].get_xdata(), [3, 4, 5])
    assert display.best_epoch == 4
    assert list(display.lines_["best_epoch"].get_xdata()) == [4, 4]
    assert legend_texts(display)[-1] == "best validation accuracy 0.9 (epoch 4)"


def test_diverged_curves_from_the_data():
    # The guard stopped training in epoch 5, which it did not validate.
    display = LossCurveDisplay(
        [1.0, 0.6, 0.5, 0.45, 80.0],
        validation_loss_curve=[0.9, 0.7, 0.65, 0.7],
        validation_scores=[0.5, 0.9, 0.9, 0.8],
        diverged=True,
    ).plot()
    np.testing.assert_array_equal(display.lines_["validation_loss"].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(display.lines_["validation_score"].get_xdata(), [1, 2, 3, 4])
    assert display.best_epoch is None and "best_epoch" not in display.lines_
    assert list(display.lines_["diverged"].get_xdata()) == [5, 5]
    assert legend_texts(display) == [
        "training loss", "validation loss", "validation accuracy",
        "diverged (epoch 5): earlier weights restored",
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(validation_scores=[0.5, 0.6, 0.7, 0.8]),
         "validation_scores has 4 entries, but only 3"),
        (dict(validation_loss_curve=[0.5, 0.6, 0.7], diverged=True),
         r"validation_loss_curve has 3 entries, but only 2 .*\(the last one diverged\)"),
    ],
)
def test_validation_curves_longer_than_the_validated_epochs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossCurveDisplay([1.0, 0.8, 0.7], **kwargs)


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
    "kwargs, message",
    [(dict(diverged="yes"), "diverged must be a bool"),
     (dict(name=3), "name must be a string or None")],
)
def test_bad_diverged_or_name(kwargs, message):
    with pytest.raises(TypeError, match=message):
        LossCurveDisplay([1.0, 0.5], **kwargs)
    with pytest.raises(TypeError, match="name must be a string or None"):
        LossCurveDisplay([1.0, 0.5]).plot(name=3)


def test_validation_scores_must_be_finite_and_ax_an_axes():
    """A NaN accuracy would be drawn as a gap and taken for the best epoch;
    a string for ax would fail deep inside with an AttributeError."""
    with pytest.raises(ValueError, match="validation_scores must be finite"):
        LossCurveDisplay([1.0, 0.8, 0.6], validation_scores=[0.5, np.nan, 0.7])
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes or None; got 'axes'"):
        LossCurveDisplay([1.0, 0.8]).plot(ax="axes")
    # a diverged epoch's loss may be inf or NaN: the loss curves take them
    _, ax = plt.subplots()
    display = LossCurveDisplay([1.0, 0.8, np.inf], diverged=True).plot(ax=ax)
    plt.close(ax.figure)
    assert display.lines_["loss"].get_ydata()[-1] == np.inf


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


def test_sklearn_lbfgs_is_said_to_be_unsupported():
    # scikit-learn's MLPClassifier records no loss_curve_ with L-BFGS: the
    # message must not name 'lbfgs' among the solvers that work.
    clf = fit(MLPClassifier(solver="lbfgs", max_iter=5, **SMALL))
    with pytest.raises(TypeError) as error:
        LossCurveDisplay.from_estimator(clf)
    message = str(error.value)
    assert message.startswith("MLPClassifier has no loss_curve_")
    assert "'sgd' or 'adam' solver" in message
    assert "with 'lbfgs', MLPClassifier records no loss_curve_" in message
    assert "'sgd', 'adam' or 'lbfgs'" not in message


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


# ------------------------------------------------ several displays on one axes


@pytest.fixture(scope="module")
def early_fast():
    """Like ``early``, ten times the learning rate."""
    return fit(BackpropMLPClassifier(
        max_iter=200, early_stopping=True, validation_fraction=0.3, n_iter_no_change=5,
        **{**SMALL, "learning_rate_init": 0.1},
    ))


def legends(fig):
    return [each.get_legend() for each in fig.axes if each.get_legend() is not None]


def test_second_display_shares_the_accuracy_axis_and_the_legend(early, early_fast):
    fig, ax = plt.subplots()
    first = LossCurveDisplay.from_estimator(early, ax=ax)
    second = LossCurveDisplay.from_estimator(early_fast, ax=ax)

    # One twin axis, whose scale holds both accuracy curves.
    assert len(fig.axes) == 2
    assert second.ax2_ is first.ax2_
    assert first.ax2_.get_ylim() == second.ax2_.get_ylim()
    low, high = second.ax2_.get_ylim()
    for clf in [early, early_fast]:
        assert low <= min(clf.validation_scores_) and max(clf.validation_scores_) <= high
    assert second.ax2_.get_lines() == [
        first.lines_["validation_score"], first.lines_["best_epoch"],
        second.lines_["validation_score"], second.lines_["best_epoch"],
    ]

    # One legend, of all eight lines, each display's prefixed by its rank.
    assert legends(fig) == [second.legend_]
    best = [clf.best_validation_score_ for clf in [early, early_fast]]
    epochs = [first.best_epoch, second.best_epoch]
    assert legend_texts(second) == [
        text
        for rank in [1, 2]
        for text in [
            f"#{rank}: training loss", f"#{rank}: validation loss",
            f"#{rank}: validation accuracy",
            f"#{rank}: best validation accuracy {best[rank - 1]:.4g} "
            f"(epoch {epochs[rank - 1]})",
        ]
    ]

    # Six curves in six colours; the best-epoch line in its accuracy's colour.
    curves = ["loss", "validation_loss", "validation_score"]
    colors = [to_hex(display.lines_[key].get_color())
              for display in [first, second] for key in curves]
    assert len(set(colors)) == 6
    for display in [first, second]:
        assert (to_hex(display.lines_["best_epoch"].get_color())
                == to_hex(display.lines_["validation_score"].get_color()))


def test_single_display_keeps_the_colours_it_had(early):
    display = LossCurveDisplay.from_estimator(early)
    for key, color in [("loss", "C0"), ("validation_loss", "C1"), ("validation_score", "C2")]:
        assert to_hex(display.lines_[key].get_color()) == to_hex(color)
    assert legend_texts(display)[0] == "training loss"  # alone on its axes: no prefix
    assert display.legend_.axes is display.ax2_


def test_second_display_without_validation(plain):
    fig, ax = plt.subplots()
    other = fit(BackpropMLPClassifier(max_iter=40, **{**SMALL, "learning_rate_init": 0.1}))
    first = LossCurveDisplay.from_estimator(plain, ax=ax)
    second = LossCurveDisplay.from_estimator(other, ax=ax)
    assert fig.axes == [ax]  # no twin axis
    assert legends(fig) == [second.legend_]
    assert legend_texts(second) == ["#1: training loss", "#2: training loss"]
    assert first.lines_["loss"].get_label() == "#1: training loss"
    assert (to_hex(first.lines_["loss"].get_color())
            != to_hex(second.lines_["loss"].get_color()))


def test_validation_after_a_display_without(plain, early):
    # The twin axis comes with the second display, and the legend moves onto it.
    fig, ax = plt.subplots()
    first = LossCurveDisplay.from_estimator(plain, ax=ax, name="plain")
    second = LossCurveDisplay.from_estimator(early, ax=ax, name="early")
    assert first.ax2_ is None and second.ax2_ is not None
    assert len(fig.axes) == 2
    assert legends(fig) == [second.legend_] and second.legend_.axes is second.ax2_
    assert legend_texts(second)[:3] == [
        "plain: training loss", "early: training loss", "early: validation loss",
    ]
    # and the other way round: a display without validation keeps the twin's legend
    third = LossCurveDisplay.from_estimator(plain, ax=ax)
    assert len(fig.axes) == 2 and legends(fig) == [third.legend_]
    assert legend_texts(third)[-1] == "#3: training loss"


def test_name_prefixes_the_labels(early):
    display = LossCurveDisplay.from_estimator(early, name="lr=0.01")
    assert [line.get_label() for line in display.lines_.values()] == legend_texts(display)
    assert legend_texts(display)[:3] == [
        "lr=0.01: training loss", "lr=0.01: validation loss", "lr=0.01: validation accuracy",
    ]
    assert display.name == "lr=0.01"
    other = LossCurveDisplay(early.loss_curve_, name="a").plot(name="b")
    assert legend_texts(other) == ["b: training loss"]


def test_a_label_given_is_not_prefixed(plain):
    fig, ax = plt.subplots()
    LossCurveDisplay.from_estimator(plain, ax=ax)
    second = LossCurveDisplay.from_estimator(plain, ax=ax, label="my run")
    assert legend_texts(second) == ["#1: training loss", "my run"]


def test_the_legend_lists_other_lines_on_the_axes(plain):
    fig, ax = plt.subplots()
    ax.axhline(0.5, label="target", color="k")
    display = LossCurveDisplay.from_estimator(plain, ax=ax)
    assert legend_texts(display) == ["training loss", "target"]


# ------------------------------------------------- which epoch was kept


def test_warm_start_that_switches_early_stopping_on():
    clf = fit(BackpropMLPClassifier(max_iter=20, warm_start=True, **SMALL))
    clf = fit(clf.set_params(early_stopping=True, validation_fraction=0.3, max_iter=200))
    n, n_validated = len(clf.loss_curve_), len(clf.validation_scores_)
    assert n == 20 + n_validated  # the test needs a curve that started later
    display = LossCurveDisplay.from_estimator(clf)
    validated = np.arange(21, n + 1)
    np.testing.assert_array_equal(display.lines_["validation_score"].get_xdata(), validated)
    np.testing.assert_array_equal(display.lines_["validation_loss"].get_xdata(), validated)
    np.testing.assert_array_equal(display.lines_["loss"].get_xdata(), np.arange(1, n + 1))
    best = display.best_epoch
    assert best == 21 + int(np.argmax(clf.validation_scores_))
    assert clf.validation_scores_[best - 21] == clf.best_validation_score_
    assert list(display.lines_["best_epoch"].get_xdata()) == [best, best]
    assert legend_texts(display)[-1].endswith(f"(epoch {best})")


def test_divergence_that_restored_the_starting_weights():
    with pytest.warns(ConvergenceWarning, match="The starting weights were restored"):
        clf = BackpropMLPClassifier(
            solver="sgd", early_stopping=True, **{**SMALL, "learning_rate_init": 5.0}
        ).fit(X, y)
    assert clf.diverged_
    n = len(clf.loss_curve_)
    assert len(clf.validation_scores_) == n - 1 > 0  # the diverged epoch is not validated
    display = LossCurveDisplay.from_estimator(clf)
    np.testing.assert_array_equal(display.lines_["validation_score"].get_xdata(),
                                  np.arange(1, n))
    # No epoch is claimed as kept: the dotted line marks the divergence instead.
    assert display.best_epoch is None and "best_epoch" not in display.lines_
    assert list(display.lines_["diverged"].get_xdata()) == [n, n]
    assert not any("best validation accuracy" in text for text in legend_texts(display))
    assert legend_texts(display)[-1] == f"diverged (epoch {n}): earlier weights restored"


def test_divergence_in_the_first_epoch():
    # The loss is NaN in epoch 1, which nothing validated.
    with pytest.warns(ConvergenceWarning, match="Training diverged in epoch 1"):
        clf = BackpropMLPClassifier(
            solver="sgd", batch_size=10, early_stopping=True,
            **{**SMALL, "learning_rate_init": 1e300},
        ).fit(X, y)
    assert clf.validation_scores_ == []
    display = LossCurveDisplay.from_estimator(clf)
    assert display.ax2_ is None and set(display.lines_) == {"loss", "diverged"}
