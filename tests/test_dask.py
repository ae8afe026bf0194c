"""A grid search run on a Dask cluster scores exactly as one run locally.

Needs the ``dask`` extra (``pip install '.[dask]'``, also part of ``.[test]``);
skipped when ``distributed`` is not installed.
"""

import logging
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

CV = 3
PARAM_GRID = {"backpropmlpclassifier__learning_rate_init": [1e-3, 1e-2, 1e-1]}


@pytest.fixture(scope="module")
def digits_subset():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def make_search(n_jobs=None):
    pipeline = make_pipeline(
        StandardScaler(),
        BackpropMLPClassifier(hidden_layer_sizes=(20,), max_iter=50, random_state=0),
    )
    return GridSearchCV(
        pipeline, PARAM_GRID, cv=StratifiedKFold(CV), n_jobs=n_jobs, error_score="raise"
    )


def fit_quietly(search, X, y):
    # max_iter=50 is too few epochs for the smallest learning rate to converge;
    # that is fine for this test and the warning would only be noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X, y)


@pytest.fixture
def quiet_distributed_logs():
    """Keep the scheduler's and workers' INFO chatter out of the test output."""
    names = ["distributed", "distributed.scheduler", "distributed.worker", "distributed.nanny"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def test_grid_search_on_a_dask_cluster_matches_a_local_one(digits_subset, quiet_distributed_logs):
    X, y = digits_subset

    local = fit_quietly(make_search(n_jobs=2), X, y)

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,  # no dashboard
            # The scheduler still serves a few HTTP endpoints, by default on
            # port 8787, warning when that is taken (by another cluster, or a
            # parallel test run): a free port on the loopback interface instead.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # two worker processes, each training its own share of the 9 fits
        client.wait_for_workers(2, timeout=30)
        assert len(client.scheduler_info()["workers"]) == 2
        with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
            on_dask = fit_quietly(make_search(n_jobs=-1), X, y)
        # the fits really ran in the cluster's worker processes, on both of them
        assert len({task["worker"] for task in tasks.data}) == 2

    split_keys = [f"split{i}_test_score" for i in range(CV)]
    for key in [*split_keys, "mean_test_score", "rank_test_score"]:
        assert_array_equal(on_dask.cv_results_[key], local.cv_results_[key], err_msg=key)
    assert on_dask.best_params_ == local.best_params_
    assert on_dask.best_score_ == local.best_score_

    # the comparison is not vacuous: the candidates really differ and learn
    means = local.cv_results_["mean_test_score"]
    assert len(np.unique(means)) == len(PARAM_GRID["backpropmlpclassifier__learning_rate_init"])
    assert local.best_score_ > 0.85
