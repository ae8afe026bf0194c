"""The benchmark's report arithmetic.

``benchmarks/run.py`` is run by hand, not in CI, but the ratios it prints are
the ones the performance page quotes; these tests hold its arithmetic, on
made-up timings, without timing anything.
"""

import importlib.util
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    spec = importlib.util.spec_from_file_location("skbackprop_benchmark_run", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_ratios_are_of_medians_and_the_floor_gets_its_own_rate(bench):
    systems = {bench.OURS: bench.summarise([3.4, 3.0, 3.2]),
               bench.SKLEARN: bench.summarise([6.0, 4.0, 5.0])}
    floor = bench.summarise([2.2, 2.0, 2.1])
    bench.add_ratios(systems, flops=2.1e11, peak=200.0, floor=floor)

    ours = systems[bench.OURS]
    assert ours["ratio_mlp"] == pytest.approx(3.2 / 5.0)
    assert ours["ratio_mlp_of_mins"] == pytest.approx(3.0 / 4.0)
    assert ours["ratio_torch"] is None  # no torch in this run
    assert ours["ratio_floor"] == pytest.approx(3.2 / 2.1)
    assert ours["ratio_floor_of_mins"] == pytest.approx(3.0 / 2.0)
    assert ours["gflops"] == pytest.approx(2.1e11 / 3.2 / 1e9)
    # the floor: its rate with the systems' FLOP count, and its share of the peak
    assert floor["gflops"] == pytest.approx(100.0)
    assert floor["pct_peak"] == pytest.approx(50.0)
    assert floor["ratio_mlp"] == pytest.approx(2.1 / 5.0)
    assert floor["ratio_floor"] == 1.0


def test_the_table_ends_each_config_with_the_floor_row(bench):
    systems = {bench.OURS: bench.summarise([3.2]), bench.SKLEARN: bench.summarise([5.0])}
    systems[bench.OURS]["accuracy"] = systems[bench.SKLEARN]["accuracy"] = 0.92
    floor = bench.summarise([2.1])
    bench.add_ratios(systems, flops=2.1e11, peak=200.0, floor=floor)
    record = {"kind": "train", "config": "C2", "title": "wide-adam", "dtype": "float64",
              "systems": systems, "gemm_floor": floor}

    rows = [dict(zip(bench.HEADERS, row)) for row in bench.table_rows([record, record])]

    assert [row["system"] for row in rows] == [bench.OURS, bench.SKLEARN, bench.FLOOR] * 2
    floor_row = rows[2]
    assert floor_row["median"] == "2.100 s"
    assert floor_row["GFLOP/s"] == "100"
    assert floor_row["%peak"] == "50.0"
    assert floor_row["t/MLP"] == "0.42"
    assert floor_row["t/floor"] == "1.00"
    assert floor_row["acc %"] == "-"  # the floor predicts nothing
    assert rows[0]["t/floor"] == "1.52"


def test_the_floor_target_needs_the_ratio_of_minima_too(bench):
    """A floor slowed in some rounds by other load has a median far above
    its minimum: the ratio of medians then looks better than it is."""
    def record(floor_times):
        systems = {bench.OURS: bench.summarise([3.3, 3.6, 3.6]),
                   bench.SKLEARN: bench.summarise([5.5, 5.9, 5.9])}
        systems[bench.OURS]["accuracy"] = systems[bench.SKLEARN]["accuracy"] = 0.92
        floor = bench.summarise(floor_times)
        bench.add_ratios(systems, flops=2.1e11, peak=200.0, floor=floor)
        return {"kind": "train", "config": "C2", "dtype": "float64", "systems": systems,
                "gemm_floor": floor, "target_ratio_mlp": 0.8}

    def floor_check(floor_times):
        (check,) = [c for c in bench.check_targets([record(floor_times)])
                    if "GEMM floor" in c["what"]]
        return check

    disturbed = floor_check([2.2, 2.9, 2.9])  # medians 3.6 / 2.9 = 1.24, minima 1.5
    assert disturbed["value"] == pytest.approx(3.6 / 2.9) and not disturbed["ok"]
    assert "of minima: 1.500" in disturbed["target"]
    assert floor_check([2.6, 2.6, 2.6])["ok"]  # 1.38 and 1.27
