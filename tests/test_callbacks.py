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
