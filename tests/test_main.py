"""Tests of the demo behind ``python -m skbackprop``.

Most tests run a miniature of the demo (a few hundred digits, a small
network, two folds) through the same functions as the real one.
"""

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skbackprop import __main__ as cli

SMALL = {"hidden_layer_sizes": (16,), "max_iter": 30}
LEARNING_RATES = (0.003, 0.03)


def run_small(**overrides):
    """Run a miniature demo; return its result and its printed text."""
    kwargs = dict(
        learning_rates=LEARNING_RATES,
        cv=2,
        n_jobs=2,
        n_samples=300,
        classifier_params=SMALL,
    )
    kwargs.update(overrides)
    out = io.StringIO()
    result = cli.run_demo(out=out, **kwargs)
    return result, out.getvalue()


def table_under(text, title, n_rows):
    """The first ``n_rows`` rows of the table printed after the line holding
    ``title``, each split into words."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rule = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("---"))
    return [line.split() for line in lines[rule + 1 : rule + 1 + n_rows]]


@pytest.fixture(scope="module")
def small_demo():
    return run_small()


def test_search_table_has_one_row_per_learning_rate(small_demo):
    result, text = small_demo
    rows = table_under(text, "Search results", len(LEARNING_RATES))
    assert [float(row[0]) for row in rows] == list(LEARNING_RATES)
    results = result.search.cv_results_
    for row, mean, std, rank in zip(
        rows, results["mean_test_score"], results["std_test_score"], results["rank_test_score"]
    ):
        accuracy, spread = float(row[1]), float(row[2])
        assert 0 <= accuracy <= 1 and 0 <= spread <= 1
        assert accuracy == pytest.approx(mean, abs=5e-5)
        assert spread == pytest.approx(std, abs=5e-5)
        assert int(row[3]) == rank
        assert row[5] == "s" and float(row[4]) >= 0  # mean fit time, in seconds
    assert {int(row[3]) for row in rows} <= {1, 2}


def test_table_columns_are_aligned(small_demo):
    _, text = small_demo
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "mean fit time" in line)
    block = lines[header : header + 2 + len(LEARNING_RATES)]
    # Right-aligned numeric columns end at the same place on every line.
    assert len({len(line) for line in block}) == 1


def test_one_progress_line_per_fit(small_demo):
    _, text = small_demo
    fit_lines = [line for line in text.splitlines() if line.strip().startswith("fit ")]
    n_fits = len(LEARNING_RATES) * 2
    assert len(fit_lines) == n_fits
    counters = [line.split()[1] for line in fit_lines]
    assert counters == [f"{i}/{n_fits}" for i in range(1, n_fits + 1)]
    for lr in LEARNING_RATES:
        assert sum(f"learning_rate_init={lr:g} " in line for line in fit_lines) == 2
    for line in fit_lines:
        assert 0 <= float(line.split("fold accuracy")[1].split()[0]) <= 1
        assert ("(stopped at max_iter)" in line) == (" epochs  30 " in line)
    # Stages are numbered and come in order.
    stages = [line[:5] for line in text.splitlines() if line.startswith("[")]
    assert stages == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]


def test_test_set_comparison(small_demo):
    result, text = small_demo
    best_lr = result.search.best_params_["mlp__learning_rate_init"]
    assert best_lr in LEARNING_RATES
    assert f"learning_rate_init={best_lr:g}" in text.split("[4/4]")[1].splitlines()[0]
    names = [score.name for score in result.scores]
    assert names == ["skbackprop BackpropMLPClassifier", "sklearn MLPClassifier"]
    rows = table_under(text, "[4/4]", 2)
    for row, score in zip(rows, result.scores):
        assert 0 <= score.accuracy <= 1
        assert score.fit_time > 0
        assert float(row[-4]) == pytest.approx(score.accuracy, abs=5e-5)
        assert int(row[-3]) == score.n_iter
    # Same initial weights, same sample order, same arithmetic: same model.
    ours, theirs = result.scores
    assert ours.n_iter == theirs.n_iter
    assert ours.accuracy == pytest.approx(theirs.accuracy)
    assert result.agreement == 1.0
    assert "same class for 75 of 75 test digits" in text


def test_data_split_is_stratified_and_deterministic():
    X_train, X_test, y_train, y_test = cli.load_data()
    assert (len(X_train), len(X_test)) == (1347, 450)
    assert X_train.shape[1] == 64
    again = cli.load_data()
    assert (again[1] == X_test).all() and (again[3] == y_test).all()
    y = np.concatenate([y_train, y_test])
    for digit in range(10):  # stratified: each digit keeps a quarter of its images in test
        assert abs((y_test == digit).sum() - 0.25 * (y == digit).sum()) <= 1
    assert len(cli.load_data(n_samples=200)[0]) == 150


def test_only_convergence_warnings_are_silenced():
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # max_iter=2 stops every fit early (ConvergenceWarning); a batch larger
        # than the data makes both classifiers warn with a UserWarning.
        _, text = run_small(classifier_params={**SMALL, "max_iter": 2, "batch_size": 10_000})
    categories = {type(w.message) for w in caught}
    assert ConvergenceWarning not in categories
    assert UserWarning in categories
    assert "(stopped at max_iter)" in text  # the fit lines still tell which fits stopped early
    assert warnings.filters == before  # the demo's filter is gone afterwards
    with pytest.warns(ConvergenceWarning):
        warnings.warn("still shown outside the demo", ConvergenceWarning)


def test_the_fit_lines_tell_which_fits_diverged():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # 1e300 makes both folds diverge; 0.03 stops them at max_iter
        result, text = run_small(learning_rates=(1e300, 0.03))
    assert not [w for w in caught if w.category is ConvergenceWarning]
    fit_lines = [line for line in text.splitlines() if line.lstrip().startswith("fit ")]
    assert len(fit_lines) == 4
    for line in fit_lines:
        assert line.endswith("(diverged)") == ("learning_rate_init=1e+300" in line), line
    assert result.search.best_params_ == {"mlp__learning_rate_init": 0.03}


def test_format_table_aligns_text_left_and_numbers_right():
    lines = cli.format_table(["name", "value"], [["a", "1.5"], ["long name", "10.25"]])
    assert lines == [
        "name       value",
        "---------  -----",
        "a            1.5",
        "long name  10.25",
    ]


def test_main_runs_the_full_demo_and_returns_0(capsys):
    # The real thing, defaults and all: a few seconds on two cores.
    assert cli.main([]) == 0
    text = capsys.readouterr().out
    rows = table_under(text, "Search results", len(cli.LEARNING_RATES))
    assert [float(row[0]) for row in rows] == list(cli.LEARNING_RATES)
    assert all(0 <= float(row[1]) <= 1 for row in rows)
    assert sum(1 for line in text.splitlines() if line.strip().startswith("fit ")) == 15
    for row in table_under(text, "[4/4]", 2):
        assert 0.9 < float(row[-4]) <= 1  # an MLP reads these digits well
    assert "450 test digits" in text


def test_main_rejects_unknown_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--no-such-option"])
    assert exit_info.value.code == 2
    assert "usage: python -m skbackprop" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    completed = subprocess.run(
        [sys.executable, "-m", "skbackprop", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0
    assert completed.stdout.startswith("usage: python -m skbackprop")
    assert "MLPClassifier" in completed.stdout
