"""Fits, BLAS thread limits and helper threads under concurrency: fits in
threads next to a user's ``threadpool_limits``, children made by ``fork``
while another thread trains, and helpers whose own bookkeeping fails."""

import multiprocessing
import threading
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from skbackprop import BackpropMLPClassifier, _fast
from skbackprop._fast import ThreadPlan, Workers, training_threads
from helpers import blas_limits_now


def _with(limits, n):
    return [(path, n) for path, _ in limits]


@pytest.fixture(scope="module")
def small_data():
    return make_classification(n_samples=120, n_features=6, n_classes=3, n_informative=4,
                               random_state=0)


def _small_fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BackpropMLPClassifier((5,), max_iter=2, random_state=0).fit(*data)


class _BlockInAnotherThread:
    """A ``training_threads`` block with ``blas_threads=request``, open on a
    thread of its own from ``__enter__`` to ``__exit__`` (no timing involved)."""

    def __init__(self, request):
        self.request, self.opened, self.close = request, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with training_threads(ThreadPlan(1, 1, self.request)):
            self.opened.set()
            self.close.wait(timeout=60)

    def __enter__(self):
        self.thread.start()
        assert self.opened.wait(timeout=60)
        return self

    def __exit__(self, *exc_info):
        self.close.set()
        self.thread.join(timeout=60)


# ----------------------------------------------- a user's limit around a fit


@pytest.mark.parametrize("other_request", [None, 2])
def test_a_users_limit_holds_after_a_fit_while_another_threads_fit_is_open(
        blas_limits, small_data, other_request):
    """``with threadpool_limits(1): clf.fit(...)`` while a fit that asks for
    two BLAS threads (or leaves BLAS as it is) runs in another thread. The
    fit used to end by putting back the limits from before the user's block
    (or the other fit's two), so BLAS ran on two threads for the rest of
    the block, and the next fit in it planned for two."""
    with _BlockInAnotherThread(other_request):
        with threadpool_limits(limits=1, user_api="blas"):
            _small_fit(small_data)
            assert blas_limits_now() == _with(blas_limits, 1)
            assert _fast._blas_thread_limit() == 1
            _small_fit(small_data)
            assert blas_limits_now() == _with(blas_limits, 1)
        assert blas_limits_now() == blas_limits
    assert blas_limits_now() == blas_limits


def test_a_limit_set_while_another_threads_fit_is_open_outlives_that_fit(blas_limits):
    """A limit set for good (``threadpool_limits(1)`` not used as a context)
    while a fit trains in another thread holds after that fit ends."""
    with _BlockInAnotherThread(None):
        threadpool_limits(limits=1, user_api="blas")
    assert blas_limits_now() == _with(blas_limits, 1)


def test_a_fit_asks_for_no_more_blas_threads_than_the_users_limit(blas_limits):
    """A request above a limit the user set (a plan made before it) is held
    to the limit; leaving the block puts the user's limit back."""
    with threadpool_limits(limits=1, user_api="blas"):
        with training_threads(ThreadPlan(1, 1, 2)):
            assert blas_limits_now() == _with(blas_limits, 1)
        assert blas_limits_now() == _with(blas_limits, 1)
    assert blas_limits_now() == blas_limits


# ------------------------------------------------------- fork while training


def _fork_child(data, pipe):
    try:
        _small_fit(data)
        pipe.send((blas_limits_now(), len(_fast._blas_requests)))
    except BaseException as error:  # noqa: BLE001 -- reported to the parent
        pipe.send(repr(error))
    finally:
        pipe.close()


def _answer_of_fork_child(target, *args, timeout=60):
    """Run ``target(*args, pipe)`` in a child made by ``fork``; returns what
    it sent on the pipe, or None if it sent nothing within ``timeout``
    seconds (it is then killed)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(*args, send), daemon=True)
    child.start()
    send.close()
    answer = receive.recv() if receive.poll(timeout) else None
    child.join(timeout=60 if answer is not None else 0)
    if child.is_alive():
        child.kill()
        child.join()
    return answer


def _run_in_fork_child(data):
    """Run a small fit in a child made by ``fork``: what it sent, or None."""
    return _answer_of_fork_child(_fork_child, data)


@contextmanager
def _held_in_another_thread(lock):
    """Within the block, another thread holds ``lock`` (a context manager)."""
    holding, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            holding.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        assert holding.wait(timeout=60)
        yield
    finally:
        release.set()
        holder.join(timeout=60)


needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)


@needs_fork
def test_a_fork_child_drops_the_blas_requests_of_the_parents_other_threads(
        blas_limits, small_data):
    """A child forked while another thread of the parent trains with one
    BLAS thread: that thread does not exist in the child, but its request
    did, and held the child's BLAS on one thread for good."""
    with _BlockInAnotherThread(1):
        assert blas_limits_now() == _with(blas_limits, 1)
        answer = _run_in_fork_child(small_data)
    assert answer == (blas_limits, 0)
    assert blas_limits_now() == blas_limits


@needs_fork
def test_a_fork_while_another_thread_holds_the_blas_lock_does_not_hang_the_child(
        blas_limits, small_data):
    """A child forked while another thread updates the BLAS limits (holds
    the lock of the requests) inherits the lock held, by a thread it does not
    have: its first fit used to wait for it for ever."""
    with _held_in_another_thread(_fast._blas_lock):
        answer = _run_in_fork_child(small_data)
    assert answer == (blas_limits, 0)


def _send_ok(pipe):
    pipe.send("ok")
    pipe.close()


@contextmanager
def _fit_holding(lock):
    """A fit's ``training_threads`` block (one BLAS thread), holding ``lock``."""
    with training_threads(ThreadPlan(1, 1, 1)), lock:
        yield


@needs_fork
def test_a_fork_while_another_threads_fit_holds_threadpoolctls_lock_does_not_hang():
    """The fork hook must not set limits: that takes threadpoolctl's own lock
    (3.8 and later), which another thread of the parent may hold at the fork,
    and the child would hang in ``fork`` itself."""
    lock = getattr(getattr(_fast.OpenBLASController, "_SHARED_STATE", None), "lock", None)
    if lock is None:
        pytest.skip("this threadpoolctl has no shared OpenBLAS lock")
    with _held_in_another_thread(_fit_holding(lock)):
        answer = _answer_of_fork_child(_send_ok, timeout=20)
    assert answer == "ok"


def _map_in_child(workers, pipe):
    pipe.send(workers.map(_square, range(5)))
    pipe.close()


@needs_fork
def test_a_fork_child_runs_a_map_of_its_parents_workers_itself():
    """A child forked while a fit's Workers exist (from a callback, say) has
    no helper threads: its maps used to wait for ever for their answers."""
    with Workers(2) as workers:
        answer = _answer_of_fork_child(_map_in_child, workers, timeout=20)
        assert workers.map(_square, range(5)) == [0, 1, 4, 9, 16]  # the parent's helpers
    assert answer == [0, 1, 4, 9, 16]


# ------------------------------------------------- helpers that fail oddly


def _square(k):
    return k * k


def test_a_helper_whose_bookkeeping_fails_still_answers(monkeypatch):
    """A MemoryError can come from any allocation, the helper's own included
    (here: setting up the caller's floating-point settings). The helper used
    to die without answering, and the map waited for ever."""
    real_errstate = np.errstate
    with Workers(2) as workers:

        def errstate(**settings):
            if threading.current_thread() in workers.threads:
                raise MemoryError("simulated")
            return real_errstate(**settings)

        monkeypatch.setattr(np, "errstate", errstate)
        outcome = []

        def run_map():
            try:
                outcome.append(workers.map(_square, range(4)))
            except BaseException as error:  # noqa: BLE001 -- checked below
                outcome.append(error)

        runner = threading.Thread(target=run_map, daemon=True)
        runner.start()
        runner.join(timeout=30)
        assert not runner.is_alive(), "the map waits for an answer that never comes"
        assert isinstance(outcome[0], MemoryError)
        monkeypatch.setattr(np, "errstate", real_errstate)
        assert workers.map(_square, range(4)) == [0, 1, 4, 9]  # the helper lives on
    assert not any(thread.is_alive() for thread in workers.threads)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_in_threads_equal_serial_fits_and_leave_no_thread(monkeypatch, small_data,
                                                              blas_limits):
    """Fits with two shards (forced on small data), each solver, run at once
    in threads: the numbers of serial fits, no helper thread left, BLAS
    limits as before."""
    monkeypatch.setattr(_fast, "ONE_THREAD_WORK", 0)
    monkeypatch.setattr(_fast, "SHARD_VALUES", 0)
    assert _fast.thread_plan([6, 5, 3], 60).n_shards == 2
    configs = [dict(solver="adam"), dict(solver="sgd"), dict(solver="lbfgs"),
               dict(solver="adam", early_stopping=True, validation_fraction=0.25)]

    def fit(config):  # (warnings.catch_warnings is not safe in threads)
        return BackpropMLPClassifier((5,), max_iter=3, batch_size=60, random_state=0,
                                     **config).fit(*small_data)

    before = set(threading.enumerate())
    serial = [fit(config) for config in configs]
    together, fitted = threading.Barrier(len(configs), timeout=60), [None] * len(configs)

    def run(k):
        try:
            together.wait()
            fitted[k] = fit(configs[k])
        except BaseException as error:  # noqa: BLE001 -- checked below
            fitted[k] = error
            together.abort()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(configs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for one, other in zip(serial, fitted):
        assert isinstance(other, BackpropMLPClassifier), other
        assert one.loss_curve_ == other.loss_curve_
        for a, b in zip(one.coefs_ + one.intercepts_, other.coefs_ + other.intercepts_):
            np.testing.assert_array_equal(a, b)
    assert set(threading.enumerate()) <= before
    assert blas_limits_now() == blas_limits
    assert not _fast._blas_requests


def _handler_in_job(k):
    import signal

    return signal.getsignal(signal.SIGINT)


def test_a_map_in_another_thread_leaves_the_sigint_handler_alone():
    """The Ctrl-C hold-back acts only in the main thread (only it gets
    SIGINT, and only it may set handlers): a map of a fit in another thread
    runs under Python's own handler, and leaves it so."""
    import signal

    seen = []

    def run():
        with Workers(2) as workers:
            seen.extend(workers.map(_handler_in_job, [0, 1]))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert seen == [signal.default_int_handler] * 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class _NoThreadsPickler:
    """``pickle.dumps`` that fails on a thread, a lock, a queue or a Workers."""

    @staticmethod
    def dumps(obj):
        import io
        import pickle
        import queue

        forbidden = (threading.Thread, type(threading.Lock()), type(threading.RLock()),
                     queue.SimpleQueue, Workers)

        class Pickler(pickle.Pickler):
            def reducer_override(self, value):
                if isinstance(value, forbidden):
                    raise AssertionError(f"a {type(value).__name__} is being pickled")
                return NotImplemented

        buffer = io.BytesIO()
        Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buffer.getvalue()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_model_trained_in_shards_pickles_without_threads_and_goes_on_identically(
        monkeypatch, small_data, early_stopping):
    """Trained with two shards on two threads (forced on small data), a model
    pickles with no thread, lock or queue in it; the copy predicts, goes on
    with partial_fit and with a warm_start fit exactly as the original."""
    import copy
    import pickle

    monkeypatch.setattr(_fast, "ONE_THREAD_WORK", 0)
    monkeypatch.setattr(_fast, "SHARD_VALUES", 0)
    X, y = small_data
    model = BackpropMLPClassifier((5,), max_iter=3, batch_size=60, random_state=0,
                                  early_stopping=early_stopping, validation_fraction=0.25)
    model.fit(X, y)
    model.set_params(early_stopping=False).partial_fit(X[:60], y[:60])
    copied = pickle.loads(_NoThreadsPickler.dumps(model))
    np.testing.assert_array_equal(copied.predict_proba(X), model.predict_proba(X))
    original = copy.deepcopy(model)
    for one, other in ((original, copied), (model, pickle.loads(pickle.dumps(model)))):
        if one is original:
            one.partial_fit(X[60:], y[60:])
            other.partial_fit(X[60:], y[60:])
        else:
            one.set_params(warm_start=True, early_stopping=early_stopping).fit(X, y)
            other.set_params(warm_start=True, early_stopping=early_stopping).fit(X, y)
        assert one.loss_curve_ == other.loss_curve_
        np.testing.assert_array_equal(one.predict_proba(X), other.predict_proba(X))
