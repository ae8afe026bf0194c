"""Command line of skbackprop.

``python -m skbackprop`` (or ``python -m skbackprop demo``) runs the demo:
it tunes ``learning_rate_init`` of a :class:`BackpropMLPClassifier` on
scikit-learn's handwritten digits with a cross-validated grid search, then
compares the best pipeline with scikit-learn's own ``MLPClassifier`` on a
held-out test set. Every step of it is a small function taking its sizes as
arguments, so that the tests can run a miniature of the same code.

Two commands work on your own data, a CSV file with a header line:

``python -m skbackprop fit DATA.csv --target COLUMN --out MODEL.joblib``
    cross-validates a standardising pipeline (or grid-searches it with
    ``--grid``), fits it on all rows and saves it with joblib;
``python -m skbackprop predict MODEL.joblib DATA.csv``
    prints the predicted label of every row, as CSV.

Both read CSV files with pandas, imported only by them. Bad input ends the
command with a one-line message on stderr and exit status 1 (2 for a bad
command line, as argparse does). So does a ``fit`` whose final fit, on all
rows, diverges: it saves no model. Cross-validation fits that diverge are
marked "(diverged)" and counted in a warning line; of combinations of a
search that tie, the one whose fits diverged least often is refit. When the
reader of stdout goes away (``... | head``), ``predict`` stops quietly with
exit status 1, its output being incomplete, while ``fit`` goes on without
its progress lines and saves the model.
"""

import argparse
import contextlib
import csv
import errno
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import joblib
import numpy as np
from joblib import parallel_config
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_validate, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted
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


def _discard_output(stream):
    """Point the file descriptor of ``stream`` at os.devnull, as Python's
    docs advise after a BrokenPipeError: the text still buffered in it then
    goes nowhere when the interpreter flushes it on exit, instead of failing
    again. Streams without a file descriptor are left alone."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _TolerantOutput:
    """A text stream (of progress lines, say) whose reader may go away
    (``fit ... | head -1``): once writing to ``stream`` fails because the
    reader closed it, the stream is pointed at os.devnull and everything
    written later is dropped, so that the work goes on without its
    progress lines. Anything else it is asked goes to ``stream``."""

    def __init__(self, stream):
        self.stream = stream
        self.reader_gone = stream is None  # no stream at all (pythonw): drop everything

    def write(self, text):
        if not self.reader_gone:
            try:
                self.stream.write(text)
            except OSError as exc:
                self._gone(exc)
        return len(text)

    def flush(self):
        if not self.reader_gone:
            try:
                self.stream.flush()
            except OSError as exc:
                self._gone(exc)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def _gone(self, exc):
        # Windows often reports a closed pipe as EINVAL rather than EPIPE
        if not (isinstance(exc, BrokenPipeError) or exc.errno == errno.EINVAL):
            raise exc
        self.reader_gone = True
        _discard_output(self.stream)

    def __getattr__(self, name):  # fileno, isatty, encoding, ... (not .buffer's writes)
        if name == "stream":  # not set yet (as in copy.copy): no endless recursion
            raise AttributeError(name)
        return getattr(self.stream, name)


@contextlib.contextmanager
def _output_whose_reader_may_go():
    """Within the block, ``sys.stdout`` and ``sys.stderr`` are :class:`_TolerantOutput`
    streams: every writer (progress lines, warnings, an estimator's
    ``verbose`` lines, from any thread) may lose its reader without
    stopping the work."""
    saved = sys.stdout, sys.stderr
    tolerant = sys.stdout, sys.stderr = _TolerantOutput(sys.stdout), _TolerantOutput(sys.stderr)
    try:
        yield
    finally:
        try:
            for stream in tolerant:  # argparse writes without flushing:
                stream.flush()  # flush now, while a closed pipe is tolerated
        finally:  # (another error, a full disk say, still raises)
            sys.stdout, sys.stderr = saved


def _tell(text):
    """Print one line on stderr, which may have lost its reader (``2>&1 |
    head``): the exit status still tells what happened."""
    print(text, file=_TolerantOutput(sys.stderr), flush=True)


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
    """Accuracy scorer of a cross-validation that also prints one line per fit:
    the fit's values of the searched parameters, its epochs and its accuracy
    on the held-out fold.

    ``grid`` maps the searched parameters to their values (empty when there
    is no search), which sets the width of their columns. The search calls
    its scorer once per (candidate, fold), right after the fit, in the thread
    that ran it; a lock keeps the count and the lines whole when two fits
    finish together.

    The line of a fit that the divergence guard ended (``diverged_``) says
    so, and ``diverged`` counts those fits by the values of the searched
    parameters (a tuple of the values themselves, in the order of ``grid``:
    two values that print alike under ``%g`` are still counted apart).
    :meth:`text` prints a value as the lines and tables show it.
    """

    def __init__(self, n_fits, grid, out):
        self.n_fits = n_fits
        self.out = out
        self.texts = {name: _value_texts(values) for name, values in grid.items()}
        self.widths = {
            name: max(len(text) for text in texts.values()) for name, texts in self.texts.items()
        }
        self.done = 0
        self.diverged = {}
        self._lock = threading.Lock()

    def __call__(self, model, X, y):
        accuracy = model.score(X, y)
        clf = model[-1]
        diverged = clf.diverged_
        values = tuple(getattr(clf, name) for name in self.widths)
        settings = "".join(
            f"  {name}={self.text(name, value):<{width}}"
            for (name, width), value in zip(self.widths.items(), values)
        )
        if diverged:
            note = "  (diverged)"
        elif clf.n_iter_ >= clf.max_iter:
            note = "  (stopped at max_iter)"
        else:
            note = ""
        with self._lock:
            self.done += 1
            if diverged:
                self.diverged[values] = self.diverged.get(values, 0) + 1
            say(
                self.out,
                f"{INDENT}fit {self.done:>{len(str(self.n_fits))}}/{self.n_fits}{settings}"
                f"  epochs {clf.n_iter_:>3}  fold accuracy {accuracy:.4f}{note}",
            )
        return accuracy

    def text(self, name, value):
        """``value`` of the searched parameter ``name`` as the lines and tables show it."""
        try:
            return self.texts[name][value]
        except (KeyError, TypeError):  # not a value of the grid (or unhashable)
            return _format_value(value)


def _format_value(value):
    """A parameter value as the tables and progress lines show it."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value_texts(values):
    """``{value: text}`` for the values of one searched parameter: each as
    :func:`_format_value` prints it, unless two of them would print alike
    (1e6 and 1000000.0000001 are both "1e+06" under ``%g``); then every float
    of them is printed exactly, with ``repr``, so that the rows of the table
    and the warnings can be told apart."""
    values = list(dict.fromkeys(values))  # in order, once each
    texts = [_format_value(value) for value in values]
    if len(set(texts)) < len(texts):
        texts = [repr(value) if isinstance(value, float) else text
                 for value, text in zip(values, texts)]
    return dict(zip(values, texts))


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
    search = GridSearchCV(
        make_model(BackpropMLPClassifier(**classifier_params)),
        {"mlp__learning_rate_init": list(learning_rates)},
        scoring=ProgressScorer(n_fits, {"learning_rate_init": learning_rates}, out),
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
    # Fits that stop at max_iter (or diverge) may happen in a search, and their
    # fit lines say so; every other warning still shows.
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


# ------------------------------------------------------ fit and predict: errors


class CommandError(Exception):
    """A problem with the user's files or data: ``main`` prints its message
    on one line of stderr and returns ``EXIT_ERROR``."""


EXIT_ERROR = 1  #: unreadable, missing or unsuitable data or model; a final fit that diverged
EXIT_USAGE = 2  #: a bad command line (argparse exits with it)
EXIT_INTERRUPTED = 130  #: Ctrl-C, as a shell reports SIGINT


def _one_line(exc):
    """An exception's message with its whitespace (newlines too) collapsed."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def _warnings_as_lines(err):
    """Show warnings as one ``warning: ...`` line each on ``err``."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {_one_line(message)}", file=err, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


# ----------------------------------------------------- fit and predict: data


def _import_pandas():
    try:
        import pandas
    except ImportError:
        raise CommandError(
            "the fit and predict commands read CSV files with pandas, which is not "
            "installed; install it with: pip install pandas"
        ) from None
    return pandas


def _existing_file(path, kind):
    """``path`` as a Path, checked to name an existing file (``kind`` says
    what it should be, for the message)."""
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    if path.is_dir():
        raise CommandError(f"{path} is a directory, not {kind}")
    return path


def read_csv(path):
    """The rows of the CSV file ``path`` as a DataFrame (at least one row)."""
    pd = _import_pandas()
    path = _existing_file(path, "a CSV file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise CommandError(
            f"{path} is empty; expected a header line of column names, then one row per sample"
        ) from None
    except (ValueError, OSError) as exc:  # pandas' ParserError and UnicodeDecodeError among them
        raise CommandError(f"cannot read {path} as CSV: {_one_line(exc)}") from None
    if len(frame) == 0:
        raise CommandError(f"{path} has a header line but no data rows")
    return frame


def _label(value):
    """``repr`` of a label, without numpy's type around it."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _quoted(names):
    return ", ".join(repr(str(name)) for name in names)


def numeric_features(frame, columns, path):
    """``frame[columns]``, checked to hold numbers only, none of them missing
    or infinite; the errors name the offending columns.

    A column that pandas read as text but whose every value is a number (an
    integer too wide for 64 bits, such as 99999999999999999999) is taken as
    the floats it parses to, as pandas takes 1e20.
    """
    pd = _import_pandas()
    X = frame[columns].copy()
    non_numeric = []
    for name in columns:
        column = X[name]
        if not pd.api.types.is_numeric_dtype(column):
            parsed = _parse_numbers(pd, column)
            unparsed = parsed.isna() & column.notna()
            if unparsed.any():
                example = column[unparsed].iloc[0]
                non_numeric.append(f"{str(name)!r} (e.g. {str(example)!r})")
            else:
                X[name] = parsed.astype(np.float64)
    if non_numeric:
        raise CommandError(
            f"{path}: feature columns must be numeric, but {len(non_numeric)} "
            f"{'is' if len(non_numeric) == 1 else 'are'} not: {', '.join(non_numeric)}"
        )
    missing = [name for name in columns if X[name].isna().any()]
    if missing:
        raise CommandError(f"{path}: missing values in feature columns {_quoted(missing)}")
    infinite = [name for name in columns if not np.isfinite(X[name].to_numpy(float)).all()]
    if infinite:
        raise CommandError(
            f"{path}: infinite values (or numbers too large for 64-bit floats) in feature "
            f"columns {_quoted(infinite)}"
        )
    return X


def _parse_numbers(pd, column):
    """The values of a text column as numbers, NaN where they are not."""
    try:
        return pd.to_numeric(column, errors="coerce")
    except OverflowError:  # pandas fails on an integer beyond the floats (over 308 digits)
        pass

    def parse(value):
        try:
            return float(pd.to_numeric(value))
        except OverflowError:  # such an integer: as a float, infinite
            return -np.inf if str(value).lstrip().startswith("-") else np.inf
        except (ValueError, TypeError):
            return np.nan

    return column.map(parse).astype(np.float64)


def training_data(frame, target, path):
    """Features and labels of the ``fit`` command: ``target`` holds the
    labels, every other column is a numeric feature."""
    if target not in frame.columns:
        raise CommandError(
            f"{path} has no column {target!r} (--target); its columns are {_quoted(frame.columns)}"
        )
    y = frame[target]
    if y.isna().any():
        raise CommandError(
            f"{path}: the target column {target!r} has {int(y.isna().sum())} missing values"
        )
    classes = y.unique()
    if len(classes) < 2:
        raise CommandError(
            f"{path}: the target column {target!r} holds a single class ({_label(classes[0])}); "
            "a classifier needs at least two"
        )
    _check_numeric_labels(y, target, path)
    if type_of_target(y.to_numpy()) == "continuous":
        example = next(value for value in classes if not float(value).is_integer())
        raise CommandError(
            f"{path}: the target column {target!r} holds continuous values "
            f"(e.g. {_label(example)}), not class labels"
        )
    features = [name for name in frame.columns if name != target]
    if not features:
        raise CommandError(f"{path} has no feature columns besides the target {target!r}")
    X = numeric_features(frame, features, path)
    _check_scalable(X, path)
    return X, y.to_numpy()


#: Integer-valued floats from -2**63 up to (not including) 2**63 are class
#: labels; scikit-learn casts them to int64 to tell them from continuous values.
_INT64_BOUND = 2.0**63


def _check_numeric_labels(y, target, path):
    """Fail unless the float values of the target column ``y`` can be class
    labels: none infinite, and integers within int64 if integers."""
    if y.dtype.kind != "f":
        return
    values = y.to_numpy()
    infinite = values[np.isinf(values)]
    if len(infinite):
        raise CommandError(
            f"{path}: the target column {target!r} holds infinite values "
            f"(e.g. {_label(infinite[0])}), not class labels"
        )
    huge = values[(np.abs(values) >= _INT64_BOUND) & (values != -_INT64_BOUND)]
    if len(huge):
        raise CommandError(
            f"{path}: the target column {target!r} holds numbers too large to be class labels "
            f"(e.g. {_label(huge[0])}); numeric labels must be integers from -2**63 to "
            "2**63 - 1"
        )


def _check_scalable(X, path):
    """Fail if a feature column holds values so large that standardising it
    would overflow, before any fit meets the NaN that the overflow makes.

    StandardScaler squares the deviations of ``n`` values from their mean
    and sums them, and tells constant columns by squaring ``n`` times the
    mean times the float epsilon. A column passes when every value ``x``
    has ``|x| <= sqrt(max / n) / 4`` (``max`` the largest float): then the
    sum of squared deviations stays below ``max / 4``, and the folds of a
    cross-validation, having fewer rows, pass too.
    """
    values = X.to_numpy(np.float64)
    limit = np.sqrt(np.finfo(np.float64).max / len(values)) / 4
    too_large = np.abs(values).max(axis=0) > limit
    if too_large.any():
        names = [name for name, large in zip(X.columns, too_large) if large]
        column = values[:, np.flatnonzero(too_large)[0]]
        example = column[np.argmax(np.abs(column))]
        raise CommandError(
            f"{path}: feature column{'s' if len(names) > 1 else ''} {_quoted(names)} "
            f"{'hold' if len(names) > 1 else 'holds'} values too large to standardise without "
            f"overflow (e.g. {_label(example)}; the limit for {len(values)} rows is "
            f"{limit:.2g} in magnitude); divide {'them' if len(names) > 1 else 'it'} by a "
            "power of ten first"
        )


# -------------------------------------------------- fit: command-line values


def _integer_at_least(minimum):
    """An argparse ``type``: an integer that is at least ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_hidden(text):
    """``"100,50"`` -> ``(100, 50)``: the sizes of the hidden layers."""
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            size = 0
        if size < 1:
            raise argparse.ArgumentTypeError(
                f"hidden layer sizes must be positive integers separated by commas, "
                f"such as 100,50; got {text!r}"
            )
        sizes.append(size)
    return tuple(sizes)


def parse_value(text):
    """A grid value: an int, a float, True/False, None, or else the string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_grid(text):
    """``"name=v1,v2"`` -> ``(name, [v1, v2])``, every value checked against
    the constraints of BackpropMLPClassifier's parameter ``name``, and
    against the others: a value given twice (1 and 1.0 are one value) would
    make two combinations that the search's counts cannot tell apart."""
    name, equals, values = text.partition("=")
    name = name.strip()
    if not equals or not name or not values.strip():
        raise argparse.ArgumentTypeError(
            f"expected PARAM=VALUE1,VALUE2,..., such as learning_rate_init=1e-3,1e-2; got {text!r}"
        )
    params = BackpropMLPClassifier().get_params()
    if name not in params:
        raise argparse.ArgumentTypeError(
            f"BackpropMLPClassifier has no parameter {name!r}; its parameters are "
            f"{', '.join(sorted(params))}"
        )
    parsed, parts = [], []
    for part in values.split(","):
        if not part.strip():
            raise argparse.ArgumentTypeError(f"empty value in {text!r}")
        value = parse_value(part.strip())
        try:  # the estimator's own check, now rather than after some fits
            BackpropMLPClassifier(**{name: value})._validate_params()
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(_one_line(exc)) from None
        part = part.strip()
        if value in parsed:
            same = parts[parsed.index(value)]
            raise argparse.ArgumentTypeError(
                f"{text!r} gives the value {part!r} twice" if same == part
                else f"{text!r} gives one value twice: {same!r} and {part!r}"
            )
        parsed.append(value)
        parts.append(part)
    return name, parsed


class _GridAction(argparse.Action):
    """Collects the ``--grid`` options into one dict, each parameter once."""

    def __call__(self, parser, namespace, value, option_string=None):
        grid = dict(getattr(namespace, self.dest) or {})
        name, values = value
        if name in grid:
            parser.error(f"argument --grid: {name!r} is given twice; list all its values at once")
        grid[name] = values
        setattr(namespace, self.dest, grid)


# ------------------------------------------------------------------ fit


def _parallel(n_jobs):
    """Run ``n_jobs > 1`` fits in threads, each with one BLAS thread, as
    :func:`search_learning_rate` does and for the same reasons."""
    if n_jobs == 1:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(parallel_config(backend="threading"))
    stack.enter_context(threadpool_limits(limits=1))
    return stack


def format_grid_results(search, names, scorer):
    """Table of a grid search: one row per combination, in grid order.

    ``scorer``, the search's :class:`ProgressScorer`, prints the values and
    counts the fits that diverged by combination; when it counted any, a
    column gives the count of each combination.
    """
    results = search.cv_results_
    diverged = scorer.diverged
    rows = [
        [*(scorer.text(name, value) for name, value in zip(names, values)),
         f"{mean:.4f}", f"{std:.4f}", f"{rank}"]
        + ([f"{diverged.get(values, 0)}"] if diverged else [])
        for values, mean, std, rank in zip(
            _settings(search.cv_results_, names),
            results["mean_test_score"],
            results["std_test_score"],
            results["rank_test_score"],
        )
    ]
    headers = [*names, "mean CV accuracy", "std", "rank"] + (["diverged"] if diverged else [])
    return format_table(headers, rows)


def _settings(results, names):
    """The values of the searched parameters ``names`` of every combination
    of a search's ``results``, in grid order: the keys of
    :attr:`ProgressScorer.diverged`."""
    return [
        tuple(params[f"mlp__{name}"] for name in names)
        for params in results["params"]
    ]


def _best_combination(scorer, names):
    """The search's ``refit``: the index of the combination to refit.

    GridSearchCV's own choice is the first of the best-ranked combinations.
    Among tied combinations this takes the one whose cross-validation fits
    diverged least often (as counted by ``scorer``), then the first: a tie
    must not pick a learning rate that explodes when a safe one scores the
    same.
    """

    def best_index(results):
        tied = _tied_with(results, results["mean_test_score"].max())
        settings = _settings(results, names)
        return int(min(tied, key=lambda i: (scorer.diverged.get(settings[i], 0), i)))

    return best_index


#: Mean accuracies closer than this tie. The same fold accuracies in another
#: order can sum to means one rounding step apart, which GridSearchCV's ranks
#: tell apart; any real difference is at least one sample in a fold.
TIE = 1e-9


def _tied_with(results, mean):
    """Indices of the combinations whose mean CV accuracy ties with ``mean``."""
    return np.flatnonzero(np.abs(results["mean_test_score"] - mean) <= TIE)


def _stopped_note(clf):
    if clf.n_iter_ >= clf.max_iter:
        return f" (stopped at max_iter={clf.max_iter}; a larger --max-iter may fit better)"
    return ""


#: At most this many combinations are named in the warning about diverged fits.
MAX_NAMED = 3


def _diverged_warning(scorer, cv, names=(), settings=()):
    """The line telling how many of the scorer's fits diverged (None if none),
    and, in a search, with which values of the searched ``names``, in the
    order of ``settings`` (see :func:`_settings`)."""
    n_diverged = sum(scorer.diverged.values())
    if not n_diverged:
        return None
    text = (
        f"warning: {n_diverged} of {scorer.n_fits} fits diverged, and kept the weights of "
        "their best epoch (or their starting weights)"
    )
    if names:
        named = [
            ", ".join(f"{name}={scorer.text(name, value)}" for name, value in zip(names, values))
            + f" in {count} of {cv} folds"
            for values in settings
            if (count := scorer.diverged.get(values))
        ]
        more = len(named) - MAX_NAMED
        if more > 0:
            named = named[:MAX_NAMED] + [
                f"and {more} more combination{'s' if more > 1 else ''} (see the diverged column)"
            ]
        text += ": " + "; ".join(named)
    return INDENT + text


def run_fit(data, target, out_path, *, hidden=(100,), grid=None, cv=5, max_iter=200,
            n_jobs=1, out=None):
    """The ``fit`` command: cross-validate (or grid-search) a standardising
    pipeline on a CSV file, fit it on all rows and save it with joblib.

    Fits that stop at max_iter, or that diverge, are marked on their
    progress lines, instead of the estimator's ConvergenceWarnings; a line
    counts the fits that diverged. Every other warning shows. If the reader
    of ``out`` goes away (BrokenPipeError), the fit goes on silently and
    still saves the model.

    Returns
    -------
    model : Pipeline
        The fitted pipeline that was saved.

    Raises
    ------
    CommandError
        Bad data, a fit the estimator rejects, or a final fit (on all rows)
        that diverged: then no model is saved.
    """
    # Progress lines that can no longer be printed do not abort the fit.
    out = _TolerantOutput(sys.stdout if out is None else out)
    out_path = Path(out_path)
    if not out_path.parent.is_dir():  # fail before the fits, not after
        raise CommandError(f"cannot save the model to {out_path}: no directory {out_path.parent}")
    if out_path.is_dir():
        raise CommandError(f"cannot save the model to {out_path}: it is a directory")
    start = time.perf_counter()
    frame = read_csv(data)
    X, y = training_data(frame, target, data)
    classes, counts = np.unique(y, return_counts=True)
    say(out, f"Read {len(X)} rows of {data}: {X.shape[1]} numeric feature columns, "
             f"target {target!r} with {len(classes)} classes")
    if cv > len(X):
        raise CommandError(f"--cv {cv} needs at least {cv} rows; {data} has {len(X)}")
    if cv > counts.max():
        raise CommandError(
            f"--cv {cv} is more folds than the rows of any class (at most {counts.max()})"
        )

    model = make_model(BackpropMLPClassifier(
        hidden_layer_sizes=hidden, max_iter=max_iter, random_state=0
    ))
    say(out, f"Model: StandardScaler, then BackpropMLPClassifier(hidden_layer_sizes={hidden!r}, "
             f"max_iter={max_iter}, random_state=0)")
    try:
        # The progress lines tell which fits stop at max_iter or diverge,
        # instead of ConvergenceWarnings; every other warning still shows.
        with _parallel(n_jobs), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            if grid:
                model = _search(model, X, y, grid, cv, n_jobs, out)
            else:
                model = _cross_validate(model, X, y, cv, n_jobs, out)
    except ValueError as exc:  # what scikit-learn or the estimator reject
        raise CommandError(f"fitting failed: {_one_line(exc)}") from None
    except MemoryError as exc:
        raise CommandError(
            f"fitting failed: out of memory ({_one_line(exc)}); the network is probably too "
            "large: try smaller --hidden sizes"
        ) from None

    try:
        joblib.dump(model, out_path)
    except OSError as exc:
        raise CommandError(f"cannot save the model to {out_path}: {_one_line(exc)}") from None
    say(out, f"[3/3] Saved the fitted pipeline to {out_path}")
    say(out, f"Done in {time.perf_counter() - start:.1f} s.")
    return model


def _cross_validate(model, X, y, cv, n_jobs, out):
    say(out, f"[1/3] {cv}-fold cross-validation")
    scorer = ProgressScorer(cv, {}, out)
    scores = cross_validate(
        model, X, y, cv=cv, scoring=scorer, n_jobs=n_jobs, error_score="raise"
    )["test_score"]
    say(out, f"{INDENT}CV accuracy: {scores.mean():.4f} +/- {scores.std():.4f} "
             f"(mean +/- std over {cv} folds)")
    diverged = _diverged_warning(scorer, cv)
    if diverged:
        say(out, diverged)
    say(out, f"[2/3] Fit on all {len(X)} rows")
    model.fit(X, y)
    _final_fit_line(out, model[-1], INDENT, f"the final fit on all {len(X)} rows")
    return model


def _final_fit_line(out, clf, start, what):
    """Print the epochs of the final fit; fail if it diverged: its weights
    are not the training asked for, and a script must not take them for it."""
    note = " (diverged)" if clf.diverged_ else _stopped_note(clf)
    say(out, f"{start}{clf.n_iter_} epochs{note}")
    if clf.diverged_:
        raise CommandError(
            f"{what} diverged (its training loss exploded), so no model was saved. "
            f"Try a smaller learning_rate_init than {clf.learning_rate_init:g}, or a "
            "larger alpha."
        )


def _search(model, X, y, grid, cv, n_jobs, out):
    names = list(grid)
    n_candidates = int(np.prod([len(values) for values in grid.values()]))
    n_fits = n_candidates * cv
    combinations = "1 combination" if n_candidates == 1 else f"{n_candidates} combinations"
    say(out, f"[1/3] Grid search over {', '.join(names)}: {combinations}, "
             f"{cv}-fold CV, {n_fits} fits")
    scorer = ProgressScorer(n_fits, grid, out)
    search = GridSearchCV(
        model,
        {f"mlp__{name}": values for name, values in grid.items()},
        scoring=scorer,
        cv=cv,
        n_jobs=n_jobs,
        error_score="raise",
        refit=_best_combination(scorer, names),
    ).fit(X, y)
    say(out, "[2/3] Search results")
    for line in format_grid_results(search, names, scorer):
        say(out, INDENT + line)
    diverged = _diverged_warning(scorer, cv, names, _settings(search.cv_results_, names))
    if diverged:
        say(out, diverged)
    best = ", ".join(
        f"{name}={scorer.text(name, search.best_params_[f'mlp__{name}'])}" for name in names
    )
    best_model = search.best_estimator_
    results = search.cv_results_
    mean = results["mean_test_score"][search.best_index_]
    tied = len(_tied_with(results, mean)) - 1
    tie = (f"; tied with {tied} other combination{'s' if tied > 1 else ''}: a tie goes to "
           "the fewest diverged fits, then to grid order" if tied else "")
    say(out, f"{INDENT}best: {best} (mean CV accuracy {mean:.4f}{tie})")
    _final_fit_line(out, best_model[-1], f"{INDENT}refit on all {len(X)} rows: ",
                    f"the refit of the best combination ({best}) on all {len(X)} rows")
    return best_model


# -------------------------------------------------------------- predict


def load_model(path):
    """The pipeline that ``fit`` saved to ``path``, checked to be one."""
    path = _existing_file(path, "a model file")
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling arbitrary bytes can raise nearly anything
        raise CommandError(
            f"{path} is not a model file saved by '{PROG} fit': joblib cannot load it "
            f"({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    saved_by = f"a pipeline ending in BackpropMLPClassifier, as '{PROG} fit' saves"
    if not (isinstance(model, Pipeline) and model.steps
            and isinstance(model.steps[-1][1], BackpropMLPClassifier)):
        raise CommandError(f"{path} holds a {type(model).__name__}, not {saved_by}")
    try:
        check_is_fitted(model[-1])
    except Exception:
        raise CommandError(f"{path} holds an unfitted pipeline; fit it first") from None
    if not hasattr(model, "feature_names_in_"):
        raise CommandError(
            f"{path} holds a pipeline fitted without column names; predict needs {saved_by}"
        )
    return model


def run_predict(model_path, data, out=None):
    """The ``predict`` command: print, as CSV, the label the saved pipeline
    predicts for every row of ``data``.

    Returns
    -------
    predictions : ndarray of shape (n_rows,)
    """
    out = sys.stdout if out is None else out
    if out is None:  # no standard output at all (pythonw): as if its reader had gone
        raise BrokenPipeError(errno.EPIPE, "no standard output to print the predictions to")
    model = load_model(model_path)
    frame = read_csv(data)
    features = [str(name) for name in model.feature_names_in_]
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise CommandError(
            f"{data} lacks {len(missing)} of the feature columns the model was fitted on: "
            f"{_quoted(missing)}"
        )
    X = numeric_features(frame, features, data)  # other columns, such as the target, are left out
    try:
        predictions = model.predict(X)
    except ValueError as exc:  # e.g. values so large that the network overflows
        raise CommandError(f"prediction failed: {_one_line(exc)}") from None
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prediction"])
    writer.writerows([label] for label in predictions)
    out.flush()
    return predictions


# -------------------------------------------------------------------- main


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Without a command, run the demo: tune learning_rate_init of\n"
            "BackpropMLPClassifier on scikit-learn's digits, then compare it with\n"
            "sklearn's MLPClassifier. The fit and predict commands train a classifier\n"
            "on a CSV file of your own and label new rows with it."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG}\n"
            f"  {PROG} fit iris.csv --target species --hidden 50 \\\n"
            "      --grid learning_rate_init=1e-3,1e-2 --out model.joblib\n"
            f"  {PROG} predict model.joblib new.csv > predictions.csv\n\n"
            f"'{PROG} COMMAND --help' describes each command."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo", help="run the demo (the default)", description="Run the demo on the digits."
    )

    fit = commands.add_parser(
        "fit",
        help="train a classifier on a CSV file and save it",
        description=(
            "Train StandardScaler + BackpropMLPClassifier on DATA, a CSV file with a "
            "header line: the --target column holds the class labels, every other "
            "column is a numeric feature. Print its cross-validated accuracy (or, with "
            "--grid, a grid search's results), then fit it on all rows and save it."
        ),
    )
    fit.add_argument("data", metavar="DATA.csv", help="the training data")
    fit.add_argument("--target", required=True, metavar="COLUMN",
                     help="the column of the class labels")
    fit.add_argument("--out", required=True, metavar="MODEL.joblib",
                     help="where to save the fitted pipeline")
    fit.add_argument("--hidden", type=parse_hidden, default=(100,), metavar="SIZES",
                     help="hidden layer sizes, such as 100,50 (default: 100)")
    fit.add_argument("--grid", type=parse_grid, action=_GridAction, metavar="PARAM=V1,V2,...",
                     help="grid-search this BackpropMLPClassifier parameter over these "
                          "values; repeat for more parameters")
    fit.add_argument("--cv", type=_integer_at_least(2), default=5, metavar="K",
                     help="number of stratified cross-validation folds (default: 5)")
    fit.add_argument("--max-iter", type=_integer_at_least(1), default=200, metavar="N",
                     help="maximum number of epochs of each fit (default: 200)")
    fit.add_argument("--n-jobs", type=_integer_at_least(1), default=1, metavar="N",
                     help="number of cross-validation fits run at once, in threads "
                          "(default: 1)")

    predict = commands.add_parser(
        "predict",
        help="label the rows of a CSV file with a saved classifier",
        description=(
            "Print, as CSV with the header 'prediction', the label that the model saved "
            "by 'fit' predicts for each row of DATA. DATA needs the feature columns the "
            "model was fitted on; other columns, such as the target, are ignored. "
            "Loading a model runs pickle: load only files you trust."
        ),
    )
    predict.add_argument("model", metavar="MODEL.joblib", help="a model saved by 'fit'")
    predict.add_argument("data", metavar="DATA.csv", help="the rows to label")
    return parser


def main(argv=None):
    """Entry point of ``python -m skbackprop``; returns the exit code.

    A bad command line exits (``SystemExit``) with ``EXIT_USAGE``, as
    argparse does; bad data, a bad model file or a final fit that diverged
    return ``EXIT_ERROR`` after a one-line message on stderr. So does, but
    without a message, a ``predict`` whose reader closed its output early
    (``predict ... | head``), since its output is then incomplete. A ``fit``
    or the demo goes on without printing then (``fit`` still saves the
    model), whichever of its outputs (stdout or stderr) lost its reader.
    Every command's messages on stderr may lose their reader too: the exit
    status is the same.
    """
    with _output_whose_reader_may_go():  # usage errors and --help, into a closed pipe too
        args = build_parser().parse_args(argv)
    command = args.command or "demo"
    tolerant = command in ("fit", "demo")
    try:
        with (_output_whose_reader_may_go() if tolerant else contextlib.nullcontext()), \
                (_warnings_as_lines(_TolerantOutput(sys.stderr)) if command != "demo"
                 else contextlib.nullcontext()):
            if command == "demo":
                run_demo()
            elif command == "fit":
                run_fit(args.data, args.target, args.out, hidden=args.hidden, grid=args.grid,
                        cv=args.cv, max_iter=args.max_iter, n_jobs=args.n_jobs)
            else:
                run_predict(args.model, args.data)
    except CommandError as exc:
        _tell(f"{PROG} {command}: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _tell("\ninterrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of predict's output went away
        _discard_output(sys.stdout)
        return EXIT_ERROR  # quietly, as the reader wanted no more; but the output is incomplete
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
