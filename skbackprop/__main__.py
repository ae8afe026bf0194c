"""Command line of skbackprop: ``python -m skbackprop`` runs the demo.

The demo tunes ``learning_rate_init`` of a :class:`BackpropMLPClassifier` on
scikit-learn's handwritten digits with a cross-validated grid search, then
compares the best pipeline with scikit-learn's own ``MLPClassifier`` on a
held-out test set. Every step of it is a small function taking its sizes as
arguments, so that the tests can run a miniature of the same code.
"""

import argparse
import sys
import threading
import time
import warnings
from typing import NamedTuple

from joblib import parallel_config
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # installed with scikit-learn

from ._estimator import BackpropMLPClassifier

PROG = "python -m skbackprop"

#: The grid of the demo's search.
LEARNING_RATES = (1e-3, 3e-3, 1e-2)

#: Settings shared by both classifiers; ``learning_rate_init`` comes from the search.
CLASSIFIER_PARAMS = {"random_state": 0}

INDENT = "      "  # lines under a numbered stage start here


class ModelScore(NamedTuple):
    """One classifier's result on the held-out test set."""

    name: str
    accuracy: float
    fit_time: float  #: seconds
    n_iter: int  #: epochs the fit ran


class DemoResult(NamedTuple):
    """What :func:`run_demo` computed, besides what it printed."""

    search: GridSearchCV
    scores: list  #: of ModelScore: ours first, then scikit-learn's
    agreement: float  #: fraction of test samples both classifiers label alike


# ------------------------------------------------------------------ output


def say(out, text=""):
    """Print one line and flush it at once, so progress shows while we work."""
    print(text, file=out, flush=True)


def format_table(headers, rows):
    """Lines of a plain-text table: text columns left-aligned, numbers right.

    ``rows`` hold strings; a column is numeric when every entry of it parses
    as a number once a trailing unit (" s") is dropped.
    """
    columns = list(zip(headers, *rows))
    widths = [max(len(cell) for cell in column) for column in columns]
    numeric = [all(_is_number(cell) for cell in column[1:]) for column in columns]

    def line(cells):
        padded = (
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric)
        )
        return "  ".join(padded).rstrip()

    return [line(headers), line(["-" * width for width in widths])] + [line(row) for row in rows]


def _is_number(text):
    try:
        float(text.removesuffix(" s"))
    except ValueError:
        return False
    return True


# -------------------------------------------------------------------- data


def load_data(n_samples=None, test_size=0.25, random_state=0):
    """The digits, split into stratified train and test sets.

    ``n_samples`` keeps only the first rows (the digits cycle through the
    classes, so a prefix stays balanced); None keeps all 1797.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
    """
    X, y = load_digits(return_X_y=True)
    X, y = X[:n_samples], y[:n_samples]
    return train_test_split(X, y, test_size=test_size, stratify=y, random_state=random_state)


def make_model(classifier):
    """Standardise the pixels, then classify."""
    return Pipeline([("scale", StandardScaler()), ("mlp", classifier)])


# ------------------------------------------------------------------ search


class ProgressScorer:
    """Accuracy scorer for the search that also prints one line per fit.

    The search calls its scorer once per (candidate, fold), right after the
    fit, in the thread that ran it; a lock keeps the count and the lines
    whole when two fits finish together.
    """

    def __init__(self, n_fits, out, rate_width=8):
        self.n_fits = n_fits
        self.out = out
        self.rate_width = rate_width
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, model, X, y):
        accuracy = model.score(X, y)
        clf = model[-1]
        stopped = "" if clf.n_iter_ < clf.max_iter else "  (stopped at max_iter)"
        with self._lock:
            self.done += 1
            say(
                self.out,
                f"{INDENT}fit {self.done:>{len(str(self.n_fits))}}/{self.n_fits}"
                f"  learning_rate_init={clf.learning_rate_init:<{self.rate_width}g}"
                f"  epochs {clf.n_iter_:>3}  fold accuracy {accuracy:.4f}{stopped}",
            )
        return accuracy


def search_learning_rate(X, y, learning_rates, cv, n_jobs, classifier_params, out):
    """Fit a GridSearchCV over ``learning_rate_init``, printing each fit.

    The fits run in ``n_jobs`` threads rather than processes, so that every
    fit's line is printed by this process, in order, as soon as it is known.
    NumPy's array arithmetic releases the GIL, so the threads overlap (for
    this small job they beat worker processes, which take a second to start),
    and one BLAS thread per fit keeps ``n_jobs`` fits from fighting over the
    cores.
    """
    n_fits = len(learning_rates) * cv
    rate_width = max(len(f"{lr:g}") for lr in learning_rates)
    search = GridSearchCV(
        make_model(BackpropMLPClassifier(**classifier_params)),
        {"mlp__learning_rate_init": list(learning_rates)},
        scoring=ProgressScorer(n_fits, out, rate_width),
        cv=cv,
        n_jobs=n_jobs,
    )
    with parallel_config(backend="threading"), threadpool_limits(limits=1):
        return search.fit(X, y)


def format_search_results(search):
    """Table of the search: one row per learning rate, in grid order."""
    results = search.cv_results_
    rows = [
        [
            f"{params['mlp__learning_rate_init']:g}",
            f"{mean:.4f}",
            f"{std:.4f}",
            f"{rank}",
            f"{fit_time:.2f} s",
        ]
        for params, mean, std, rank, fit_time in zip(
            results["params"],
            results["mean_test_score"],
            results["std_test_score"],
            results["rank_test_score"],
            results["mean_fit_time"],
        )
    ]
    headers = ["learning_rate_init", "mean CV accuracy", "std", "rank", "mean fit time"]
    return format_table(headers, rows)


# ---------------------------------------------------------------- test set


def compare_on_test_set(search, X_train, y_train, X_test, y_test, classifier_params):
    """Score the search's best pipeline and scikit-learn's MLPClassifier
    (same settings and learning rate, same scaling) on the test set.

    Both fit on the whole training set, one after the other, with one BLAS
    thread each: the search's own refit for ours, a timed fit for theirs.

    Returns
    -------
    scores : list of ModelScore
        Ours, then scikit-learn's.
    agreement : float
        Fraction of test samples on which the two predict the same class.
    """
    ours = search.best_estimator_
    theirs = make_model(MLPClassifier(**classifier_params, **_best_learning_rate(search)))
    with threadpool_limits(limits=1):
        start = time.perf_counter()
        theirs.fit(X_train, y_train)
        their_fit_time = time.perf_counter() - start
    scores = [
        ModelScore("skbackprop BackpropMLPClassifier", ours.score(X_test, y_test),
                   search.refit_time_, ours[-1].n_iter_),
        ModelScore("sklearn MLPClassifier", theirs.score(X_test, y_test),
                   their_fit_time, theirs[-1].n_iter_),
    ]
    agreement = float((ours.predict(X_test) == theirs.predict(X_test)).mean())
    return scores, agreement


def _best_learning_rate(search):
    return {"learning_rate_init": search.best_params_["mlp__learning_rate_init"]}


def format_scores(scores):
    """Table of the test-set comparison."""
    rows = [
        [score.name, f"{score.accuracy:.4f}", f"{score.n_iter}", f"{score.fit_time:.2f} s"]
        for score in scores
    ]
    return format_table(["model", "test accuracy", "epochs", "fit time"], rows)


# -------------------------------------------------------------------- demo


def run_demo(
    *,
    learning_rates=LEARNING_RATES,
    cv=5,
    n_jobs=2,
    n_samples=None,
    classifier_params=None,
    out=None,
):
    """Tune ``learning_rate_init`` on the digits and compare with scikit-learn.

    Parameters
    ----------
    learning_rates : sequence of float
        The grid of ``learning_rate_init``.
    cv : int
        Number of stratified cross-validation folds.
    n_jobs : int
        Number of fits run at once during the search.
    n_samples : int or None
        Use only the first ``n_samples`` digits (None: all 1797).
    classifier_params : dict or None
        Settings of both classifiers, added to ``random_state=0``.
    out : text stream or None
        Where to print; None means ``sys.stdout``.

    Returns
    -------
    DemoResult
    """
    out = sys.stdout if out is None else out
    params = {**CLASSIFIER_PARAMS, **(classifier_params or {})}
    start = time.perf_counter()
    say(out, "skbackprop demo: hand-written backpropagation on scikit-learn's digits")
    say(out)

    X_train, X_test, y_train, y_test = load_data(n_samples)
    n_classes = len(set(y_train))
    say(out, f"[1/4] Loaded {len(X_train) + len(X_test)} digits, 8x8 pixels, {n_classes} classes")
    say(out, f"{INDENT}stratified split (random_state=0): "
             f"{len(X_train)} to train, {len(X_test)} to test")

    grid = ", ".join(f"{lr:g}" for lr in learning_rates)
    say(out, f"[2/4] Grid search of learning_rate_init over [{grid}]")
    say(out, f"{INDENT}{cv}-fold CV, {len(learning_rates) * cv} fits, {n_jobs} at a time")
    # Fits that stop at max_iter are expected here, and their fit lines say so;
    # every other warning still shows.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        search = search_learning_rate(X_train, y_train, learning_rates, cv, n_jobs, params, out)
        best_lr = _best_learning_rate(search)["learning_rate_init"]
        say(out, f"{INDENT}best: learning_rate_init={best_lr:g} "
                 f"(mean CV accuracy {search.best_score_:.4f}), refit on the training set")

        say(out, "[3/4] Search results")
        for line in format_search_results(search):
            say(out, INDENT + line)

        say(out, f"[4/4] Held-out test set ({len(X_test)} digits), learning_rate_init={best_lr:g}")
        scores, agreement = compare_on_test_set(search, X_train, y_train, X_test, y_test, params)
    for line in format_scores(scores):
        say(out, INDENT + line)
    say(out, f"{INDENT}the two predict the same class for "
             f"{round(agreement * len(X_test))} of {len(X_test)} test digits")
    say(out)
    say(out, f"Done in {time.perf_counter() - start:.1f} s.")
    return DemoResult(search, scores, agreement)


# -------------------------------------------------------------------- main


def build_parser():
    return argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Run the demo: tune learning_rate_init of BackpropMLPClassifier on "
            "scikit-learn's digits, then compare it with sklearn's MLPClassifier."
        ),
    )


def main(argv=None):
    """Entry point of ``python -m skbackprop``; returns the exit code."""
    build_parser().parse_args(argv)
    try:
        run_demo()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
