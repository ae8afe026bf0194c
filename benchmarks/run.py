"""Time BackpropMLPClassifier against scikit-learn's MLPClassifier and PyTorch.

Usage::

    python benchmarks/run.py [--quick] [--config NAME ...] [--dtype float64|float32 ...]
                             [--repeats N] [--out DIR]

What is measured
----------------
Four fixed configurations (see ``TRAIN_CONFIGS`` and ``PREDICT_CONFIG``):

* C1 digits-sgd   -- digits, (100,) relu, SGD + Nesterov momentum, batch 200, 100 epochs
* C2 wide-adam    -- make_classification 60k x 100, (512, 512) relu, Adam, batch 256, 5 epochs
* C3 fullbatch-gd -- make_classification 20k x 50, (100,) logistic, plain full-batch GD, 300 epochs
* P1 predict      -- predict_proba latency for 1 row and 10,000 rows on the fitted C2 model

each in float64 and in float32 (X is cast before fit).  Every fit uses
``tol=0`` and ``n_iter_no_change=max_iter`` so that every epoch runs, with
``random_state=0`` and ``shuffle=True``.  The data are split 75/25 (stratified,
``random_state=0``) and standardised with a StandardScaler fitted on the
training rows.

The systems are our estimator ("ours"), ``sklearn.neural_network.MLPClassifier``
("MLPClassifier") and, when ``torch`` imports, the same network written with
``torch.nn.Linear`` layers and trained by a plain loop on the CPU ("torch"):
same activation, mean cross-entropy, the same optimizer, Glorot initialisation
like scikit-learn's, reshuffling every epoch, the same batches (the last one
partial), and scikit-learn's L2 penalty alpha/(2*batch)*||W||^2 on the weights
only (added to the weight gradients as alpha*W/batch).  Torch runs with as many
threads as NumPy's BLAS.

Timing protocol
---------------
* Before timing, each system is warmed up once (one epoch; one call for P1).
* The systems alternate within one run: ours, MLPClassifier, torch, GEMM floor,
  GEMM peak, ours, MLPClassifier, ... for ``--repeats`` rounds (default 5;
  ``--quick``: 2).
* ``time.perf_counter`` brackets ``fit`` alone; data preparation is excluded.
* Reported per system: median, min and max seconds, the ratios of medians to
  MLPClassifier and to torch, and test accuracy (from the last fit).
* P1 times ``predict_proba`` (torch: forward + softmax under ``no_grad``, from
  and back to NumPy), averaging each measurement over enough calls to last
  about 0.1 s.

Reference numbers measured in the same run
-----------------------------------------
* GEMM peak: median GFLOP/s of a 2000x2000 @ 2000x2000 ``np.matmul`` in the
  config's dtype, timed twice in each round of the rotation (P1: 2 x repeats
  times before its rounds).
* Achieved GFLOP/s of training: 6 * n_train * sum(fan_in * fan_out) * epochs / time,
  and its fraction of the GEMM peak (P1: 2 * rows * sum(fan_in * fan_out) / time).
* GEMM-only floor: the training's matrix products alone, at their real shapes
  (every minibatch including the last partial one; per layer the forward
  A @ W, the backward dZ @ W.T except for the first layer, and A.T @ dZ), on
  preallocated random arrays with ``np.matmul(..., out=...)``, for all epochs.
  It is timed as a fourth "system" in the same rotation.  Ratio ``time/floor``
  says how far a system is from doing nothing but those products; its
  target counts as met only if the ratio of minima meets it too, since a
  floor slowed by other load in some rounds flatters the ratio of medians.  The table
  gives the floor a row of its own: its GFLOP/s (with the systems' FLOP
  count) and %peak say how close the products alone come to the GEMM peak.

Output: a table on stdout, ``<out>/results-<dtype|all>.json`` with machine
information and every raw timing, and a bar chart of the ratios
``<out>/ratios.png``.  ``--quick`` runs a smaller C2 (labelled ``C2-quick`` /
``P1-quick``) and writes ``results-quick-*.json`` and ``ratios-quick.png``
so that quick and full results are never mixed up.

OpenBLAS kernel: on some machines OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set
in the environment and force an older, slower kernel.  The header and the JSON
say whether they are set and which kernel runs; to benchmark without them run
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark the working tree's skbackprop

import scipy  # noqa: E402
import sklearn  # noqa: E402
import threadpoolctl  # noqa: E402
from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skbackprop import BackpropMLPClassifier  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional
    torch = None

OURS, SKLEARN, TORCH, FLOOR, PEAK = "ours", "MLPClassifier", "torch", "gemm-floor", "gemm-peak"
DTYPES = ("float64", "float32")
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PEAK_SIZE, PEAK_PER_ROUND = 2000, 2  # GEMM peak: matmuls timed in each round
NOISY_SPREAD = 1.5  # max/min above this marks a row as disturbed ("*")
PREDICT_SECONDS = 0.1  # each P1 measurement averages calls over about this long


# ------------------------------------------------------------------ configs


@dataclass(frozen=True)
class TrainConfig:
    """One fixed training benchmark."""

    name: str  #: "C1"
    title: str  #: "digits-sgd"
    dataset: str  #: "digits" or "make_classification"
    hidden_layer_sizes: tuple
    activation: str
    solver: str
    learning_rate_init: float
    batch_size: int | None  #: None: every training row in one batch
    max_iter: int
    momentum: float = 0.9
    nesterovs_momentum: bool = True
    alpha: float = 1e-4
    target: float | None = None  #: wanted ours/MLPClassifier median ratio
    make_kwargs: dict = field(default_factory=dict)

    @property
    def label(self):
        return f"{self.name} {self.title}"

    def batch_rows(self, n_train):
        return n_train if self.batch_size is None else min(self.batch_size, n_train)

    def estimator_params(self, n_train, max_iter=None):
        """The parameters shared by ours and MLPClassifier."""
        max_iter = self.max_iter if max_iter is None else max_iter
        return dict(
            hidden_layer_sizes=self.hidden_layer_sizes, activation=self.activation,
            solver=self.solver, alpha=self.alpha, batch_size=self.batch_rows(n_train),
            learning_rate="constant", learning_rate_init=self.learning_rate_init,
            max_iter=max_iter, shuffle=True, random_state=0, tol=0.0,
            n_iter_no_change=max_iter, momentum=self.momentum,
            nesterovs_momentum=self.nesterovs_momentum, early_stopping=False,
        )


@dataclass(frozen=True)
class PredictConfig:
    """predict_proba latency on the model fitted by another config."""

    name: str
    title: str
    model_config: str  #: name of the TrainConfig whose fitted models are used
    rows: tuple = (1, 10_000)
    targets: dict = field(default_factory=lambda: {1: 0.5})  #: rows -> ratio


TRAIN_CONFIGS = (
    TrainConfig("C1", "digits-sgd", "digits", (100,), "relu", "sgd", 0.05, 200, 100,
                target=0.5),
    TrainConfig("C2", "wide-adam", "make_classification", (512, 512), "relu", "adam",
                1e-3, 256, 5, target=0.8,
                make_kwargs=dict(n_samples=60_000, n_features=100, n_informative=60,
                                 n_classes=10, random_state=0)),
    TrainConfig("C3", "fullbatch-gd", "make_classification", (100,), "logistic", "sgd",
                0.5, None, 300, momentum=0.0, nesterovs_momentum=False, target=0.5,
                make_kwargs=dict(n_samples=20_000, n_features=50, n_informative=30,
                                 n_classes=5, random_state=0)),
)
PREDICT_CONFIG = PredictConfig("P1", "predict", "C2")
#: --quick shrinks C2 (and so P1) and renames them so results never mix.
QUICK_C2 = dict(name="C2-quick", max_iter=2,
                make_kwargs=dict(TRAIN_CONFIGS[1].make_kwargs, n_samples=12_000))
FLOOR_TARGET = ("C2", "float64", 1.4)  #: ours/floor wanted for this config and dtype
TORCH_FASTER = ("C1", "C3")  #: configs where ours should beat torch
ACCURACY_POINTS = 1.0  #: ours within this many points of MLPClassifier
CHART_TARGETS = {"C1": 0.5, "C2": 0.8, "C3": 0.5, "P1 1 row": 0.5}


def select_configs(names, quick):
    """The training configs and whether P1 runs, from --config names."""
    train = list(TRAIN_CONFIGS)
    if quick:
        train[1] = dataclasses.replace(train[1], **QUICK_C2)
    predict = PREDICT_CONFIG
    if quick:
        predict = dataclasses.replace(predict, name="P1-quick", model_config="C2-quick")
    if not names:
        return train, predict
    wanted = {n.upper() for n in names}
    known = {c.name.split("-")[0] for c in train} | {"P1"}
    unknown = wanted - known - {c.title.upper() for c in train} - {"PREDICT"}
    if unknown:
        raise SystemExit(f"unknown config(s) {sorted(unknown)}; choose from {sorted(known)}")
    chosen = [c for c in train if c.name.split("-")[0] in wanted or c.title.upper() in wanted]
    return chosen, (predict if wanted & {"P1", "PREDICT"} else None)


# ------------------------------------------------------------------ data


@dataclass
class Dataset:
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray

    def astype(self, dtype):
        return Dataset(self.X_train.astype(dtype), self.X_test.astype(dtype),
                       self.y_train, self.y_test)


def load_dataset(config):
    """Split 75/25 (stratified) and standardise on the training rows, in float64."""
    if config.dataset == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        X, y = make_classification(**config.make_kwargs)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return Dataset(scaler.transform(X_train), scaler.transform(X_test), y_train, y_test)


def layer_shapes(config, data):
    """(fan_in, fan_out) of every layer, output layer included."""
    sizes = [data.X_train.shape[1], *config.hidden_layer_sizes, len(np.unique(data.y_train))]
    return list(zip(sizes[:-1], sizes[1:]))


# ------------------------------------------------------------------ systems


class EstimatorSystem:
    """Ours or MLPClassifier, through the public scikit-learn API."""

    def __init__(self, name, estimator_class):
        self.name = name
        self.estimator_class = estimator_class

    def fit(self, config, X, y, max_iter=None):
        model = self.estimator_class(**config.estimator_params(len(X), max_iter))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X, y)

    def epochs(self, model):
        return int(model.n_iter_)

    def predict_proba(self, model, X):
        return model.predict_proba(X)

    def predict(self, model, X):
        return model.predict(X)


class TorchModel:
    """A trained torch network with its classes and epoch count."""

    def __init__(self, network, classes, epochs):
        self.network, self.classes, self.epochs = network, classes, epochs


class TorchSystem:
    """The same MLP in PyTorch on the CPU, trained by a plain loop."""

    name = TORCH

    def __init__(self, threads):
        self.threads = threads

    def fit(self, config, X, y, max_iter=None):
        torch.set_num_threads(self.threads)
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        classes, y_index = np.unique(y, return_inverse=True)
        sizes = [X.shape[1], *config.hidden_layer_sizes, len(classes)]
        network = self._network(sizes, config.activation, _torch_dtype(X.dtype))
        weights = [p for n, p in network.named_parameters() if n.endswith("weight")]
        optimizer = self._optimizer(config, network.parameters())
        X_t = torch.from_numpy(X)
        y_t = torch.from_numpy(y_index.astype(np.int64))
        n, batch = len(X), config.batch_rows(len(X))
        epochs = config.max_iter if max_iter is None else max_iter
        loss_function = torch.nn.CrossEntropyLoss()  # mean reduction
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch):
                rows = order[start:start + batch]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_function(network(X_t[rows]), y_t[rows])
                loss.backward()
                with torch.no_grad():  # L2: alpha / (2 * batch) * ||W||^2
                    for W in weights:
                        W.grad.add_(W, alpha=config.alpha / len(rows))
                optimizer.step()
        return TorchModel(network.eval(), classes, epochs)

    @staticmethod
    def _network(sizes, activation, dtype):
        """Linear layers with scikit-learn's Glorot-uniform initialisation."""
        act = {"relu": torch.nn.ReLU, "logistic": torch.nn.Sigmoid,
               "tanh": torch.nn.Tanh, "identity": torch.nn.Identity}[activation]
        factor = 2.0 if activation == "logistic" else 6.0
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            linear = torch.nn.Linear(fan_in, fan_out, dtype=dtype)
            bound = (factor / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                linear.weight.uniform_(-bound, bound)
                linear.bias.uniform_(-bound, bound)
            layers += [linear, act()]
        return torch.nn.Sequential(*layers[:-1])  # logits out; the loss applies softmax

    @staticmethod
    def _optimizer(config, params):
        if config.solver == "adam":
            return torch.optim.Adam(params, lr=config.learning_rate_init,
                                    betas=(0.9, 0.999), eps=1e-8)
        nesterov = config.nesterovs_momentum and config.momentum > 0
        return torch.optim.SGD(params, lr=config.learning_rate_init,
                               momentum=config.momentum, nesterov=nesterov)

    def epochs(self, model):
        return model.epochs

    def predict_proba(self, model, X):
        with torch.no_grad():
            return torch.softmax(model.network(torch.from_numpy(X)), dim=1).numpy()

    def predict(self, model, X):
        return model.classes[self.predict_proba(model, X).argmax(axis=1)]


def _torch_dtype(np_dtype):
    return torch.float64 if np_dtype == np.float64 else torch.float32


def make_systems(threads):
    systems = [EstimatorSystem(OURS, BackpropMLPClassifier),
               EstimatorSystem(SKLEARN, MLPClassifier)]
    if torch is not None:
        systems.append(TorchSystem(threads))
    return systems


# ------------------------------------------------------------------ GEMM references


def timed(function, *args):
    """(seconds, result) of one call, after a garbage collection."""
    gc.collect()
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


class GemmPeak:
    """A PEAK_SIZE^3 matmul on preallocated arrays: the BLAS's best case."""

    def __init__(self, dtype, n=PEAK_SIZE):
        rng = np.random.default_rng(0)
        self.n = n
        self.A, self.B = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        self.C = np.empty((n, n), dtype)
        self.measure()  # warm-up

    def measure(self):
        return timed(np.matmul, self.A, self.B, self.C)[0]

    def summary(self, times):
        gflops = [2 * self.n**3 / t / 1e9 for t in times]
        return {"size": self.n, "times": times, "gflops": gflops,
                "gflops_median": statistics.median(gflops)}


class GemmFloor:
    """The matrix products of training (or of prediction) alone, at real shapes.

    Per minibatch shape, arrays are preallocated: one activation per layer
    boundary, one delta per layer output, the weights and weight gradients.
    ``run`` replays, for every epoch and every minibatch in order, the forward
    A @ W of each layer, then backwards A.T @ dZ and (except for the first
    layer) dZ @ W.T.
    """

    def __init__(self, shapes, batch_rows_list, dtype, epochs, forward_only=False):
        rng = np.random.default_rng(0)
        self.epochs, self.forward_only = epochs, forward_only
        sizes = [shapes[0][0]] + [fan_out for _, fan_out in shapes]
        self.weights = [(rng.standard_normal(s) / np.sqrt(s[0])).astype(dtype) for s in shapes]
        self.grads = [np.empty(s, dtype) for s in shapes]
        self.buffers = {}
        for b in set(batch_rows_list):
            acts = [rng.standard_normal((b, k)).astype(dtype) for k in sizes]
            deltas = [rng.standard_normal((b, k)).astype(dtype) for k in sizes]
            self.buffers[b] = (acts, deltas)
        self.batches = list(batch_rows_list)

    @classmethod
    def for_training(cls, config, data, dtype, epochs):
        n, b = len(data.X_train), config.batch_rows(len(data.X_train))
        batches = [b] * (n // b) + ([n % b] if n % b else [])
        return cls(layer_shapes(config, data), batches, dtype, epochs)

    def run(self):
        W, G, L = self.weights, self.grads, len(self.weights)
        for _ in range(self.epochs):
            for b in self.batches:
                acts, deltas = self.buffers[b]
                for l in range(L):
                    np.matmul(acts[l], W[l], out=acts[l + 1])
                if self.forward_only:
                    continue
                for l in reversed(range(L)):
                    np.matmul(acts[l].T, deltas[l + 1], out=G[l])
                    if l > 0:
                        np.matmul(deltas[l + 1], W[l].T, out=deltas[l])


# ------------------------------------------------------------------ benchmarks


def summarise(times):
    return {"times": times, "median": statistics.median(times),
            "min": min(times), "max": max(times)}


def add_ratios(systems, flops, peak, floor):
    """Ratios to MLPClassifier and torch, GFLOP/s, %peak and time/floor, for
    every system and for the floor itself (whose GFLOP/s, counted with the
    systems' FLOPs, says how close the products alone come to the peak)."""
    for stats in [*systems.values(), floor]:
        m = stats["median"]
        for key, other in (("mlp", SKLEARN), ("torch", TORCH)):
            stats[f"ratio_{key}"] = m / systems[other]["median"] if other in systems else None
            stats[f"ratio_{key}_of_mins"] = (stats["min"] / systems[other]["min"]
                                             if other in systems else None)
        stats["gflops"] = flops / m / 1e9
        stats["pct_peak"] = 100 * stats["gflops"] / peak
        stats["ratio_floor"] = m / floor["median"]
        stats["ratio_floor_of_mins"] = stats["min"] / floor["min"]


def bench_training(config, dtype, data, systems, repeats):
    """Alternate the systems, the GEMM floor and the GEMM peak for `repeats` rounds."""
    shapes = layer_shapes(config, data)
    n_train = len(data.X_train)
    peak = GemmPeak(dtype)
    floor = GemmFloor.for_training(config, data, dtype, config.max_iter)
    for system in systems:  # warm-up: one epoch each
        system.fit(config, data.X_train, data.y_train, max_iter=1)
    times = {s.name: [] for s in systems} | {FLOOR: [], PEAK: []}
    models = {}
    for round_ in range(repeats):
        for system in systems:
            t, models[system.name] = timed(system.fit, config, data.X_train, data.y_train)
            times[system.name].append(t)
            print(f"  {config.name} {dtype} round {round_ + 1}/{repeats} "
                  f"{system.name}: {t:.3f} s", flush=True)
        times[FLOOR].append(timed(floor.run)[0])
        times[PEAK] += [peak.measure() for _ in range(PEAK_PER_ROUND)]
    peak = peak.summary(times[PEAK])
    results = {}
    for system in systems:
        model = models[system.name]
        accuracy = np.mean(system.predict(model, data.X_test) == data.y_test)
        results[system.name] = summarise(times[system.name]) | {
            "accuracy": float(accuracy), "epochs": system.epochs(model)}
        if results[system.name]["epochs"] != config.max_iter:
            print(f"  WARNING: {system.name} ran {results[system.name]['epochs']} of "
                  f"{config.max_iter} epochs", flush=True)
    floor_stats = summarise(times[FLOOR])
    flops = 6 * n_train * sum(i * o for i, o in shapes) * config.max_iter
    add_ratios(results, flops, peak["gflops_median"], floor_stats)
    record = {
        "kind": "train", "config": config.name, "title": config.title, "dtype": dtype,
        "params": config.estimator_params(n_train), "n_train": n_train,
        "n_test": len(data.X_test), "layer_shapes": shapes, "flops": flops,
        "gemm_peak": peak, "gemm_floor": floor_stats, "systems": results,
        "target_ratio_mlp": config.target,
    }
    return record, models


def predict_rows(X_test, rows):
    """`rows` rows of the test set (cycled if it is shorter), C-contiguous."""
    return np.ascontiguousarray(X_test[np.arange(rows) % len(X_test)])


def per_call(system, model, X, number):
    """Seconds per predict_proba call, averaged over `number` calls."""
    def calls():
        for _ in range(number):
            system.predict_proba(model, X)
    return timed(calls)[0] / number


def bench_predict(pconfig, model_config, dtype, data, systems, models, repeats):
    """Records (one per row count) of predict_proba latency."""
    shapes = layer_shapes(model_config, data)
    gemm = GemmPeak(dtype)
    peak = gemm.summary([gemm.measure() for _ in range(PEAK_PER_ROUND * repeats)])
    records = []
    for rows in pconfig.rows:
        X = predict_rows(data.X_test, rows)
        floor = GemmFloor(shapes, [rows], dtype, epochs=1, forward_only=True)
        slowest = max(per_call(s, models[s.name], X, 1) for s in systems)  # warm-up too
        number = max(1, int(PREDICT_SECONDS / max(slowest, 1e-7)))
        floor_number = max(1, int(PREDICT_SECONDS / max(timed(floor.run)[0], 1e-7)))
        times = {s.name: [] for s in systems} | {FLOOR: []}
        for _ in range(repeats):
            for system in systems:
                times[system.name].append(per_call(system, models[system.name], X, number))
            times[FLOOR].append(timed(lambda: [floor.run() for _ in range(floor_number)])[0]
                                / floor_number)
        results = {s.name: summarise(times[s.name]) for s in systems}
        floor_stats = summarise(times[FLOOR])
        flops = 2 * rows * sum(i * o for i, o in shapes)
        add_ratios(results, flops, peak["gflops_median"], floor_stats)
        print(f"  {pconfig.name} {dtype} {rows} row{'s' * (rows > 1)}: ours "
              f"{results[OURS]['median'] * 1e6:.1f} us/call", flush=True)
        records.append({
            "kind": "predict", "config": f"{pconfig.name} {rows} row{'s' * (rows > 1)}",
            "title": pconfig.title, "dtype": dtype, "rows": rows, "calls_per_measurement": number,
            "model_config": model_config.name, "layer_shapes": shapes, "flops": flops,
            "gemm_peak": peak, "gemm_floor": floor_stats, "systems": results,
            "target_ratio_mlp": pconfig.targets.get(rows),
        })
    return records


# ------------------------------------------------------------------ machine info


def blas_threads():
    """NumPy's BLAS thread count (torch is given the same)."""
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    numpy_blas = [i for i in blas if "numpy" in i["filepath"]] or blas
    return numpy_blas[0]["num_threads"] if numpy_blas else os.cpu_count()


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state():
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "skbackprop"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+uncommitted skbackprop changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info():
    info = {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(), "python": sys.version.split()[0],
        "numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
        "matplotlib": _version("matplotlib"), "torch": torch.__version__ if torch else None,
        "skbackprop_git": git_state(),
        "threadpoolctl": threadpoolctl.threadpool_info(),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "blas_threads": blas_threads(),
        "loadavg_start": _getloadavg(),
    }
    if torch is not None:
        info["torch_threads"] = blas_threads()
        info["torch_mkl"] = torch.backends.mkl.is_available()
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return info


def _version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def describe_machine(info):
    lines = [f"CPU: {info['cpu_model']}, {info['cpu_count']} cores "
             f"({info['cpu_affinity']} usable); Python {info['python']}",
             f"numpy {info['numpy']}, scipy {info['scipy']}, scikit-learn {info['sklearn']}, "
             f"torch {info['torch'] or 'not installed'}; skbackprop at {info['skbackprop_git']}",
             f"load average at start: {_loadavg(info['loadavg_start'])} "
             "(other processes on the machine skew timings)"]
    for lib in info["threadpoolctl"]:
        lines.append(f"threadpoolctl: {lib['user_api']}/{lib['internal_api']} "
                     f"{lib.get('version')} kernel={lib.get('architecture', '-')} "
                     f"threads={lib['num_threads']} ({Path(lib['filepath']).name})")
    env = info["env"]
    for name in ENV_VARS[:2]:
        lines.append(f"{name}: {'set to ' + repr(env[name]) if env[name] else 'not set'}")
    if env["OPENBLAS_CORETYPE"] or env["OPENBLAS_L2_SIZE"]:
        lines.append("  -> OpenBLAS runs a forced kernel; for the native one run: "
                     "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py")
    if torch is not None:
        lines.append(f"torch: {info['torch_threads']} threads, MKL={info['torch_mkl']}, "
                     f"CPU capability {info['torch_cpu_capability']}")
    return "\n".join(lines)


# ------------------------------------------------------------------ report


def _getloadavg():
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def _loadavg(values):
    return "unknown" if values is None else " ".join(f"{v:.2f}" for v in values)


def fmt_time(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if unit != "s" else f"{seconds:.3f} s"
    return f"{seconds * 1e9:.0f} ns"


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


HEADERS = ("config", "dtype", "system", "median", "min", "max", "t/MLP", "t/torch",
           "acc %", "GFLOP/s", "%peak", "floor", "t/floor")


def is_noisy(stats):
    """max/min above NOISY_SPREAD: the machine's other load disturbed the timings."""
    return stats["max"] > NOISY_SPREAD * stats["min"]


def table_rows(records):
    rows = []
    for rec in records:
        for name, s in [*rec["systems"].items(), (FLOOR, rec["gemm_floor"])]:
            accuracy = s.get("accuracy")
            rows.append((
                rec["config"] + ("" if rec["kind"] == "predict" else f" {rec['title']}"),
                rec["dtype"], name, fmt_time(s["median"]), fmt_time(s["min"]),
                fmt_time(s["max"]) + ("*" if is_noisy(s) else " "), fmt(s["ratio_mlp"], ".2f"), fmt(s["ratio_torch"], ".2f"),
                fmt(None if accuracy is None else 100 * accuracy, ".2f"),
                fmt(s["gflops"], ".3g"), fmt(s["pct_peak"], ".1f"),
                fmt_time(rec["gemm_floor"]["median"]), fmt(s["ratio_floor"], ".2f"),
            ))
    return rows


def format_table(headers, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def peak_lines(records):
    seen = {}
    for rec in records:
        name = rec["config"].split()[0]  # the P1 row counts share one peak
        seen.setdefault((name, rec["dtype"]), rec["gemm_peak"])
    return [f"  GEMM peak ({PEAK_SIZE}^3 matmul, median of {len(p['times'])}) during {c} {d}: "
            f"{p['gflops_median']:.1f} GFLOP/s (min {min(p['gflops']):.1f}, "
            f"max {max(p['gflops']):.1f})" for (c, d), p in seen.items()]


def check_targets(records):
    """The brief's targets, each as {what, value, target, ok}."""
    checks = []

    def add(what, value, target, ok):
        checks.append({"what": what, "value": value, "target": target, "ok": bool(ok)})

    for rec in records:
        s, where = rec["systems"], f"{rec['config']} {rec['dtype']}"
        ours = s[OURS]
        if rec["target_ratio_mlp"] is not None:
            add(f"{where} ours/MLPClassifier median", ours["ratio_mlp"],
                f"<= {rec['target_ratio_mlp']}", ours["ratio_mlp"] <= rec["target_ratio_mlp"])
        if rec["kind"] != "train":
            continue
        base = rec["config"].split("-")[0]
        if (base, rec["dtype"]) == FLOOR_TARGET[:2]:
            # Both ratios must meet it: a floor slowed by other load in some
            # rounds (its median far above its minimum) flatters the median's.
            add(f"{where} ours/GEMM floor", ours["ratio_floor"],
                f"<= {FLOOR_TARGET[2]}, and of minima: {ours['ratio_floor_of_mins']:.3f}",
                max(ours["ratio_floor"], ours["ratio_floor_of_mins"]) <= FLOOR_TARGET[2])
        if base in TORCH_FASTER and ours["ratio_torch"] is not None:
            add(f"{where} ours/torch median", ours["ratio_torch"], "< 1",
                ours["ratio_torch"] < 1)
        gap = 100 * (ours["accuracy"] - s[SKLEARN]["accuracy"])
        add(f"{where} accuracy ours - MLPClassifier (points)", gap,
            f">= -{ACCURACY_POINTS}", gap >= -ACCURACY_POINTS)
    return checks


def format_checks(checks):
    return "\n".join(f"  [{'ok' if c['ok'] else 'MISS'}] {c['what']}: {c['value']:.3f} "
                     f"(target {c['target']})" for c in checks)


def chart_target(record):
    """The ours/MLPClassifier target drawn over one bar group, if any."""
    if record["kind"] == "predict":
        return CHART_TARGETS["P1 1 row"] if record["rows"] == 1 else None
    return CHART_TARGETS.get(record["config"].split("-")[0])


def draw_chart(records, info, path, quick):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{rec['config']}\n{rec['dtype']}" for rec in records]
    mlp = [rec["systems"][OURS]["ratio_mlp"] for rec in records]
    tch = [rec["systems"][OURS]["ratio_torch"] for rec in records]
    targets = [chart_target(rec) for rec in records]
    x = np.arange(len(labels))
    has_torch = any(t is not None for t in tch)
    width = 0.38 if has_torch else 0.6
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(labels) + 2), 5.5))
    bars = ax.bar(x - (width / 2 if has_torch else 0), mlp, width,
                  label="ours / MLPClassifier", color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    if has_torch:
        bars = ax.bar(x + width / 2, [t or 0 for t in tch], width,
                      label="ours / torch", color="tab:orange")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=1)
    labelled = False
    for i, target in enumerate(targets):
        if target is not None:
            ax.hlines(target, i - 0.45, i + 0.45, colors="red", linestyles="--",
                      label=None if labelled else "target for ours / MLPClassifier")
            labelled = True
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks([0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20])
    low = min(v for v in mlp + tch + [t for t in targets if t] if v)
    high = max(v for v in mlp + tch if v)
    ax.set_ylim(min(0.1, low / 1.5), max(2.0, high * 1.5))
    ax.set_ylabel("median time ratio (lower is better, log scale)")
    blas = next((i for i in info["threadpoolctl"] if i["user_api"] == "blas"), {})
    env = "set" if info["env"]["OPENBLAS_CORETYPE"] else "unset"
    ax.set_title(f"skbackprop benchmark{' (QUICK)' if quick else ''}: median time ratios\n"
                 f"{info['cpu_model']}, OpenBLAS kernel {blas.get('architecture', '?')} "
                 f"(OPENBLAS_CORETYPE {env}), {info['blas_threads']} threads", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 repeats and a smaller C2 (labelled C2-quick/P1-quick)")
    parser.add_argument("--config", nargs="+", metavar="NAME",
                        help="C1 C2 C3 P1 (default: all)")
    parser.add_argument("--dtype", nargs="+", choices=DTYPES, help="default: both")
    parser.add_argument("--repeats", type=int, help="rounds of timing (default 5, quick 2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--threads", type=int,
                        help="limit BLAS/OpenMP (threadpoolctl) and torch to N threads "
                             "(default: leave NumPy's BLAS as it is)")
    args = parser.parse_args(argv)
    args.config = [name for arg in args.config or [] for name in arg.split(",") if name]
    args.dtype = list(dict.fromkeys(args.dtype or DTYPES))
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def run(args):
    started = time.perf_counter()
    train_configs, pconfig = select_configs(args.config, args.quick)
    info = machine_info()
    print(describe_machine(info), flush=True)
    print(f"mode: {'QUICK' if args.quick else 'full'}, {args.repeats} repeats, "
          f"dtypes {args.dtype}, threads {info['blas_threads']}"
          f"{' (--threads)' if args.threads else ''}\n", flush=True)
    systems = make_systems(info["blas_threads"])
    records, fitted = [], {}
    needed = list(train_configs)
    if pconfig and pconfig.model_config not in {c.name for c in needed}:
        needed.append(next(c for c in select_configs(None, args.quick)[0]
                           if c.name == pconfig.model_config))
    for config in needed:
        timed_config = config in train_configs
        base = load_dataset(config)
        for dtype in args.dtype:
            data = base.astype(dtype)
            if timed_config:
                print(f"{config.label} {dtype}: n_train={len(data.X_train)}, "
                      f"{config.max_iter} epochs", flush=True)
                record, models = bench_training(config, dtype, data, systems, args.repeats)
                records.append(record | {"loadavg_after": _getloadavg()})
            else:
                print(f"{config.label} {dtype}: fitting once (untimed) for "
                      f"{pconfig.name}", flush=True)
                models = {s.name: s.fit(config, data.X_train, data.y_train) for s in systems}
            if pconfig and config.name == pconfig.model_config:
                fitted[dtype] = (config, data, models)
    if pconfig:
        for dtype in args.dtype:
            config, data, models = fitted[dtype]
            records += bench_predict(pconfig, config, dtype, data, systems, models,
                                     args.repeats)
    return records, info, time.perf_counter() - started


def write_outputs(records, info, total, args):
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = "results-quick-" if args.quick else "results-"
    suffix = args.dtype[0] if len(args.dtype) == 1 else "all"
    json_path = args.out / f"{prefix}{suffix}.json"
    png_path = args.out / ("ratios-quick.png" if args.quick else "ratios.png")
    checks = check_targets(records)
    payload = {
        "meta": {"quick": args.quick, "repeats": args.repeats, "argv": sys.argv,
                 "threads_option": args.threads,
                 "dtypes": args.dtype, "configs": sorted({r["config"] for r in records}),
                 "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "total_seconds": total,
                 "loadavg_end": _getloadavg(),
                 "machine": info},
        "results": records, "targets": checks,
    }
    json_path.write_text(json.dumps(payload, indent=1, default=_json_default))
    draw_chart(records, info, png_path, args.quick)
    return json_path, png_path, checks


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def main(argv=None):
    args = parse_args(argv)
    with threadpoolctl.threadpool_limits(limits=args.threads):  # None: no limit
        records, info, total = run(args)
    json_path, png_path, checks = write_outputs(records, info, total, args)
    print(f"\nResults ({'QUICK' if args.quick else 'full'} run, {args.repeats} repeats; "
          "times are per fit, or per predict_proba call for P1):")
    print(format_table(HEADERS, table_rows(records)))
    print(f"  * max/min > {NOISY_SPREAD}: timings disturbed by other load on the machine; "
          "the JSON also has ratios of minima (ratio_*_of_mins)")
    print("\n".join(peak_lines(records)))
    print("\nTargets:\n" + format_checks(checks))
    print(f"\nTotal runtime {total:.0f} s. Wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
