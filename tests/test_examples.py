"""The scripts in examples/ run and do what they say."""

import importlib.util
import tempfile
from pathlib import Path

import numpy as np

from skbackprop import BackpropMLPClassifier

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    """Import ``examples/<name>.py`` as a module, without running its ``__main__`` block."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stream_memmap_learns_from_chunks_and_cleans_up(monkeypatch, tmp_path, capsys):
    example = load_example("stream_memmap")

    calls = []

    class RecordingClassifier(BackpropMLPClassifier):
        def partial_fit(self, X, y, classes=None, sample_weight=None):
            calls.append((len(X), classes))
            return super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)

    monkeypatch.setattr(example, "BackpropMLPClassifier", RecordingClassifier)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the memmap goes

    n_samples, chunk_size, n_passes = 6_000, 1_000, 4
    accuracy = example.main(
        n_samples, 20, test_fraction=0.2, chunk_size=chunk_size, n_passes=n_passes,
        random_state=0,
    )

    assert accuracy > 0.8
    # 4800 training rows: 5 chunks, none larger than chunk_size, once per pass
    assert len(calls) == 5 * n_passes
    assert max(n_rows for n_rows, _ in calls) <= chunk_size
    assert sum(n_rows for n_rows, _ in calls) == 4_800 * n_passes
    np.testing.assert_array_equal(calls[0][1], [0, 1, 2])  # classes= on the first call
    assert "held-out accuracy" in capsys.readouterr().out
    # the temporary folder holding the memmap files was removed
    assert list(tmp_path.iterdir()) == []


def test_stream_memmap_is_deterministic():
    example = load_example("stream_memmap")
    kwargs = dict(test_fraction=0.25, chunk_size=500, n_passes=2, random_state=1, verbose=False)
    assert example.main(2_000, 10, **kwargs) == example.main(2_000, 10, **kwargs)
