"""The fused training objective: ``_network.objective``, computed in place.

This is the same mathematics as the reference functions in ``_network``
(``forward``, ``backward``, ``objective``), line for line, with four
changes that make training fast and nothing else:

* all weights and biases live in one flat vector ``theta`` (weights first,
  then biases, layer by layer), so that an optimizer step is a few
  whole-array operations, and the gradient is one flat vector too;
* every activation, delta and gradient is written into a buffer allocated
  once and reused by every minibatch (``out=`` and in-place ufuncs);
* a large batch is processed in blocks of ``block_rows`` rows whose
  gradients are summed: skinny matrix products run faster on blocks that
  fit in cache, and the activations of a full batch never exist at once;
* a large step with much elementwise work is cut into shards of rows
  computed at once on two threads (``thread_plan``, ``Workers``), and the
  optimizer updates the vector in parts on the same threads, which step
  through a whole epoch together (``FusedObjective.steps_in_lockstep``), so
  that the elementwise work runs on both cores, not only the matrix
  products.

``tests/test_fast.py`` holds it equal to ``_network.objective``. ``X`` may
be sparse: the input layer's two products then go through SciPy.
"""

import functools
import os
import queue
import signal
import threading
import time
from contextlib import contextmanager
from typing import NamedTuple, Optional

import numpy as np
from scipy import sparse
from threadpoolctl import OpenBLASController, ThreadpoolController

from ._losses import LOSSES, total_weight
from ._losses import softmax as reference_softmax
from ._optimizers import state_slice, whole_state

#: Rows per block of a large batch (a full batch of gradient descent, say),
#: and of a large prediction. On the benchmark machine 512 to 2048 were
#: equally fast for training, a whole 15000-row batch 25% slower; for
#: predicting 10,000 rows, 1024 was as fast as any size tried (512 to 4096).
BLOCK_ROWS = 1024

#: How a step of training is spread over the two cores of the machine these
#: numbers were measured on (``docs/performance.rst`` has the measurements).
#: Its size is counted two ways: ``work``, its multiply-adds (its rows times
#: the weights of all layers), and ``values``, the elementwise work: the
#: values of its activations and errors (its rows times the widths of all
#: layers but the input) plus the parameters the optimizer updates.
#:
#: * Below ``ONE_THREAD_WORK``, a step runs on one thread, BLAS included: its
#:   products are too small to gain much from a second thread, and lose much
#:   to one on a busy machine.
#: * A step with at least ``SHARD_VALUES`` values, and no more than
#:   ``WORK_PER_VALUE`` multiply-adds per value, is cut into ``N_SHARDS``
#:   shards of rows computed at once on as many threads, each with its own
#:   BLAS thread: the elementwise work (activations, derivatives, the
#:   optimizer) then runs on both cores, not only the products. This pays
#:   only when that work outweighs the cost of the threads meeting twice a
#:   step (these constants were measured when a step handed work to the
#:   threads three times, at about 80 µs each).
#: * Any other step runs on one thread, with BLAS's own threads for its
#:   products: those dominate, and BLAS hands work between its threads faster
#:   than Python can.
ONE_THREAD_WORK = 4e6
SHARD_VALUES = 5e5
WORK_PER_VALUE = 250
N_SHARDS = 2


class ThreadPlan(NamedTuple):
    """How training spreads over threads: see :func:`thread_plan`."""

    n_shards: int  #: shards of rows per step; this alone sets the arithmetic
    n_workers: int  #: Python threads that compute them
    blas_threads: Optional[int]  #: BLAS threads per worker (None: leave BLAS as it is)


def thread_plan(layer_sizes, batch_size, shardable=True, available=None):
    """The :class:`ThreadPlan` for steps of ``batch_size`` rows.

    The number of shards depends on the sizes alone, so that the results do
    too. ``available`` is the number of threads BLAS may use now (by default
    read with threadpoolctl, so that a limit set by the caller, such as
    joblib's in its workers, is respected): it sets only how many threads
    compute the shards. Data that cannot be sharded (sparse ``X``) keeps
    BLAS's own threading for steps that would be.
    """
    shapes = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    work = batch_size * sum(a * b for a, b in shapes)
    values = batch_size * sum(layer_sizes[1:]) + sum(a * b + b for a, b in shapes)
    if work < ONE_THREAD_WORK:
        return ThreadPlan(1, 1, 1)
    if not shardable or values < SHARD_VALUES or work > WORK_PER_VALUE * values:
        return ThreadPlan(1, 1, None)
    if available is None:
        available = _blas_thread_limit()
    n_workers = max(1, min(N_SHARDS, available))
    return ThreadPlan(N_SHARDS, n_workers, max(1, available // n_workers))


@functools.lru_cache(maxsize=None)
def _blas_libraries():
    """threadpoolctl's handle on the BLAS libraries loaded (NumPy's among
    them), made once: making it scans every loaded library, 2 ms a fit."""
    return ThreadpoolController().select(user_api="blas")


def _blas_thread_limit():
    info = _blas_libraries().info()
    return max((lib["num_threads"] for lib in info), default=os.cpu_count() or 1)


# BLAS's thread limit is one setting for the whole process, which fits
# running at once in threads share: were each to set it and put back what it
# found, one could put back a limit another had set, for good. So each open
# block of ``training_threads`` (in any thread, nested or not) files a request
# here; BLAS follows the smallest, and once no block asks for anything the
# limits go back to the *baseline*. The smallest, because fits that overlap
# share the cores anyway, and so that the limit depends only on which blocks
# are open, not on the order they opened or close in.
#
# The baseline is what the limits were as the first block opened, or what
# someone else (a user's ``threadpool_limits``, say, around a fit in another
# thread) set them to since the last update from here: an update that finds
# the limits other than it left them takes them as the new baseline, and no
# request raises a library above it. So a fit inside a user's limit of one
# thread, while another thread's fit is open, does not end with BLAS back on
# the limits from before the user's block, and a limit set while fits run
# holds (with the exceptions below).
#
# A request is filed with the thread it came from: a child made by ``fork``
# has only the thread that forked, and drops the requests of the others,
# which would otherwise hold its BLAS at their limit for good (see
# ``_forget_other_threads_requests``).
#
# Limits are told apart by value only: a limit that someone else sets to the
# value the registry last set goes unnoticed, and gives way to the baseline
# when the fits end. And threadpoolctl 3.8 or later obeys, for OpenBLAS, only
# the thread that controls it, so a fit in another thread may leave BLAS as
# that thread set it. Both are races between independent setters of one
# process-wide limit, which no registry here can settle.
_blas_lock = threading.Lock()
_blas_requests = []  # a _BlasRequest of every open block
_blas_baseline = None  # per library: the limits when no block asks for any
_blas_applied = None  # per library: the limits as the last update from here left them


class _BlasRequest:
    """One open block's request: ``n_threads`` (None asks nothing), and the
    thread that filed it. Compared by identity, so that equal requests of two
    blocks stay apart."""

    __slots__ = ("n_threads", "thread")

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.thread = threading.get_ident()


@contextmanager
def training_threads(plan):
    """Within the block, BLAS uses ``plan.blas_threads`` threads (fewer while
    a block open in another thread asks for fewer, or a limit set since by
    someone else is lower); yields the :class:`Workers` that run the shards."""
    request = _file_blas_request(plan.blas_threads)
    try:
        with Workers(plan.n_workers) as workers:
            yield workers
    finally:  # after an exception too
        _withdraw_blas_request(request)


def _file_blas_request(n_threads):
    """Files a request for ``n_threads`` BLAS threads (None: leave BLAS as
    it is) and applies the requests; returns it, for
    :func:`_withdraw_blas_request`."""
    request = _BlasRequest(n_threads)
    with _blas_lock:
        _note_limits_set_elsewhere()
        _blas_requests.append(request)
        _apply_blas_requests()
    return request


def _withdraw_blas_request(request):
    with _blas_lock:
        _blas_requests.remove(request)  # first: withdrawn even if what follows fails
        _note_limits_set_elsewhere()
        _apply_blas_requests()


def _blas_limits_now():
    return [lib.get_num_threads() for lib in _blas_libraries().lib_controllers]


def _note_limits_set_elsewhere():
    """Limits other than the last update left them were set by someone else
    (or none was made yet): they are the new baseline."""
    global _blas_baseline
    now = _blas_limits_now()
    if now != _blas_applied:
        _blas_baseline = now


def _apply_blas_requests():
    global _blas_applied
    wanted = [request.n_threads for request in _blas_requests
              if request.n_threads is not None]
    for lib, baseline in zip(_blas_libraries().lib_controllers, _blas_baseline):
        if baseline is None:  # the library does not tell its limit
            continue
        lib.set_num_threads(min(wanted + [baseline]))
    # threadpoolctl 3.8 obeys, for OpenBLAS on pthreads, only the thread that
    # set a limit first, until it lets go: let go, so that the next update may
    # come from any thread (this does nothing if another thread holds control).
    let_go = getattr(OpenBLASController, "clear_controlling_thread", None)  # 3.8 and later
    if let_go is not None:
        let_go()
    _blas_applied = _blas_limits_now()  # what BLAS took (another thread may hold control)


def _forget_other_threads_requests():
    """In a child made by ``fork``: only the forking thread lives on, so the
    requests of blocks open in other threads are dropped, and the lock, which
    another thread may have held at the fork, is made anew. The limits follow
    at the child's next update (its next fit); they are not set here, since
    setting them takes threadpoolctl's own lock, which another thread of the
    parent may have held at the fork too, and would hang the child in
    ``fork``."""
    global _blas_lock
    _blas_lock = threading.Lock()
    me = threading.get_ident()
    _blas_requests[:] = [request for request in _blas_requests if request.thread == me]


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_other_threads_requests)


class Workers:
    """A few threads that run independent jobs at once: ``map(function,
    items)`` runs the items ``j, j + n, j + 2n, ...`` on thread ``j`` of
    ``n = n_threads``, thread 0 being the caller, and returns the results in
    order. NumPy's array arithmetic and BLAS release the GIL, so the jobs
    really do overlap.

    The helper threads live as long as the ``with`` block and wait for work
    on a queue, which costs less Python per hand-off than a
    ``ThreadPoolExecutor``'s futures (a C2 step 2-3% faster when it took
    three hand-offs, ``docs/performance.rst``). ``lockstep(jobs)`` runs jobs
    that meet at points of their own, such as the steps of an epoch, in one
    hand-off.

    In a child made by ``fork`` (from a callback, say, during a fit) the
    helper threads do not exist: there the caller runs every item itself,
    which gives the same numbers.
    """

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.pid = os.getpid()  # the process whose threads these are
        self.answers = queue.SimpleQueue()  # (map, j, results, failure) of each helper
        self.inboxes = [queue.SimpleQueue() for _ in range(n_threads - 1)]
        self.running = [None] * (n_threads - 1)  # the map whose job helper j runs, if any
        self.maps = 0  # maps so far: an answer names its map, so a stale one is known
        self.held_ctrl_c = ()  # during a map, the Ctrl-Cs it holds back (see lockstep)
        self.threads = [threading.Thread(target=_help, args=(self, j), daemon=True)
                        for j in range(1, n_threads)]
        for thread in self.threads:
            thread.start()

    def map(self, function, items, on_failure=None):
        """``[function(item) for item in items]``, spread over the threads.
        ``on_failure()``, if given, is called as soon as any job fails (or is
        interrupted), so that jobs waiting for each other can stop (see
        :meth:`lockstep`); it must be safe to call more than once."""
        items = list(items)
        if not self.threads or len(items) == 1 or os.getpid() != self.pid:
            return [function(item) for item in items]
        n, settings = self.n_threads, np.geterr()  # the caller's np.errstate, for the helpers
        self.maps += 1
        helped = range(1, min(n, len(items)))
        results, failures = [None] * len(items), []
        # a Ctrl-C goes up after the map, never in its middle; the caller's
        # jobs may look at self.held_ctrl_c to end sooner (see lockstep)
        with _ctrl_c_held() as self.held_ctrl_c:
            handed, done = [], False  # the helpers given a job; the caller's jobs ran
            try:
                for j in helped:
                    self.inboxes[j - 1].put((self.maps, function, items[j::n], settings,
                                             on_failure))
                    handed.append(j)
                results[::n] = [function(item) for item in items[::n]]
                done = True
            finally:  # no job outlives the call: they write into shared arrays
                try:
                    self._gather(handed, results, failures, on_failure, caller_failed=not done)
                finally:
                    self.held_ctrl_c = ()
        if failures:  # raised only if the caller's own jobs did not raise
            raise min(failures, key=lambda failure: failure[0])[1]
        return results

    def lockstep(self, jobs):
        """Run the generators ``jobs`` at once, job ``k`` on thread ``k``
        (0: the caller), in lockstep: every ``yield`` of a job is a meeting
        point, which no job leaves before all have reached it. Every job
        must yield equally often. Returns the jobs' return values, in order.

        The jobs are handed out once, however often they meet, and a meeting
        costs only the wait for the last job to arrive. A failing job makes
        the others stop at their next meeting point, and its exception goes
        up. A Ctrl-C held back during the jobs (see :func:`_ctrl_c_held`)
        stops them all at the caller's job's next meeting point, and then
        goes up as ``KeyboardInterrupt``.

        With fewer threads than jobs, or in a child made by ``fork``, the
        caller runs the jobs itself, in turn, from one meeting point to the
        next: the same numbers.
        """
        if len(jobs) == 1 or len(jobs) > self.n_threads or os.getpid() != self.pid:
            return _in_turn(jobs)
        meetings = _Meetings(len(jobs))

        def run(k):
            held_ctrl_c = self.held_ctrl_c if k == 0 else ()  # the caller's, during the map
            return _run_in_lockstep(jobs[k], meetings, held_ctrl_c)

        # whatever fails, wherever (even before a job starts), frees the
        # jobs that wait for it at a meeting
        return self.map(run, range(len(jobs)), on_failure=meetings.barrier.abort)

    def _gather(self, handed, results, failures, on_failure, caller_failed):
        """The answers of the helpers ``handed`` a job of this map, into
        ``results`` and ``failures``. A Ctrl-C is held back during a map of
        the main thread (see :func:`_ctrl_c_held`); when it cannot be
        (another SIGINT handler is set), a Ctrl-C while waiting goes up once
        no helper seems to have work of this map left, and the answer of an
        interrupted map is dropped by the next, which knows it by its
        number. ``on_failure`` is called first if the caller's own jobs
        failed, and while waiting after a Ctrl-C: the helpers' jobs may be
        waiting for the caller's."""
        if caller_failed and on_failure is not None:
            on_failure()
        n, waiting = self.n_threads, set(handed)
        try:
            while waiting:
                number, j, answers, failure = self.answers.get()
                if number != self.maps:
                    continue  # left by an earlier map that a Ctrl-C ended
                waiting.discard(j)
                if failure is None:
                    results[j::n] = answers
                else:  # the map raises: its results do not matter
                    failures.append(failure)
        except KeyboardInterrupt:
            # Polling state, not taking answers: an interrupt cannot lose one.
            while True:
                try:
                    if not any((self.running[j - 1] == self.maps
                                or not self.inboxes[j - 1].empty())
                               and self.threads[j - 1].is_alive() for j in waiting):
                        break
                    if on_failure is not None:
                        on_failure()
                    time.sleep(0.001)
                except KeyboardInterrupt:
                    pass
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for inbox in self.inboxes:
            inbox.put(None)
        for thread in self.threads:
            thread.join()


class _Meetings:
    """What the jobs of one :meth:`Workers.lockstep` share."""

    def __init__(self, n_jobs):
        self.barrier = threading.Barrier(n_jobs)
        self.stop_at = None  # the meeting at which a held-back Ctrl-C stops every job
        self.ended_at = []  # the meeting at which each job that ended did (its end is one)


_UNEQUAL = "the jobs of a lockstep yielded unequally often"


def _run_in_lockstep(job, meetings, held_ctrl_c):
    """Run the generator ``job`` of :meth:`Workers.lockstep` to its end,
    waiting at ``meetings.barrier`` after each of its yields, and after its
    end: return what it returns (None if it was stopped).

    ``held_ctrl_c`` becomes non-empty once a Ctrl-C is held back (for the
    caller's job only): that job then sets the meeting at which every job
    stops, before it waits there, so that every job sees it on leaving that
    meeting and none has gone past it. Whatever a job records, it records
    before it waits, under the number of that meeting: a job that has left a
    meeting may record the next one's before a slower job has read this
    one's. A job that fails, wherever it fails, breaks the barrier through
    ``map``'s ``on_failure``, which frees the others."""
    count, result, ended = 0, None, False
    try:
        while not ended:
            try:
                next(job)
            except StopIteration as end:
                result, ended = end.value, True
                meetings.ended_at.append(count + 1)
            count += 1
            if held_ctrl_c and meetings.stop_at is None:
                meetings.stop_at = count
            try:
                meetings.barrier.wait()
            except threading.BrokenBarrierError:
                return None  # another job failed: its exception goes up
            if 0 < meetings.ended_at.count(count) < meetings.barrier.parties:
                raise RuntimeError(_UNEQUAL)
            if meetings.stop_at == count:
                return None
        return result
    finally:
        job.close()


def _in_turn(jobs):
    """Run the generators of :meth:`Workers.lockstep` on the calling thread:
    each job from one meeting point to the next, then the next job."""
    results, ended = [None] * len(jobs), []
    try:
        while not ended:
            for k, job in enumerate(jobs):
                try:
                    next(job)
                except StopIteration as end:
                    results[k] = end.value
                    ended.append(k)
        if len(ended) < len(jobs):
            raise RuntimeError(_UNEQUAL)
    finally:
        for job in jobs:
            job.close()
    return results


@contextmanager
def _ctrl_c_held():
    """Within the block, a Ctrl-C (SIGINT) is recorded, and raised as
    KeyboardInterrupt when the block ends. A KeyboardInterrupt can otherwise
    arise between any two bytecodes, and no placement of them lets a map
    both hand out its jobs and wait for all of them whatever that moment
    is. Only Python's own SIGINT handler, in the main thread, is held back
    (others, and other threads, are left alone); the cost is two calls to
    ``signal.signal`` a map, about 2 µs. Yields the list of the signals held
    back so far (which stays empty when none are held back)."""
    caught = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield caught
        return
    signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


def _help(workers, j):
    """Helper thread ``j`` of :class:`Workers`. It runs the items it is
    handed in order and answers ``(map, j, results, failure)``: ``failure``
    is None, or ``(index of the failed item in items, exception)`` of the
    first failure, after which that job's remaining items are not run (and
    ``results`` may be None). Whatever fails, its own bookkeeping included
    (a MemoryError can come from any allocation), it answers: a job that
    went unanswered would keep the map waiting for good."""
    inbox, n = workers.inboxes[j - 1], workers.n_threads
    while (job := inbox.get()) is not None:
        number, function, items, settings, on_failure = job
        workers.running[j - 1] = number
        results, failure, k = None, None, 0
        try:
            results = [None] * len(items)
            with np.errstate(**settings):
                for k, item in enumerate(items):
                    results[k] = function(item)
        except BaseException as error:  # noqa: BLE001 -- the caller raises it
            failure = (j + k * n, error)
        try:
            if failure is not None and on_failure is not None:
                on_failure()  # the caller's job may be waiting for this one's
        finally:
            workers.answers.put((number, j, results, failure))
            workers.running[j - 1] = None


def _even_parts(n, k):
    """``k`` consecutive ``(start, stop)`` ranges covering ``range(n)``, of
    sizes differing by at most one."""
    bounds = [n * i // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def flat_layout(layer_sizes):
    """Where each layer's weights and biases sit in the flat vector.

    Returns ``(coef_slots, intercept_slots, n_params)``: lists of
    ``(start, stop, shape)``, weights of every layer first, then the biases,
    so that all the weights form one contiguous block ``theta[:n_weights]``.
    """
    shapes = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    coef_slots, intercept_slots, start = [], [], 0
    for fan_in, fan_out in shapes:
        coef_slots.append((start, start + fan_in * fan_out, (fan_in, fan_out)))
        start += fan_in * fan_out
    for _, fan_out in shapes:
        intercept_slots.append((start, start + fan_out, (fan_out,)))
        start += fan_out
    return coef_slots, intercept_slots, start


def flat_views(theta, layer_sizes):
    """``coefs`` and ``intercepts`` as views into the flat vector ``theta``."""
    coef_slots, intercept_slots, _ = flat_layout(layer_sizes)
    coefs = [theta[a:b].reshape(shape) for a, b, shape in coef_slots]
    intercepts = [theta[a:b].reshape(shape) for a, b, shape in intercept_slots]
    return coefs, intercepts


def flatten(coefs, intercepts, dtype):
    """A new flat vector holding copies of ``coefs`` and ``intercepts``."""
    return np.concatenate([a.ravel() for a in coefs + intercepts]).astype(dtype, copy=False)


# Each activation applied in place to the pre-activation Z, and each
# derivative (from the output A) multiplied in place into the error dA.
# ``scratch`` is a buffer shaped like A. ``zero`` is 0, or (faster) an array
# of zeros shaped like Z: NumPy vectorises ``maximum`` between two arrays,
# but not against a scalar (3x slower here). ``greater`` is the other way
# round: against the scalar 0, 16.5 µs for 128 x 512 values, against 19.2.


def _relu(Z, zero):
    np.maximum(Z, zero, out=Z)


def _tanh(Z, zero):
    np.tanh(Z, out=Z)


def _logistic(Z, zero=0):
    # 1 / (1 + exp(-z)): accurate in both tails; exp(-z) may overflow to inf
    # for z < -709, giving the correct 0 (the caller ignores the warning).
    np.negative(Z, out=Z)
    np.exp(Z, out=Z)
    Z += 1
    np.divide(1, Z, out=Z)  # twice as fast as np.reciprocal, which is not vectorised


def _identity(Z, zero):
    pass


def _relu_times(dA, A, scratch, zero):
    np.greater(A, 0, out=scratch)  # step(A), as 0.0/1.0: a multiply beats a boolean mask
    dA *= scratch


def _tanh_times(dA, A, scratch, zero):
    np.multiply(A, A, out=scratch)
    np.subtract(1, scratch, out=scratch)  # 1 - A**2
    dA *= scratch


def _logistic_times(dA, A, scratch, zero):
    np.subtract(1, A, out=scratch)
    scratch *= A  # A (1 - A)
    dA *= scratch


def _identity_times(dA, A, scratch, zero):
    pass


IN_PLACE_ACTIVATIONS = {"relu": _relu, "tanh": _tanh, "logistic": _logistic, "identity": _identity}
IN_PLACE_DERIVATIVES = {
    "relu": _relu_times, "tanh": _tanh_times, "logistic": _logistic_times,
    "identity": _identity_times,
}


#: A prediction's block holds at least ``BLOCK_ROWS`` rows, and more when
#: its widest layer is narrow: up to this many values. For 10,000 rows, one
#: block through a (10,) network took 255 µs, blocks of 1024 rows 375 µs;
#: through (100,), blocks of 4096 rows 1.41 ms, of 1024 rows 1.62 ms.
PREDICT_BLOCK_VALUES = 2**19


def prediction_block_rows(coefs):
    """Rows per block of a prediction through the layers ``coefs``."""
    widest = max(W.shape[1] for W in coefs)
    return max(BLOCK_ROWS, PREDICT_BLOCK_VALUES // widest)


def predict_logits(X, coefs, intercepts, activation, block_rows=None):
    """The output logits, as ``_network.predict_logits`` computes them.

    More than ``block_rows`` rows (by default
    :func:`prediction_block_rows`) go through the network a block at a time,
    so that a block's activations are still in cache when the next layer
    reads them (10,000 rows through the benchmark's (512, 512) network: 10%
    faster than whole-array layers), and the hidden activations of all the
    rows never exist at once. ``X`` may be sparse. Every call allocates its
    own arrays, so concurrent predictions share nothing.
    """
    block_rows = prediction_block_rows(coefs) if block_rows is None else block_rows
    if X.shape[0] <= block_rows:  # X itself, not a copy of a slice (sparse X); 0 rows too
        return _logits_of_block(X, coefs, intercepts, activation)
    return np.concatenate([
        _logits_of_block(X[start : start + block_rows], coefs, intercepts, activation)
        for start in range(0, X.shape[0], block_rows)
    ])


def _logits_of_block(X, coefs, intercepts, activation):
    """The logits of the rows of ``X``, with each layer's bias and activation
    applied in place: one new array per layer instead of three."""
    activate = IN_PLACE_ACTIVATIONS[activation]
    A = X
    # exp(-z) -> inf gives the correct sigmoid 0; and a layer whose values
    # overflowed gives the next inf - inf = NaN, which the estimator refuses
    # (non-finite outputs) with a ValueError, not a warning
    with np.errstate(over="ignore", invalid="ignore"):
        for i, (W, b) in enumerate(zip(coefs, intercepts)):
            Z = A @ W
            Z += b
            if i < len(coefs) - 1:
                activate(Z, 0)
            A = Z
    return A


#: How far apart a block's logits may be for one shift to serve them all:
#: exp(-spread) stays a normal number (exp underflows near -708 in float64,
#: -87 in float32).
SHIFT_SPREAD = {np.dtype(np.float64): 600.0, np.dtype(np.float32): 60.0}


def _shift_logits(Z, column):
    """Subtract from ``Z`` a shift that keeps ``exp(Z)`` from overflowing;
    return whether a shifted logit may have become ``-inf``.

    Any shift gives the same softmax and loss. Each row's own maximum is
    the classic choice, but a reduction along narrow rows is slow; the
    block's largest logit (two fast reductions over the whole block) serves
    as well unless the logits spread so far that the smallest would underflow.
    With the row maxima, a logit so far below its row's maximum that the
    difference overflows (the logits spread beyond the dtype's range, near
    ``+-max``) becomes ``-inf``: its ``exp`` is the correct 0, and the
    overflow is not warned about.
    """
    high, low = np.maximum.reduce(Z, axis=None), np.minimum.reduce(Z, axis=None)
    spread = float(high) - float(low)  # Python floats: no overflow, no warning
    if spread < SHIFT_SPREAD[Z.dtype]:  # False for NaN and inf
        Z -= high
        return False
    np.maximum.reduce(Z, axis=1, out=column)
    if spread <= float(np.finfo(Z.dtype).max):  # no difference can overflow
        Z -= column[:, None]
        return False
    with np.errstate(over="ignore"):  # beyond the range (or NaN)
        Z -= column[:, None]
    return True


def softmax(Z):
    """The row-wise softmax of the logits ``Z``, as ``_losses.softmax``
    computes it, for prediction; ``Z`` may be overwritten with the result.

    From 16 rows on, ``Z`` is shifted as :func:`_shift_logits` does and the
    sums along rows are products with a vector of ones (see below): 1000
    rows of 10 logits take 19 µs, against 60 µs for ``_losses.softmax``. On
    fewer rows that function is faster (4.1 against 4.7 µs for one row), and
    is used.
    """
    if Z.shape[0] < 16:
        return reference_softmax(Z)
    column = np.empty(Z.shape[0], dtype=Z.dtype)
    _shift_logits(Z, column)
    np.exp(Z, out=Z)
    np.matmul(Z, np.ones(Z.shape[1], dtype=Z.dtype), out=column)
    Z /= column[:, None]
    return Z


# In the two output functions, sums along rows are products with ``ones`` (a
# vector of ones): BLAS computes them 2-3x faster than ``np.add.reduce(...,
# axis=1)`` on narrow arrays.


def _softmax_loss_and_delta(Z, Y, column, scratch, ones):
    """Per-sample cross-entropy into ``column``; ``Z`` becomes ``P - Y``.

    One fused pass over the logits: with ``Z`` shifted (``_shift_logits``),
    ``l = log(sum(exp(Z))) - sum(Y Z)`` (log-sum-exp, never ``log(0)``), and
    ``exp(Z) / sum(exp(Z)) - Y`` is the softmax-cross-entropy delta.
    """
    if _shift_logits(Z, column):
        # a logit shifted to -inf (probability 0) counts for its own class
        # only: not the NaN of 0 * -inf for the others
        scratch[...] = 0
        np.multiply(Y, Z, out=scratch, where=Y != 0)
    else:  # every shifted logit is finite
        np.multiply(Y, Z, out=scratch)
    target_logit = scratch @ ones
    np.exp(Z, out=Z)
    np.matmul(Z, ones, out=column)
    Z /= column[:, None]
    np.log(column, out=column)
    column -= target_logit
    Z -= Y  # P - Y: the canonical-link shortcut


def _logistic_loss_and_delta(Z, Y, column, scratch, ones):
    """Per-sample binary log-loss (summed over units) into ``column``; ``Z``
    becomes ``sigmoid(Z) - Y``."""
    np.logaddexp(0, Z, out=scratch)  # log(1 + exp(z)), without overflow
    scratch -= Y * Z
    np.matmul(scratch, ones, out=column)
    _logistic(Z)
    Z -= Y  # P - Y: the canonical-link shortcut


OUTPUT_LOSS_AND_DELTA = {"softmax": _softmax_loss_and_delta, "logistic": _logistic_loss_and_delta}


class _Shard:
    """One shard's own gradient vector and the buffers of its blocks.

    Memory is time here: every buffer a step touches competes for the
    caches, so buffers are shared wherever their uses never overlap.
    """

    def __init__(self, layer_sizes, dtype, constants):
        self.gradient = np.empty(flat_layout(layer_sizes)[2], dtype=dtype)
        self.grad_coefs, self.grad_intercepts = flat_views(self.gradient, layer_sizes)
        self.partial_coefs = [np.empty_like(g) for g in self.grad_coefs]  # blocks after the first
        self.partial_intercepts = [np.empty_like(g) for g in self.grad_intercepts]
        self.layer_sizes, self.dtype = layer_sizes, dtype
        self.constants = constants  # zeros and ones, read only: shared by all shards
        self.buffers = {}

    def buffers_for(self, rows):
        """Activations, errors and scratch space for a block of ``rows`` rows."""
        if rows not in self.buffers:
            sizes = self.layer_sizes[1:]
            new = lambda *shape: np.empty(shape, dtype=self.dtype)  # noqa: E731
            scratch = {size: new(rows, size) for size in set(sizes)}  # used a moment at a time
            self.buffers[rows] = {
                "Z": [new(rows, size) for size in sizes],  # A[1..L-1], then the logits
                "dA": [new(rows, size) for size in sizes[:-1]],
                "scratch": [scratch[size] for size in sizes],
                "zeros": [self._constant(np.zeros, rows, size) for size in sizes[:-1]],
                "column": new(rows),
                "weights": new(rows),
                "ones": self._constant(np.ones, rows),  # sums over rows, as products
                "output_ones": self._constant(np.ones, sizes[-1]),  # sums along a row
            }
        return self.buffers[rows]

    def _constant(self, fill, *shape):
        key = (fill.__name__, shape)
        if key not in self.constants:
            self.constants[key] = fill(shape, dtype=self.dtype)
        return self.constants[key]


class FusedObjective:
    """``objective([theta], X, Y, sample_weight) -> (loss, [gradient])``.

    The value and gradient of ``_network.objective`` with respect to the flat
    vector ``theta``. The returned gradient is a buffer that the next call
    overwrites: use it before calling again.

    ``n_shards`` is 1 or 2. With 2, a batch is cut into two halves of rows,
    each with its own gradient, computed at once when ``workers`` has two
    threads; then the two gradients are summed and the penalty added, each
    thread taking half of the vector. :meth:`steps_in_lockstep` takes a
    whole epoch of minibatch steps that way. The arithmetic depends on
    ``n_shards`` only, never on how many threads carry it out.
    """

    def __init__(self, layer_sizes, activation, output, alpha, dtype, block_rows=None,
                 n_shards=1, workers=None):
        assert output in LOSSES and n_shards in (1, 2)
        self.layer_sizes = list(layer_sizes)
        self.activate = IN_PLACE_ACTIVATIONS[activation]
        self.times_derivative = IN_PLACE_DERIVATIVES[activation]
        self.loss_and_delta = OUTPUT_LOSS_AND_DELTA[output]
        self.alpha = float(alpha)  # a Python float: see _optimizers._python_float
        self.dtype = np.dtype(dtype)
        self.block_rows = BLOCK_ROWS if block_rows is None else block_rows
        self.workers = Workers(1) if workers is None else workers
        constants = {}
        self.shards = [_Shard(self.layer_sizes, self.dtype, constants) for _ in range(n_shards)]
        self.gradient = self.shards[0].gradient
        self.n_weights = flat_layout(self.layer_sizes)[0][-1][1]
        self.parts = _even_parts(self.gradient.size, n_shards)  # of the vector, for the sum
        self.penalty_scratch = (None if n_shards == 2  # see _finish
                                else np.empty(self.n_weights, dtype=self.dtype))
        self.views = (None, None)  # (theta, its coefs and intercepts), reused while theta is

    def __call__(self, params, X, Y, sample_weight):
        (theta,) = params
        coefs, intercepts = self._views(theta)
        S = total_weight(X, sample_weight)
        if len(self.shards) == 1:  # the usual minibatch: no threads to coordinate
            total = self._shard(self.shards[0], X, Y, sample_weight, S, coefs, intercepts)
            squared_norm = self._finish(self.parts[0], theta, 1, S)
        else:
            total, squared_norm = self._sharded(theta, X, Y, sample_weight, S, coefs, intercepts)
        return self._loss(total, squared_norm, S), [self.gradient]

    def steps_in_lockstep(self, params, batches, optimizer, state, learning_rate):
        """A minibatch step on each of ``batches`` (``(X, Y, sample_weight)``
        triples), in place: each takes this objective's gradient, then the
        update of ``optimizer``'s in-place ``apply``, with the numbers of
        ``_training.steps_in_turn``, which calls the two in turn for each
        batch. Returns the minibatches' losses (each before its step) and the
        optimizer's state.

        Each shard has its own thread, which runs through all the batches:
        its shard of a batch; then, once every shard's gradient is ready, the
        sum, the penalty and the update of its part of the vector (the
        optimizers' ``apply`` keeps nothing between calls, so two threads may
        call it at once on parts of the vector); then, once the whole vector
        is updated, the next batch. The threads meet twice a step, where
        calling the objective and then the optimizer hands them work three
        times, and a meeting costs only the wait for the other thread (a C2
        fit 6.5% faster, ``docs/performance.rst``).
        """
        (theta,) = params
        coefs, intercepts = self._views(theta)
        n = len(self.shards)
        # of each batch: its total weight S, and how many shards its rows fill
        sizes = [(total_weight(X, w), min(n, X.shape[0])) for X, _, w in batches]
        totals = [[0.0] * n for _ in batches]  # of each batch: its shards' sums of losses
        norms = [[0.0] * n for _ in batches]  # of each batch: ||W||^2 by part of theta

        def steps(k):  # the steps of shard k (a generator: each yield is a meeting)
            a, b = self.parts[k]
            part_state = state_slice(state, a, b)
            for i, ((X, Y, w), (S, n_used)) in enumerate(zip(batches, sizes)):
                if k < n_used:
                    totals[i][k] = self._shard_of(k, n_used, X, Y, w, S, coefs, intercepts)
                yield  # every shard's gradient is ready
                # the part's gradient goes into this shard's buffer (the first
                # shard's, if this one had no rows)
                into = k if k < n_used else 0
                norms[i][k] = self._finish(self.parts[k], theta, n_used, S, into)
                gradient = self.shards[into].gradient[a:b]
                part_state = optimizer.apply([theta[a:b]], [gradient], part_state,
                                             learning_rate)
                yield  # theta is updated
            return part_state

        new_state = self.workers.lockstep([steps(k) for k in range(n)])[0]
        # summed in the order of the shards and parts, as __call__ sums them
        losses = [self._loss(sum(total[:n_used]), sum(norm), S)
                  for total, norm, (S, n_used) in zip(totals, norms, sizes)]
        return losses, whole_state(state, new_state)

    def _views(self, theta):
        """``coefs`` and ``intercepts``, views of ``theta``."""
        if self.views[0] is not theta:  # a minibatch step keeps the same vector
            self.views = (theta, flat_views(theta, self.layer_sizes))
        return self.views[1]

    def _loss(self, total, squared_norm, S):
        """The objective from the sum of the per-sample losses (weighted) and
        ``||W||^2``."""
        loss = total / S
        if self.alpha:  # without a penalty, no 0 * inf = NaN once ||W||^2 overflows
            loss += self.alpha / (2 * S) * squared_norm
        return loss

    def _sharded(self, theta, X, Y, sample_weight, S, coefs, intercepts):
        """The shards' losses and gradients, each shard on a worker; then their
        sum, each worker summing its part of the vector."""
        n_used = min(len(self.shards), X.shape[0])

        def shard_loss(k):
            return self._shard_of(k, n_used, X, Y, sample_weight, S, coefs, intercepts)

        def finish(part):
            return self._finish(part, theta, n_used, S)

        total = sum(self.workers.map(shard_loss, range(n_used)))
        return total, sum(self.workers.map(finish, self.parts))

    def _shard_of(self, k, n_used, X, Y, sample_weight, S, coefs, intercepts):
        """Shard ``k`` of a batch cut into ``n_used`` shards of rows: its
        gradient, and its weighted sum of losses."""
        a, b = _even_parts(X.shape[0], n_used)[k]
        w = None if sample_weight is None else sample_weight[a:b]
        return self._shard(self.shards[k], X[a:b], Y[a:b], w, S, coefs, intercepts)

    def _finish(self, part, theta, n_used, S, into=0):
        """Sum the shards' gradients into shard ``into``'s, and add the
        gradient of the penalty ``alpha/(2S) ||W||^2``, on ``part`` of the
        vector; return the part's share of ``||W||^2``.

        Either shard may take the sum, with the same numbers. ``__call__``
        returns one gradient vector, and sums both parts into the first
        shard's; :meth:`steps_in_lockstep` lets each thread finish its part
        in its own shard's buffer, which its caches hold already (a C2 fit
        1.5 to 3.4% faster, ``docs/performance.rst``)."""
        a, b = part
        gradient = self.shards[into].gradient[a:b]
        if n_used == 2:
            np.add(self.shards[0].gradient[a:b], self.shards[1].gradient[a:b], out=gradient)
        b = min(b, self.n_weights)  # the penalty touches weights, not biases
        if a >= b:
            return 0.0
        # the penalty's gradient goes through the other shard's buffer, free
        # once summed (or unused): one buffer less for the caches to hold
        scratch = self.penalty_scratch if len(self.shards) == 1 else self.shards[1 - into].gradient
        weights, penalty = theta[a:b], scratch[a:b]
        np.multiply(weights, self.alpha / S, out=penalty)
        gradient[: b - a] += penalty
        return float(np.dot(weights, weights))

    def _shard(self, shard, X, Y, w, S, coefs, intercepts):
        """One shard's rows, in blocks of at most ``block_rows``: the shard's
        gradient (without the penalty) and its weighted sum of losses."""
        if X.shape[0] <= self.block_rows:  # X itself: slicing a sparse X copies it
            return self._block(shard, X, Y, w, S, coefs, intercepts, True)
        total = 0.0
        for start in range(0, X.shape[0], self.block_rows):
            block = slice(start, start + self.block_rows)
            w_block = None if w is None else w[block]
            total += self._block(shard, X[block], Y[block], w_block, S, coefs, intercepts,
                                 start == 0)
        return total

    def _block(self, shard, X, Y, w, S, coefs, intercepts, first):
        """Forward and backward over one block; adds its gradient to the
        shard's; returns the block's weighted sum of per-sample losses."""
        buffers = shard.buffers_for(X.shape[0])
        Z, dA, scratch, zeros = buffers["Z"], buffers["dA"], buffers["scratch"], buffers["zeros"]
        n_layers = len(coefs)
        activations = [X]
        # only X may be sparse: ask SciPy once, not at every product (C1 fits
        # 0.6% faster, medians of six alternating runs)
        products = [_product if sparse.issparse(X) else np.matmul] + [np.matmul] * (n_layers - 1)
        for i in range(n_layers):  # forward: Z = A W + b, then A = f(Z) in place
            products[i](activations[-1], coefs[i], out=Z[i])
            Z[i] += intercepts[i]
            if i < n_layers - 1:
                self.activate(Z[i], zeros[i])
            activations.append(Z[i])
        dZ, column = Z[-1], buffers["column"]
        # dZ = P - Y, column = the per-sample losses l_n
        self.loss_and_delta(dZ, Y, column, scratch[-1], buffers["output_ones"])
        if w is None:
            block_loss = float(np.add.reduce(column))
            dZ *= 1.0 / S
        else:
            block_loss = float(np.dot(w, column))
            np.multiply(w, 1.0 / S, out=buffers["weights"])
            dZ *= buffers["weights"][:, None]  # dJ/dZ[n] = s[n] (P[n] - Y[n]) / S
        for i in reversed(range(n_layers)):  # backward: the delta recursion
            dW = shard.grad_coefs[i] if first else shard.partial_coefs[i]
            db = shard.grad_intercepts[i] if first else shard.partial_intercepts[i]
            products[i](activations[i].T, dZ, out=dW)  # dJ/dW[i] = A[i]^T dZ
            np.matmul(buffers["ones"], dZ, out=db)  # dJ/db[i] = sum_n dZ (ones^T dZ)
            if not first:
                shard.grad_coefs[i] += dW
                shard.grad_intercepts[i] += db
            if i > 0:
                np.matmul(dZ, coefs[i].T, out=dA[i - 1])  # error sent left: dZ W[i]^T
                # times f'(z), written from the layer's output A[i]
                self.times_derivative(dA[i - 1], activations[i], scratch[i - 1], zeros[i - 1])
                dZ = dA[i - 1]
        return block_loss


def _product(A, B, out):
    """``out = A @ B``, where ``A`` may be a sparse ``X`` (or its transpose):
    SciPy's product makes a new array, copied into ``out``."""
    if sparse.issparse(A):
        out[...] = A @ B
    else:
        np.matmul(A, B, out=out)
