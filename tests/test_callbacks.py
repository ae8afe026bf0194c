"""scikit-learn's callback API (scikit-learn >= 1.9): epochs as leaf subtasks."""

import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from skbackprop import BackpropMLPClassifier
from helpers import quiet_fit

callback = pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no callbacks")


class Recorder:
    """A FitCallback that records every hook; optionally asks to stop after an epoch."""

    def __init__(self, stop_after=None):
        self.events = []
        self.stop_after = stop_after

    def setup(self, estimator, context):
        self.events.append(("setup", context.task_name, context.max_subtasks))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        self.events.append(("begin", context.task_name, context.task_id))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.events.append(("end", context.task_name, context.task_id))
        if context.task_name in ("epoch", "iteration"):
            assert context.max_subtasks == 0  # a leaf
            assert context.parent.task_name in ("fit", "partial_fit")
            self.last_fitted = fitted_estimator
            self.last_X, self.last_y, self.last_metadata = X, y, metadata
        return self.stop_after is not None and context.task_id == self.stop_after

    def teardown(self, estimator, context):
        self.events.append(("teardown", context.task_name, None))

    def epochs(self):
        return [e for e in self.events if e[0] == "end" and e[1] in ("epoch", "iteration")]


def test_every_epoch_is_a_leaf_subtask_of_the_fit_task(iris):
    X, y = iris
    recorder = Recorder()
    clf = BackpropMLPClassifier((4,), max_iter=5, random_state=0).set_callbacks(recorder)
    quiet_fit(clf, X, y)
    assert recorder.events[0] == ("setup", "fit", 5)
    assert recorder.events[1] == ("begin", "fit", 0)
    epoch_events = recorder.events[2:-2]
    assert epoch_events == [(kind, "epoch", i) for i in range(5) for kind in ("begin", "end")]
    assert recorder.events[-2:] == [("end", "fit", 0), ("teardown", "fit", None)]


def test_a_callback_returning_true_stops_training_after_that_epoch(iris):
    X, y = iris
    recorder = Recorder(stop_after=2)
    clf = BackpropMLPClassifier((4,), max_iter=50, random_state=0).set_callbacks(recorder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a requested stop is not a failure
        clf.fit(X, y)
    assert clf.n_iter_ == 3 == len(clf.loss_curve_)
    assert len(recorder.epochs()) == 3
    unstopped = quiet_fit(BackpropMLPClassifier((4,), max_iter=3, random_state=0), X, y)
    for a, b in zip(clf.coefs_, unstopped.coefs_):
        assert_allclose(a, b)


def test_the_fitted_estimator_of_an_epoch_predicts_like_a_model_stopped_there(iris):
    X, y = iris
    recorder = Recorder(stop_after=3)
    w = np.linspace(0.5, 1.5, len(X))
    clf = BackpropMLPClassifier((4,), max_iter=50, random_state=0).set_callbacks(recorder)
    clf.fit(X, y, sample_weight=w)
    snapshot = recorder.last_fitted
    assert snapshot is not clf
    assert_allclose(snapshot.predict_proba(X), clf.predict_proba(X))
    assert recorder.last_X is not None and len(recorder.last_y) == len(X)
    assert_allclose(recorder.last_metadata["sample_weight"], w)


def test_snapshots_do_not_change_as_training_goes_on(iris):
    X, y = iris
    snapshots = []

    class Keep(Recorder):
        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kwargs):
            if context.task_name == "epoch":
                snapshots.append(fitted_estimator)

    clf = BackpropMLPClassifier((4,), max_iter=4, random_state=0).set_callbacks(Keep())
    quiet_fit(clf, X, y)
    two_epochs = quiet_fit(BackpropMLPClassifier((4,), max_iter=2, random_state=0), X, y)
    assert_allclose(snapshots[1].predict_proba(X), two_epochs.predict_proba(X))


def test_lbfgs_iterations_are_subtasks(iris):
    X, y = iris
    recorder = Recorder()
    clf = BackpropMLPClassifier((4,), solver="lbfgs", max_iter=15, random_state=0)
    quiet_fit(clf.set_callbacks(recorder), X, y)
    assert recorder.events[0] == ("setup", "fit", 15)
    assert len(recorder.epochs()) == clf.n_iter_ == 15
    assert {e[1] for e in recorder.epochs()} == {"iteration"}


@pytest.mark.parametrize("interrupt_at", [None, 6])
def test_an_lbfgs_iteration_begins_before_its_evaluations_and_every_begin_ends(
        iris, monkeypatch, interrupt_at):
    """An iteration's subtask is open while L-BFGS evaluates the objective for
    it (as scikit-learn's own L-BFGS bridge does), not opened and closed after
    the fact; one cut short (here by Ctrl-C in its evaluation) ends as an
    empty task."""
    X, y = iris
    evaluations = []
    make_objective = BackpropMLPClassifier._objective

    def counting_objective(self, *args):
        objective = make_objective(self, *args)

        def counted(*a):
            evaluations.append(1)
            if len(evaluations) == interrupt_at:
                raise KeyboardInterrupt
            return objective(*a)

        return counted

    monkeypatch.setattr(BackpropMLPClassifier, "_objective", counting_objective)

    class Count(Recorder):
        def on_fit_task_begin(self, estimator, context, **kwargs):
            self.events.append(("begin", context.task_name, len(evaluations)))

        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kwargs):
            self.events.append(("end", context.task_name, len(evaluations), fitted_estimator))

    recorder = Count()
    clf = BackpropMLPClassifier((4,), solver="lbfgs", max_iter=15, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter, or the interrupt's UserWarning
        clf.set_callbacks(recorder).fit(X, y)
    iterations = [e for e in recorder.events if e[1] == "iteration"]
    begins, ends = iterations[0::2], iterations[1::2]
    assert [e[0] for e in begins] == ["begin"] * len(begins)
    assert [e[0] for e in ends] == ["end"] * len(begins)  # one end per begin, in turn
    assert all(end[2] > begin[2] for begin, end in zip(begins, ends))  # evaluated in between
    completed = [end for end in ends if end[3] is not None]
    assert len(completed) == clf.n_iter_
    if interrupt_at is None:
        assert len(ends) == clf.n_iter_ == 15
    else:  # the interrupted iteration ended, empty
        assert len(ends) == clf.n_iter_ + 1 and ends[-1][3] is None


def test_lbfgs_stops_on_request(iris):
    X, y = iris
    clf = BackpropMLPClassifier((4,), solver="lbfgs", max_iter=100, random_state=0)
    clf.set_callbacks(Recorder(stop_after=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ == 5


def test_partial_fit_reports_its_one_epoch(iris):
    X, y = iris
    recorder = Recorder()
    clf = BackpropMLPClassifier((4,), random_state=0).set_callbacks(recorder)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    assert recorder.events[0] == ("setup", "partial_fit", 1)
    assert len(recorder.epochs()) == 1


def test_scoring_monitor_scores_every_epoch(iris):
    X, y = iris
    monitor = callback.ScoringMonitor(scoring="accuracy")
    clf = BackpropMLPClassifier((4,), max_iter=6, random_state=0).set_callbacks(monitor)
    quiet_fit(clf, X, y)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the log is filled by a listener thread
        rows = monitor.get_logs().data
        if len(rows) >= 7:
            break
        time.sleep(0.05)
    epochs = [row for row in rows if row["task_name"] == "epoch"]
    assert len(epochs) == 6
    assert all(0 <= row["accuracy"] <= 1 for row in epochs)
    assert epochs[-1]["accuracy"] == pytest.approx(clf.score(X, y))


def test_progress_bar_runs_and_the_model_is_unchanged(iris, capsys):
    pytest.importorskip("rich")
    X, y = iris
    with_bar = BackpropMLPClassifier((4,), max_iter=5, random_state=0)
    quiet_fit(with_bar.set_callbacks(callback.ProgressBar()), X, y)
    without = quiet_fit(BackpropMLPClassifier((4,), max_iter=5, random_state=0), X, y)
    for a, b in zip(with_bar.coefs_, without.coefs_):
        assert_allclose(a, b)
    assert "BackpropMLPClassifier" in capsys.readouterr().out


def test_set_callbacks_rejects_non_callbacks():
    with pytest.raises(TypeError, match="FitCallback"):
        BackpropMLPClassifier().set_callbacks(object())


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_an_epoch_cut_short_by_ctrl_c_ends_as_an_empty_task(iris, monkeypatch, solver):
    """As an L-BFGS iteration does: every epoch that begins ends, the one
    that Ctrl-C cut short without a fitted_estimator, before the fit ends."""
    import skbackprop._training as training

    X, y = iris
    run_epoch, calls = training.run_epoch, []

    def interrupted_in_the_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", interrupted_in_the_third_epoch)

    class Ends(Recorder):
        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kwargs):
            self.events.append(("end", context.task_name, context.task_id,
                                fitted_estimator is not None))

    recorder = Ends()
    clf = BackpropMLPClassifier((4,), solver=solver, max_iter=10, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.set_callbacks(recorder).fit(X, y)
    assert clf.n_iter_ == 2
    ends = [e for e in recorder.events if e[0] == "end"]
    assert ends == [("end", "epoch", 0, True), ("end", "epoch", 1, True),
                    ("end", "epoch", 2, False), ("end", "fit", 0, True)]
    begins = [e for e in recorder.events if e[0] == "begin" and e[1] == "epoch"]
    assert len(begins) == 3


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_scoring_callback_leaves_a_diverging_fit_to_the_divergence_guard(solver):
    """An epoch on the way to a divergence can leave finite weights whose
    outputs overflow: its subtask ends without a fitted_estimator, so that
    ScoringMonitor skips it instead of raising out of the fit, and the guard
    restores the weights and warns as it does without callbacks."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = X * 1000  # unscaled, and a learning rate far too large: the weights explode

    def fit(clf):
        with pytest.warns(ConvergenceWarning, match="Training diverged"):
            return clf.fit(X, y)

    params = dict(hidden_layer_sizes=(50,), solver=solver, learning_rate_init=1e200,
                  max_iter=30, random_state=0)
    plain = fit(BackpropMLPClassifier(**params))
    snapshots = []

    class Snapshots(Recorder):
        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kwargs):
            if context.task_name == "epoch":
                snapshots.append(fitted_estimator)

    monitor = callback.ScoringMonitor(scoring="accuracy")
    monitored = fit(BackpropMLPClassifier(**params).set_callbacks(monitor, Snapshots()))
    assert monitored.diverged_ and monitored.n_iter_ == plain.n_iter_
    for a, b in zip(monitored.coefs_ + monitored.intercepts_, plain.coefs_ + plain.intercepts_):
        assert_allclose(a, b)
    assert len(snapshots) == monitored.n_iter_ and snapshots[0] is None
    assert np.isfinite(monitored.predict_proba(X)).all()


def test_a_fitted_estimator_is_given_whenever_its_outputs_are_finite(iris, monkeypatch):
    """The check behind those empty ends: a bound settles ordinary weights,
    the forward pass those near overflow, in float64 and in float32."""
    import skbackprop._estimator as estimator_module
    from skbackprop._estimator import _finite_outputs
    from skbackprop._fast import predict_logits

    forward_passes = []

    def counted(*args):
        forward_passes.append(1)
        return predict_logits(*args)

    monkeypatch.setattr(estimator_module, "fast_logits", counted)

    for dtype in (np.float64, np.float32):
        X, y = iris[0].astype(dtype), iris[1]
        largest = float(np.abs(X).max())
        for activation in ("relu", "tanh", "logistic", "identity"):
            clf = quiet_fit(BackpropMLPClassifier((6, 5), activation=activation, max_iter=5,
                                                  random_state=0), X, y)
            coefs, intercepts = clf.coefs_, clf.intercepts_

            def finite(coefs):
                with np.errstate(over="ignore", invalid="ignore"):
                    return bool(np.isfinite(predict_logits(X, coefs, intercepts,
                                                           activation)).all())

            assert _finite_outputs(X, coefs, intercepts, activation, largest)
            assert not forward_passes  # the bound sufficed
            # a first layer whose products overflow: non-finite outputs through
            # "relu" or "identity"; through "tanh" or the logistic, as it happens
            # (inf saturates them, inf - inf is nan)
            top = np.finfo(dtype).max
            exploded = [coefs[0] / np.abs(coefs[0]).max() * dtype(top / 2)] + coefs[1:]
            assert activation in ("tanh", "logistic") or not finite(exploded)
            checked = _finite_outputs(X, exploded, intercepts, activation, largest)
            assert checked == finite(exploded)
            # past the bound's limit, yet finite: the forward pass says so
            large = coefs[:-1] + [coefs[-1] / np.abs(coefs[-1]).max() * dtype(top / 50)]
            assert finite(large)
            forward_passes.clear()
            assert _finite_outputs(X, large, intercepts, activation, largest)
            assert forward_passes  # the bound did not suffice
            forward_passes.clear()
            nan = [coefs[0] * dtype(np.nan)] + coefs[1:]
            assert not _finite_outputs(X, nan, intercepts, activation, largest)
