"""Tests of the fit and predict commands of ``python -m skbackprop``.

They run the commands end to end through ``main`` on the iris data written
to CSV files, with small networks and few epochs.
"""

import errno
import io
import os
import re
import subprocess
import sys
import threading
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from skbackprop import BackpropMLPClassifier
from skbackprop import __main__ as cli
from helpers import quiet_fit

pd = pytest.importorskip("pandas")

SMALL = ["--hidden", "8", "--max-iter", "30", "--cv", "3"]


@pytest.fixture(scope="module")
def iris():
    """The iris data as a DataFrame: four features (named with spaces and
    parentheses) and a ``species`` column of names."""
    data = load_iris(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame["species"] = data.target_names[data.target]
    return frame


@pytest.fixture
def iris_csv(iris, tmp_path):
    path = tmp_path / "iris.csv"
    iris.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_file(iris, tmp_path_factory):
    """A model saved by the fit command, and the CSV it was fitted on."""
    folder = tmp_path_factory.mktemp("model")
    data, model = folder / "iris.csv", folder / "model.joblib"
    iris.to_csv(data, index=False)
    cli.run_fit(data, "species", model, hidden=(8,), grid={"learning_rate_init": [0.03]},
                cv=2, max_iter=100, out=io.StringIO())
    return model


def run(capsys, *argv):
    """``main(argv)``: its exit status, stdout and stderr, never a traceback."""
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def small_pipeline(**params):
    return cli.make_model(BackpropMLPClassifier(
        **{"hidden_layer_sizes": (8,), "max_iter": 30, "random_state": 0, **params}
    ))


def fit_lines(out):
    return [line.split() for line in out.splitlines() if line.strip().startswith("fit ")]


def table_rows(out, n_rows):
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("---"))
    return [line.split() for line in lines[rule + 1 : rule + 1 + n_rows]]


# ------------------------------------------------------------------ fit


def test_fit_cross_validates_and_saves_the_pipeline(iris, iris_csv, tmp_path, capsys):
    model_path = tmp_path / "model.joblib"
    code, out, err = run(capsys, "fit", iris_csv, "--target", "species", "--hidden", "8,4",
                         "--max-iter", "30", "--cv", "3", "--out", model_path)
    assert code == 0
    assert err == ""  # the ConvergenceWarnings of 30 epochs are not shown...
    lines = fit_lines(out)
    assert [line[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all(line[-3:] == ["(stopped", "at", "max_iter)"] for line in lines)  # ...these say so

    X, y = iris.drop(columns="species"), iris["species"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = cross_val_score(small_pipeline(hidden_layer_sizes=(8, 4)), X, y, cv=3)
    match = re.search(r"CV accuracy: (\S+) \+/- (\S+) \(mean \+/- std over 3 folds\)", out)
    assert match, out
    assert float(match[1]) == pytest.approx(expected.mean(), abs=5e-5)
    assert float(match[2]) == pytest.approx(expected.std(), abs=5e-5)
    for line, score in zip(lines, expected):
        assert float(line[line.index("accuracy") + 1]) == pytest.approx(score, abs=5e-5)
    assert f"Saved the fitted pipeline to {model_path}" in out

    model = joblib.load(model_path)
    assert isinstance(model, Pipeline)
    clf = model[-1]
    assert isinstance(clf, BackpropMLPClassifier)
    assert (clf.hidden_layer_sizes, clf.max_iter, clf.random_state) == ((8, 4), 30, 0)
    assert list(model.feature_names_in_) == list(X.columns)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    # fitted on all rows: the same model as fitting the same pipeline here
    reference = quiet_fit(small_pipeline(hidden_layer_sizes=(8, 4)), X, y)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


def test_fit_with_a_grid(iris, iris_csv, tmp_path, capsys):
    model_path = tmp_path / "model.joblib"
    code, out, err = run(
        capsys, "fit", iris_csv, "--target", "species", *SMALL, "--n-jobs", "2",
        "--grid", "learning_rate_init=1e-3,3e-2", "--grid", "activation=relu,tanh",
        "--out", model_path,
    )
    assert code == 0 and err == ""
    assert "4 combinations, 3-fold CV, 12 fits" in out
    assert sorted(line[1] for line in fit_lines(out)) == sorted(f"{i}/12" for i in range(1, 13))

    X, y = iris.drop(columns="species"), iris["species"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(
            small_pipeline(),
            {"mlp__learning_rate_init": [1e-3, 3e-2], "mlp__activation": ["relu", "tanh"]},
            cv=3,
        ).fit(X, y)
    header = next(line for line in out.splitlines() if "mean CV accuracy" in line).split()
    assert header == ["learning_rate_init", "activation", "mean", "CV", "accuracy", "std", "rank"]
    rows = table_rows(out, 4)
    results = search.cv_results_
    for row, params, mean, std, rank in zip(
        rows, results["params"], results["mean_test_score"], results["std_test_score"],
        results["rank_test_score"],
    ):
        assert float(row[0]) == params["mlp__learning_rate_init"]
        assert row[1] == params["mlp__activation"]
        assert float(row[2]) == pytest.approx(mean, abs=5e-5)
        assert float(row[3]) == pytest.approx(std, abs=5e-5)
        assert int(row[4]) == rank

    best = search.best_params_
    assert (
        f"best: learning_rate_init={best['mlp__learning_rate_init']:g}, "
        f"activation={best['mlp__activation']} (mean CV accuracy {search.best_score_:.4f})"
    ) in out
    saved = joblib.load(model_path)[-1]  # the best estimator, refit on all rows
    assert saved.learning_rate_init == best["mlp__learning_rate_init"]
    assert saved.activation == best["mlp__activation"]
    np.testing.assert_array_equal(joblib.load(model_path).predict(X), search.predict(X))


def test_fit_shows_other_warnings_on_one_line(tmp_path, capsys):
    rows = [(i, i % 3, "big") for i in range(10)] + [(1, 5, "small"), (3, 1, "small")]
    data = tmp_path / "few.csv"
    pd.DataFrame(rows, columns=["a", "b", "label"]).to_csv(data, index=False)
    code, out, err = run(capsys, "fit", data, "--target", "label", "--hidden", "4",
                         "--max-iter", "5", "--cv", "3", "--out", tmp_path / "m.joblib")
    assert code == 0
    warning_lines = err.splitlines()
    assert warning_lines and all(line.startswith("warning: ") for line in warning_lines)
    assert "least populated class" in err
    assert "CV accuracy" in out


# A learning rate of 1e300 makes every fit of the data diverge in epoch 2, and
# alpha=1e308 makes L-BFGS meet a non-finite loss at once: the estimator
# restores earlier weights and sets diverged_.
DIVERGING_GRIDS = {
    "adam": (["--grid", "learning_rate_init=1e300"], "learning_rate_init=1e+300", "1e+300"),
    "lbfgs": (["--grid", "solver=lbfgs", "--grid", "alpha=1e308"], "solver=lbfgs, alpha=1e+308",
              "0.001"),
}


@pytest.mark.parametrize("n_jobs", ["1", "2"])
@pytest.mark.parametrize("solver", list(DIVERGING_GRIDS))
def test_fit_fails_and_saves_nothing_when_the_refit_diverges(iris_csv, tmp_path, capsys,
                                                             solver, n_jobs):
    grid, best, rate = DIVERGING_GRIDS[solver]
    model_path = tmp_path / "model.joblib"
    model_path.write_bytes(b"an older model")
    code, out, err = run(capsys, "fit", iris_csv, "--target", "species", *SMALL, *grid,
                         "--n-jobs", n_jobs, "--out", model_path)
    assert code == cli.EXIT_ERROR == 1
    lines = fit_lines(out)
    assert len(lines) == 3 and all(line[-1] == "(diverged)" for line in lines)
    header = next(line for line in out.splitlines() if "mean CV accuracy" in line).split()
    assert header[-1] == "diverged" and table_rows(out, 1)[0][-1] == "3"
    assert (f"warning: 3 of 3 fits diverged, and kept the weights of their best epoch "
            f"(or their starting weights): {best} in 3 of 3 folds") in out
    assert re.search(r"refit on all 150 rows: \d+ epochs \(diverged\)\n", out), out
    assert "Saved" not in out and "Done" not in out
    assert err == (
        f"python -m skbackprop fit: error: the refit of the best combination ({best}) on all "
        f"150 rows diverged (its training loss exploded), so no model was saved. Try a "
        f"smaller learning_rate_init than {rate}, or a larger alpha.\n"
    )  # one line: the estimator's warnings are not shown besides
    assert model_path.read_bytes() == b"an older model"  # left as it was


def test_fit_fails_when_the_final_fit_without_a_grid_diverges(iris_csv, tmp_path, capsys,
                                                               monkeypatch):
    # fit has no option for the learning rate: give the pipeline a diverging one
    make_model = cli.make_model
    monkeypatch.setattr(
        cli, "make_model", lambda clf: make_model(clf.set_params(learning_rate_init=1e300))
    )
    model_path = tmp_path / "model.joblib"
    code, out, err = run(capsys, "fit", iris_csv, "--target", "species", *SMALL,
                         "--out", model_path)
    assert code == 1
    assert [line[-1] for line in fit_lines(out)] == ["(diverged)"] * 3
    assert ("      warning: 3 of 3 fits diverged, and kept the weights of their best epoch "
            "(or their starting weights)\n") in out
    assert "[2/3] Fit on all 150 rows\n      2 epochs (diverged)\n" in out
    assert "Saved" not in out
    assert err == (
        "python -m skbackprop fit: error: the final fit on all 150 rows diverged (its "
        "training loss exploded), so no model was saved. Try a smaller learning_rate_init "
        "than 1e+300, or a larger alpha.\n"
    )
    assert not model_path.exists()


def test_fit_reports_which_fits_of_a_search_diverged(iris, iris_csv, tmp_path, capsys):
    model_path = tmp_path / "model.joblib"
    code, out, err = run(
        capsys, "fit", iris_csv, "--target", "species", *SMALL, "--n-jobs", "2",
        "--grid", "learning_rate_init=1e300,3e-2", "--grid", "activation=relu,tanh",
        "--out", model_path,
    )
    assert code == 0
    assert err == ""  # neither the divergences nor the max_iter notes as raw warnings
    for line in fit_lines(out):  # each of the 12 fits, in the order they finished
        diverged = "learning_rate_init=1e+300" in line
        assert (line[-1] == "(diverged)") == diverged, line
        assert (line[-1] == "max_iter)") == (not diverged), line
    header = next(line for line in out.splitlines() if "mean CV accuracy" in line).split()
    assert header[-1] == "diverged"
    assert [(row[0], row[1], row[-1]) for row in table_rows(out, 4)] == [
        ("1e+300", "relu", "3"), ("0.03", "relu", "0"), ("1e+300", "tanh", "3"),
        ("0.03", "tanh", "0"),
    ]
    assert (
        "      warning: 6 of 12 fits diverged, and kept the weights of their best epoch (or "
        "their starting weights): learning_rate_init=1e+300, activation=relu in 3 of 3 folds; "
        "learning_rate_init=1e+300, activation=tanh in 3 of 3 folds\n"
    ) in out
    assert "best: learning_rate_init=0.03" in out
    assert "refit on all 150 rows: 30 epochs (stopped at max_iter=30" in out
    assert f"Saved the fitted pipeline to {model_path}" in out
    assert joblib.load(model_path)[-1].learning_rate_init == 0.03


@pytest.mark.parametrize("n_jobs", ["1", "2"])
def test_a_tie_goes_to_the_combination_that_diverged_less(iris_csv, tmp_path, capsys,
                                                           monkeypatch, n_jobs):
    # every fit scores the same, so all three combinations tie; GridSearchCV
    # alone would refit the first, whose learning rate explodes
    monkeypatch.setattr(BackpropMLPClassifier, "score", lambda self, X, y: 0.5)
    model_path = tmp_path / "model.joblib"
    code, out, err = run(
        capsys, "fit", iris_csv, "--target", "species", *SMALL, "--n-jobs", n_jobs,
        "--grid", "learning_rate_init=1e300,3e-2,1e-2", "--out", model_path,
    )
    assert code == 0, err
    assert [row[-2:] for row in table_rows(out, 3)] == [["1", "3"], ["1", "0"], ["1", "0"]]
    assert ("best: learning_rate_init=0.03 (mean CV accuracy 0.5000; tied with 2 other "
            "combinations: a tie goes to the fewest diverged fits, then to grid order)") in out
    assert "refit on all 150 rows: 30 epochs (stopped at max_iter=30" in out
    assert joblib.load(model_path)[-1].learning_rate_init == 0.03


def test_grid_values_that_print_alike_are_counted_and_shown_apart(iris_csv, tmp_path, capsys):
    # 1e300 and 1.00000001e300 are both "1e+300" under %g, and both diverge
    model_path = tmp_path / "model.joblib"
    code, out, err = run(
        capsys, "fit", iris_csv, "--target", "species", *SMALL,
        "--grid", "learning_rate_init=1e300,1.00000001e300,3e-2", "--out", model_path,
    )
    assert code == 0 and err == ""
    assert [(row[0], row[-1]) for row in table_rows(out, 3)] == [
        ("1e+300", "3"), ("1.00000001e+300", "3"), ("0.03", "0"),
    ]
    assert (
        "      warning: 6 of 9 fits diverged, and kept the weights of their best epoch (or "
        "their starting weights): learning_rate_init=1e+300 in 3 of 3 folds; "
        "learning_rate_init=1.00000001e+300 in 3 of 3 folds\n"
    ) in out
    assert sum("learning_rate_init=1.00000001e+300" in line for line in out.splitlines()) == 4
    assert "best: learning_rate_init=0.03" in out
    assert joblib.load(model_path)[-1].learning_rate_init == 0.03


def test_best_combination_breaks_ties_by_divergence_then_grid_order():
    scorer = cli.ProgressScorer(0, {}, io.StringIO())
    scorer.diverged = {("1",): 2, ("2",): 1}
    results = {"mean_test_score": np.array([0.9, 0.9, 0.8, 0.9]),
               "params": [{"mlp__x": v} for v in ["1", "2", "3", "4"]]}
    best = cli._best_combination(scorer, ["x"])
    assert best(results) == 3  # the tied one that never diverged
    scorer.diverged[("4",)] = 1
    assert best(results) == 1  # fewer divergences than the first; first of the equals
    results["mean_test_score"] = np.array([0.8, 0.7, 0.9, 0.6])
    assert best(results) == 2  # no tie: the best mean, whatever diverged


def test_means_one_rounding_step_apart_tie():
    """The same fold accuracies in another order can sum to a different last
    bit; GridSearchCV then ranks them apart, but they tie."""
    a, b = (45 / 50 + 45 / 50 + 47 / 50) / 3, (45 / 50 + 47 / 50 + 45 / 50) / 3
    assert a != b  # the case itself: one rounding step apart
    scorer = cli.ProgressScorer(0, {}, io.StringIO())
    scorer.diverged = {("1",): 3}
    results = {"mean_test_score": np.array([max(a, b), min(a, b)]),
               "params": [{"mlp__x": v} for v in ["1", "2"]]}
    assert cli._best_combination(scorer, ["x"])(results) == 1


def test_a_search_without_divergence_has_no_diverged_column(iris_csv, tmp_path, capsys):
    code, out, err = run(capsys, "fit", iris_csv, "--target", "species", *SMALL,
                         "--grid", "learning_rate_init=3e-2", "--out", tmp_path / "m.joblib")
    assert code == 0 and err == ""
    assert "diverged" not in out


# -------------------------------------------------------------- predict


def test_predict_prints_one_label_per_row(iris, model_file, tmp_path, capsys):
    model = joblib.load(model_file)
    new = iris.drop(columns="species").sample(frac=1, random_state=0).iloc[:20]
    data = tmp_path / "new.csv"
    new[new.columns[::-1]].to_csv(data, index=False)  # columns in another order
    code, out, err = run(capsys, "predict", model_file, data)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "prediction"
    assert len(lines) == 1 + len(new)
    assert lines[1:] == list(model.predict(new))
    assert set(lines[1:]) <= {"setosa", "versicolor", "virginica"}


def test_predict_ignores_the_target_column(iris, iris_csv, model_file, capsys):
    code, out, _ = run(capsys, "predict", model_file, iris_csv)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "prediction" and len(lines) == 1 + len(iris)
    assert lines[1:] == list(joblib.load(model_file).predict(iris.drop(columns="species")))
    assert pd.Series(lines[1:]).eq(iris["species"]).mean() > 0.9  # it did learn


def test_module_entry_point(iris_csv, model_file):
    completed = subprocess.run(
        [sys.executable, "-m", "skbackprop", "predict", str(model_file), str(iris_csv)],
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0] == "prediction" and len(lines) == 151
    failed = subprocess.run(
        [sys.executable, "-m", "skbackprop", "predict", str(iris_csv), str(iris_csv)],
        capture_output=True, text=True, timeout=60,
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("python -m skbackprop predict: error: ")
    assert len(failed.stderr.splitlines()) == 1


def test_a_reader_that_goes_away_stops_predict_quietly_but_not_fit(iris_csv, model_file,
                                                                    tmp_path):
    """``predict ... | head`` exits 1 (its output is incomplete) without a
    message; ``fit ... | head`` goes on without its progress lines and saves
    the model. Neither prints a traceback, nor fails flushing stdout on exit."""
    model_path, merged_path = tmp_path / "model.joblib", tmp_path / "merged.joblib"
    fit = ["fit", iris_csv, "--target", "species", "--hidden", "4", "--max-iter", "5",
           "--cv", "2", "--grid", "verbose=true"]  # the estimator prints too
    commands = [  # (command, stderr into the closed pipe as well, as with 2>&1)
        (["predict", model_file, iris_csv], False),
        ([*fit, "--out", model_path], False),
        ([*fit, "--out", merged_path], True),
    ]
    processes = []
    for command, merged in commands:  # all at once: each spends a second importing
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first line
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "skbackprop", *map(str, command)],
            stdout=write_end, stderr=write_end if merged else subprocess.PIPE, text=True,
        ))
        os.close(write_end)
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [(process.returncode, err) for process, err in zip(processes, errors)] == [
        (1, ""), (0, ""), (0, None)]
    for path in (model_path, merged_path):
        assert isinstance(joblib.load(path)[-1], BackpropMLPClassifier)


@pytest.mark.parametrize("command", ["predict", "fit"])
def test_a_broken_pipe_points_stdout_at_devnull(iris_csv, model_file, tmp_path, capsys,
                                                monkeypatch, command):
    """As Python's docs advise: the text still buffered for the closed pipe
    then goes to os.devnull when the interpreter flushes stdout on exit."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = open(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    model_path = tmp_path / "model.joblib"
    argv = (["predict", model_file, iris_csv] if command == "predict" else
            ["fit", iris_csv, "--target", "species", *SMALL, "--out", model_path])
    try:
        code, _, err = run(capsys, *argv)
        assert (code, err) == ((1, "") if command == "predict" else (0, ""))
        assert os.path.samestat(os.fstat(write_end), os.stat(os.devnull))
        stdout.write("more text\n")
        stdout.flush()  # no BrokenPipeError: this is the flush on exit
    finally:
        stdout.close()
    assert model_path.exists() == (command == "fit")


def into_closed_pipe(monkeypatch, name):
    """Point ``sys.<name>`` at a pipe whose reader is gone (``2>&1 | head``)
    for the rest of the test; return the pipe's file descriptor. (Called in
    the test itself: capsys replaces sys.stderr when the test starts.)"""
    read_end, write_end = os.pipe()
    os.close(read_end)
    monkeypatch.setattr(sys, name, open(write_end, "w"))
    return write_end


def warn_then_print(model, data):
    warnings.warn("a warning nobody reads")
    print("label")


@pytest.mark.parametrize("argv, replacement, expected", [
    (["predict", "missing.joblib", "missing.csv"], None, 1),  # the one-line error
    (["predict", "m.joblib", "d.csv"], KeyboardInterrupt, cli.EXIT_INTERRUPTED),
    (["predict", "m.joblib", "d.csv"], warn_then_print, 0),  # a warning line
])
def test_messages_into_a_closed_stderr_keep_their_exit_status(capsys, monkeypatch, argv,
                                                                replacement, expected):
    """No BrokenPipeError escapes: the exit status says what happened, and a
    predict whose warnings lose their reader still prints all its labels."""
    closed_stderr = into_closed_pipe(monkeypatch, "stderr")
    if replacement is KeyboardInterrupt:
        def interrupted(model, data):
            raise KeyboardInterrupt
        monkeypatch.setattr(cli, "run_predict", interrupted)
    elif replacement is not None:
        monkeypatch.setattr(cli, "run_predict", replacement)
    assert cli.main(argv) == expected
    assert capsys.readouterr().out == ("label\n" if replacement is warn_then_print else "")
    assert os.path.samestat(os.fstat(closed_stderr), os.stat(os.devnull))


@pytest.mark.parametrize("argv", [["--no-such-option"], ["--help"]])
def test_usage_into_a_closed_pipe_keeps_its_exit_status(monkeypatch, argv):
    """argparse's usage error (status 2, on stderr) and --help (status 0, on
    stdout) end with their own status when their reader is gone."""
    written = [into_closed_pipe(monkeypatch, name) for name in ("stdout", "stderr")]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == (0 if argv == ["--help"] else cli.EXIT_USAGE)
    assert os.path.samestat(os.fstat(written[argv != ["--help"]]), os.stat(os.devnull))


def test_exit_statuses_into_closed_pipes_with_buffered_output(tmp_path):
    """The same in real processes, with Python's streams buffered (as they
    are unless PYTHONUNBUFFERED is set): text still buffered when a closed
    pipe fails on exit used to turn every status into 120."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    commands = [(["--help"], 0), (["--no-such-option"], cli.EXIT_USAGE),
                (["predict", tmp_path / "none.joblib", tmp_path / "none.csv"], 1)]
    processes = []
    for argv, _ in commands:  # all at once: each spends a second importing
        read_end, write_end = os.pipe()
        os.close(read_end)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "skbackprop", *map(str, argv)],
            stdout=write_end, stderr=write_end, env=env,
        ))
        os.close(write_end)
    assert [process.wait(timeout=60) for process in processes] == [
        status for _, status in commands]


class _FullDisk(io.StringIO):
    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_final_flush_still_puts_the_streams_back(monkeypatch):
    """Only a reader that went away is tolerated: a full disk is an error,
    and sys.stdout and sys.stderr are put back all the same."""
    full = _FullDisk()
    monkeypatch.setattr(sys, "stdout", full)
    with pytest.raises(OSError, match="No space left"):
        cli.main(["--help"])
    assert sys.stdout is full


@pytest.mark.parametrize("name", ["stdout", "stderr"])
def test_no_stream_at_all_is_no_error(monkeypatch, capsys, iris_csv, model_file, name):
    """Under pythonw, or with a stream closed by the caller, sys.stdout or
    sys.stderr is None: the messages are dropped, the status stays. A
    predict without stdout ends as when its reader goes (status 1); without
    stderr it prints its labels."""
    monkeypatch.setattr(sys, name, None)
    assert cli.main(["predict", "none.joblib", "none.csv"]) == 1
    assert cli.main(["predict", str(model_file), str(iris_csv)]) == (1 if name == "stdout" else 0)
    if name == "stderr":
        assert capsys.readouterr().out.startswith("prediction\n")


# --------------------------------------------------------------- errors


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, target, message",
    [
        ("", "y", "is empty; expected a header line"),
        ("a,b,y\n", "y", "has a header line but no data rows"),
        ("a,b,y\n1,2,0\n3,4,1\n", "label", "has no column 'label' (--target); its columns are "
                                           "'a', 'b', 'y'"),
        ("a,b,c,y\n1,x,u,0\n2,3,v,1\n", "y", "feature columns must be numeric, but 2 are not: "
                                            "'b' (e.g. 'x'), 'c' (e.g. 'u')"),
        ("a,b,y\n1,2,0\n3,4,0\n", "y", "the target column 'y' holds a single class (0)"),
        ("a,y\n1,cat\n2,cat\n", "y", "holds a single class ('cat')"),
        ("a,b,y\n1,,0\n3,4,1\n", "y", "missing values in feature columns 'b'"),
        ("a,y\n1,0\n3,\n", "y", "the target column 'y' has 1 missing values"),
        ("a,y\n1,0.5\n3,1.25\n", "y", "holds continuous values (e.g. 0.5), not class labels"),
        ("a,y\n1,0\n2,1\n3,inf\n", "y", "data.csv: the target column 'y' holds infinite "
                                        "values (e.g. inf), not class labels"),
        ("a,y\n1,0\n2,1\n3,-1e20\n", "y", "data.csv: the target column 'y' holds numbers too "
                                          "large to be class labels (e.g. -1e+20); numeric "
                                          "labels must be integers from -2**63 to 2**63 - 1"),
        ("a,y\n1,0\n2,1\n3," + "9" * 400 + "\n", "a",
         "infinite values (or numbers too large for 64-bit floats) in feature columns 'y'"),
        ("y\n0\n1\n", "y", "has no feature columns besides the target 'y'"),
        ("a,y\n1,0\n2,1\n3,0\n", "y", "--cv 5 needs at least 5 rows; "),
        ("a,y\n" + "1,0\n" * 4 + "2,1\n" * 4, "y",
         "--cv 5 is more folds than the rows of any class (at most 4)"),
    ],
)
def test_fit_data_errors(tmp_path, capsys, text, target, message):
    data = write(tmp_path, "data.csv", text)
    model_path = tmp_path / "model.joblib"
    code, out, err = run(capsys, "fit", data, "--target", target, "--out", model_path)
    assert code == 1
    assert err.startswith("python -m skbackprop fit: error: ")
    assert message in err
    assert len(err.splitlines()) == 1
    assert not model_path.exists()


def test_fit_missing_file(tmp_path, capsys):
    code, _, err = run(capsys, "fit", tmp_path / "nope.csv", "--target", "y",
                       "--out", tmp_path / "m.joblib")
    assert code == 1 and f"{tmp_path / 'nope.csv'}: no such file" in err


def test_fit_checks_the_output_folder_first(iris_csv, tmp_path, capsys):
    code, out, err = run(capsys, "fit", iris_csv, "--target", "species",
                         "--out", tmp_path / "no" / "m.joblib")
    assert code == 1 and "no directory" in err
    assert out == ""  # before reading the data or fitting anything


def test_fit_rejects_an_output_directory_first(iris_csv, tmp_path, capsys):
    code, out, err = run(capsys, "fit", iris_csv, "--target", "species", "--out", tmp_path)
    assert code == 1
    assert err == f"python -m skbackprop fit: error: cannot save the model to {tmp_path}: " \
                  "it is a directory\n"
    assert out == ""  # before reading the data or fitting anything


def test_fit_and_predict_take_integers_too_wide_for_64_bits(tmp_path, capsys):
    # pandas reads such a column as text; its values are numbers all the same
    wide = "99999999999999999999"
    data = write(tmp_path, "data.csv", f"a,b,label\n1,{wide},x\n2,3,y\n3,-{wide},x\n4,5,y\n")
    model_path = tmp_path / "model.joblib"
    code, out, err = run(capsys, "fit", data, "--target", "label", "--hidden", "4",
                         "--max-iter", "5", "--cv", "2", "--out", model_path)
    assert (code, err) == (0, "")
    scale = joblib.load(model_path)[0]
    assert scale.var_[1] == pytest.approx(np.var([1e20, 3, -1e20, 5]), rel=1e-12)
    code, out, err = run(capsys, "predict", model_path, data)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "prediction" and len(out.splitlines()) == 5


def test_fit_rejects_values_too_large_to_standardise(iris, tmp_path, capsys):
    data = tmp_path / "huge.csv"
    huge = iris.copy()
    huge.loc[0, "petal width (cm)"] = 1e200  # finite, but its square is not
    huge.to_csv(data, index=False)
    model_path = tmp_path / "model.joblib"
    code, out, err = run(capsys, "fit", data, "--target", "species", *SMALL,
                         "--out", model_path)
    assert code == 1 and out == ""  # before any fit
    assert err == (
        f"python -m skbackprop fit: error: {data}: feature column 'petal width (cm)' holds "
        "values too large to standardise without overflow (e.g. 1e+200; the limit for 150 "
        "rows is 2.7e+152 in magnitude); divide it by a power of ten first\n"
    )
    assert not model_path.exists()


@pytest.mark.parametrize("n_rows", [2, 150])
def test_values_that_pass_the_size_check_standardise_without_overflow(n_rows):
    from sklearn.preprocessing import StandardScaler

    limit = np.sqrt(np.finfo(np.float64).max / n_rows) / 4
    largest = np.zeros((n_rows, 3))
    largest[:, 0] = limit  # the largest magnitude, in every row
    largest[0, 1], largest[1, 1] = limit, -limit  # the largest range
    largest[:, 2] = np.linspace(-limit, limit, n_rows)
    frame = pd.DataFrame(largest, columns=["a", "b", "c"])
    cli._check_scalable(frame, "data.csv")  # passes...
    with np.errstate(all="raise"):  # ...and standardising it does not overflow
        assert np.isfinite(StandardScaler().fit_transform(largest)).all()
    for column in frame.columns:
        with pytest.raises(cli.CommandError, match=f"feature column '{column}' holds values"):
            cli._check_scalable(frame.assign(**{column: frame[column] * 1.001}), "data.csv")


def test_fit_out_of_memory_names_the_network_size(iris_csv, tmp_path, capsys, monkeypatch):
    # as --hidden 10000000000 does where memory is limited (ulimit -v)
    def fit(self, X, y):
        raise MemoryError("Unable to allocate 298. GiB for an array with shape "
                          "(4, 10000000000) and data type float64")

    monkeypatch.setattr(BackpropMLPClassifier, "fit", fit)
    model_path = tmp_path / "model.joblib"
    code, _, err = run(capsys, "fit", iris_csv, "--target", "species", *SMALL,
                       "--out", model_path)
    assert code == 1
    assert err == (
        "python -m skbackprop fit: error: fitting failed: out of memory (Unable to allocate "
        "298. GiB for an array with shape (4, 10000000000) and data type float64); the "
        "network is probably too large: try smaller --hidden sizes\n"
    )
    assert not model_path.exists()


def test_fit_reports_what_the_estimator_rejects(iris_csv, tmp_path, capsys):
    code, _, err = run(capsys, "fit", iris_csv, "--target", "species", *SMALL,
                       "--grid", "early_stopping=true", "--grid", "validation_fraction=0.01",
                       "--out", tmp_path / "m.joblib")
    assert code == 1
    assert "fitting failed: early_stopping needs a validation set" in err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--cv", "1"], "argument --cv: must be at least 2, got 1"),
        (["--cv", "two"], "argument --cv: expected an integer, got 'two'"),
        (["--max-iter", "0"], "argument --max-iter: must be at least 1, got 0"),
        (["--n-jobs", "0"], "argument --n-jobs: must be at least 1, got 0"),
        (["--hidden", "8,0"], "hidden layer sizes must be positive integers"),
        (["--hidden", "8,x"], "hidden layer sizes must be positive integers"),
        (["--grid", "learning_rate_init"], "expected PARAM=VALUE1,VALUE2,..."),
        (["--grid", "lr=0.1"], "BackpropMLPClassifier has no parameter 'lr'"),
        (["--grid", "alpha=1,"], "empty value in 'alpha=1,'"),
        (["--grid", "learning_rate_init=0.1,-1"], "'learning_rate_init' parameter"),
        (["--grid", "solver=adam,newton"], "'solver' parameter"),
        (["--grid", "alpha=1", "--grid", "alpha=2"], "'alpha' is given twice"),
        (["--grid", "learning_rate_init=0.01,0.1,0.01"],
         "argument --grid: 'learning_rate_init=0.01,0.1,0.01' gives the value '0.01' twice"),
        (["--grid", "alpha=1,1.0"], "argument --grid: 'alpha=1,1.0' gives one value twice: "
                                    "'1' and '1.0'"),
    ],
)
def test_fit_usage_errors(iris_csv, tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", str(iris_csv), "--target", "species", "--out",
                  str(tmp_path / "m.joblib"), *options])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m skbackprop fit" in err
    assert message in err.splitlines()[-1]
    assert not (tmp_path / "m.joblib").exists()


def test_fit_requires_out(iris_csv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", str(iris_csv), "--target", "species"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_grid_values_are_typed():
    assert cli.parse_grid("batch_size=32,auto") == ("batch_size", [32, "auto"])
    assert cli.parse_grid("alpha=1e-4, 0.01") == ("alpha", [1e-4, 0.01])
    assert cli.parse_grid("early_stopping=True,false") == ("early_stopping", [True, False])
    assert cli.parse_grid("class_weight=none,balanced") == ("class_weight", [None, "balanced"])
    assert cli.parse_hidden("100,50") == (100, 50)


def save(tmp_path, obj):
    path = tmp_path / f"model{len(list(tmp_path.iterdir()))}.joblib"
    joblib.dump(obj, path)
    return path


def test_predict_rejects_files_that_are_not_models(iris, iris_csv, tmp_path, capsys):
    X, y = iris.drop(columns="species"), iris["species"]
    cases = [
        (write(tmp_path, "text.joblib", "not a model\n"), "is not a model file saved by"),
        (tmp_path / "missing.joblib", "missing.joblib: no such file"),
        (save(tmp_path, {"model": 1}), "holds a dict, not a pipeline ending in "
                                       "BackpropMLPClassifier"),
        (save(tmp_path, cli.make_model(LogisticRegression()).fit(X, y)),
         "holds a Pipeline, not a pipeline ending in BackpropMLPClassifier"),
        (save(tmp_path, small_pipeline()), "holds an unfitted pipeline"),
        (save(tmp_path, quiet_fit(small_pipeline(), X.to_numpy(), y)),
         "fitted without column names"),
    ]
    for model_path, message in cases:
        code, out, err = run(capsys, "predict", model_path, iris_csv)
        assert code == 1, message
        assert out == ""
        assert err.startswith("python -m skbackprop predict: error: ")
        assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "make_text, message",
    [
        (lambda X: "", "is empty"),
        (lambda X: X.iloc[:0].to_csv(index=False), "has a header line but no data rows"),
        (lambda X: X.drop(columns=["sepal width (cm)", "petal width (cm)"]).to_csv(index=False),
         "lacks 2 of the feature columns the model was fitted on: 'sepal width (cm)', "
         "'petal width (cm)'"),
        (lambda X: X.assign(**{"sepal width (cm)": "wide"}).to_csv(index=False),
         "feature columns must be numeric, but 1 is not: 'sepal width (cm)' (e.g. 'wide')"),
    ],
)
def test_predict_data_errors(iris, model_file, tmp_path, capsys, make_text, message):
    data = write(tmp_path, "new.csv", make_text(iris.drop(columns="species").head(5)))
    code, out, err = run(capsys, "predict", model_file, data)
    assert code == 1 and out == ""
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # numpy's, on the way
def test_predict_reports_values_the_model_cannot_take(iris, model_file, tmp_path, capsys):
    data = tmp_path / "huge.csv"
    huge = iris.drop(columns="species").head(3).assign(**{"sepal length (cm)": 1.7e308})
    huge.to_csv(data, index=False)  # finite, but not once standardised
    code, out, err = run(capsys, "predict", model_file, data)
    assert code == 1 and out == ""
    assert "prediction failed: Input X contains infinity" in err


def test_predict_missing_data_file(model_file, tmp_path, capsys):
    code, _, err = run(capsys, "predict", model_file, tmp_path / "none.csv")
    assert code == 1 and "none.csv: no such file" in err


def test_without_pandas_the_commands_say_how_to_get_it(iris_csv, model_file, tmp_path,
                                                       monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes ``import pandas`` fail
    for argv in (["fit", iris_csv, "--target", "species", "--out", tmp_path / "m.joblib"],
                 ["predict", model_file, iris_csv]):
        code, _, err = run(capsys, *argv)
        assert code == 1
        assert "pip install pandas" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------- demo


def test_no_command_and_demo_command_run_the_demo(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run_demo", lambda: calls.append("demo"))
    assert cli.main([]) == 0
    assert cli.main(["demo"]) == 0
    assert calls == ["demo", "demo"]


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "fit", "predict"):
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE)
