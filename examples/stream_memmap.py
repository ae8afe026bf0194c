"""
Training on data larger than memory with partial_fit
====================================================

When the training set does not fit in memory, keep it on disk and hand it to
:meth:`~skbackprop.BackpropMLPClassifier.partial_fit` one chunk at a time.
Each call trains for one epoch over the chunk it is given, continuing from the
current weights and optimizer state, so a pass over all the chunks is one
epoch over the whole data set, and several passes are several epochs.

This script:

1. writes a synthetic classification data set to a NumPy ``.npy`` file and
   opens it again as a read-only :class:`numpy.memmap`, so that rows are read
   from disk only when a slice of them is used;
2. fits a :class:`~sklearn.preprocessing.StandardScaler` in one streaming pass
   (``StandardScaler.partial_fit``), because an MLP needs standardised inputs;
3. trains for a few passes over the chunks, in a new random chunk order on
   every pass, passing ``classes=`` on the first call (a chunk need not
   contain every class);
4. scores on held-out rows, again chunk by chunk, and removes the file.

The data set here is small (50,000 rows of 20 features) so that the script
runs in seconds, but nothing in the training loop depends on its size: only
one chunk is ever copied into memory.

Run it from the root of the repository::

    python examples/stream_memmap.py
"""

import os
import tempfile
import time

import numpy as np
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier

MB = 1024**2


def write_dataset(folder, n_samples, n_features, random_state):
    """Write a synthetic data set to ``X.npy`` and ``y.npy`` in ``folder``.

    In real use these files already exist (or are written chunk by chunk by
    whatever produces the data); here ``make_classification`` makes them.
    """
    X, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_features // 2,
        n_redundant=n_features // 4,
        n_classes=3,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=random_state,
    )
    x_path, y_path = os.path.join(folder, "X.npy"), os.path.join(folder, "y.npy")
    # open_memmap writes a .npy header, so np.load can reopen the file later
    # without being told its shape and dtype.
    X_file = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=X.shape)
    X_file[:] = X
    X_file.flush()
    del X_file  # closes the memory map
    np.save(y_path, y.astype(np.int8))
    return x_path, y_path


def chunk_bounds(start, stop, chunk_size):
    """``(begin, end)`` of consecutive chunks of at most ``chunk_size`` rows."""
    return [(b, min(b + chunk_size, stop)) for b in range(start, stop, chunk_size)]


def train_and_score(x_path, y_path, *, test_fraction, chunk_size, n_passes, random_state,
                    verbose):
    X = np.load(x_path, mmap_mode="r")  # a read-only np.memmap: nothing read yet
    y = np.load(y_path, mmap_mode="r")
    n_samples = X.shape[0]
    n_train = int(round(n_samples * (1 - test_fraction)))
    train_chunks = chunk_bounds(0, n_train, chunk_size)
    test_chunks = chunk_bounds(n_train, n_samples, chunk_size)
    if verbose:
        print(f"X on disk: {type(X).__name__} of shape {X.shape}, dtype {X.dtype}, "
              f"{os.path.getsize(x_path) / MB:.1f} MB")
        print(f"training rows: {n_train} in {len(train_chunks)} chunks of at most "
              f"{chunk_size} rows ({chunk_size * X.shape[1] * X.itemsize / MB:.2f} MB each); "
              f"held-out rows: {n_samples - n_train}")

    # Every class that any chunk may contain; labels are small, so one read of
    # the label file is cheap (otherwise, know them from elsewhere).
    classes = np.unique(y[:n_train])

    # 1. Standardisation statistics, in one streaming pass.
    scaler = StandardScaler()
    for begin, end in train_chunks:
        scaler.partial_fit(X[begin:end])

    # 2. Several passes (epochs) over the chunks, each in a new random order.
    clf = BackpropMLPClassifier(hidden_layer_sizes=(50,), random_state=random_state)
    rng = np.random.default_rng(random_state)
    largest_chunk = 0
    for epoch in range(n_passes):
        started = time.perf_counter()
        for index in rng.permutation(len(train_chunks)):
            begin, end = train_chunks[index]
            X_chunk = scaler.transform(X[begin:end])  # only this chunk is in memory
            largest_chunk = max(largest_chunk, X_chunk.nbytes)
            clf.partial_fit(X_chunk, y[begin:end], classes=classes)
        if verbose:
            print(f"pass {epoch + 1}/{n_passes}: loss of the last chunk {clf.loss_:.4f} "
                  f"({time.perf_counter() - started:.2f} s)")

    # 3. Held-out accuracy, chunk by chunk as well.
    n_correct = 0
    for begin, end in test_chunks:
        n_correct += int(np.sum(clf.predict(scaler.transform(X[begin:end])) == y[begin:end]))
    accuracy = n_correct / (n_samples - n_train)
    if verbose:
        print(f"largest array handed to partial_fit: {largest_chunk / MB:.2f} MB "
              f"(the whole training part of the file is "
              f"{n_train * X.shape[1] * X.itemsize / MB:.1f} MB)")
        print(f"samples seen by the solver: {clf.t_:.0f} "
              f"({n_passes} passes over {n_train} rows)")
    return accuracy


def main(n_samples=50_000, n_features=20, *, test_fraction=0.2, chunk_size=5_000,
         n_passes=5, random_state=0, verbose=True):
    """Write the data, train on it chunk by chunk, and return the held-out accuracy."""
    with tempfile.TemporaryDirectory(prefix="skbackprop-memmap-") as folder:
        x_path, y_path = write_dataset(folder, n_samples, n_features, random_state)
        accuracy = train_and_score(
            x_path, y_path, test_fraction=test_fraction, chunk_size=chunk_size,
            n_passes=n_passes, random_state=random_state, verbose=verbose,
        )
        # the memory maps were closed when train_and_score returned, so the
        # temporary folder and the files in it can be removed
    if verbose:
        print(f"held-out accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
