"""Fixtures shared by several test modules."""

import faulthandler
import os

import pytest
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from helpers import blas_limits_now


#: A test that runs longer than this hangs: the run then stops, printing
#: every thread's traceback, instead of waiting for ever (code that makes
#: threads wait for each other can hang when broken; no test takes a minute).
HANG_SECONDS = 300
_stderr = None  # the terminal's stderr, which pytest's output capture leaves alone


def pytest_configure(config):
    global _stderr
    _stderr = os.fdopen(os.dup(2), "w")


@pytest.fixture(autouse=True)
def _no_test_hangs():
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=_stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def iris():
    """The iris data, standardised: ``(X, y)`` with 150 rows and 3 classes.

    ``tests/test_cli.py`` defines its own ``iris`` (a DataFrame), which
    takes precedence there.
    """
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture
def blas_limits():
    """The BLAS thread limits before the test, put back after it whatever it
    did; skips unless threadpoolctl sees a BLAS that takes limits of 1 and 2."""
    before = blas_limits_now()
    if not before:
        pytest.skip("no BLAS library visible to threadpoolctl")
    for n in (1, 2):
        with threadpool_limits(limits=n, user_api="blas"):
            if any(threads != n for _, threads in blas_limits_now()):
                pytest.skip(f"this BLAS does not take a limit of {n} threads")
    with threadpool_limits(limits=None, user_api="blas"):  # sets nothing, restores on exit
        yield before
