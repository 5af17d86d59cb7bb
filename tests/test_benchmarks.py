"""The benchmark scripts run and report numbers. No timing is asserted here: speed goals are
measured by the benchmarks themselves, never by unit tests."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

# `pytest` (unlike `python -m pytest`) does not put the repository root on sys.path; append it
# (not prepend) so `benchmarks` imports while `promptkit` still comes from the installed package.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

ROOT = Path(__file__).resolve().parent.parent
TINY_SCALE = ["--prompts", "200", "--generations", "2000", "--queries", "20"]


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_library_scale_prints_its_table():
    done = _script("library_scale.py", *TINY_SCALE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("library at scale: 200 prompts, 2,000 generation rows")
    assert lines[1].split()[:2] == ["figure", "value"]
    for label in ("build:", "search p95", "prompt page p95", "database bytes per generation row"):
        row = next(line for line in lines if line.startswith(label))
        float(row.split("]", 1)[1].split()[0].replace(",", ""))  # "name [note]  value unit  ...": a number


def test_library_scale_figures_are_numbers():
    done = _script("library_scale.py", *TINY_SCALE, "--json")
    assert done.returncode == 0, done.stderr
    figures = {f["name"].split(",")[0]: f for f in json.loads(done.stdout)["figures"]}
    for name in ("search p95", "prompt page p95", "database bytes per generation row"):
        assert _is_number(figures[name]["value"]) and figures[name]["value"] > 0
        assert _is_number(figures[name]["anchor"])
    assert figures["search p95"]["goal"] == "< 20 ms"
    assert figures["search p95"]["met"] in (True, False)


def test_run_imports_and_every_entry_names_a_script():
    from benchmarks import run

    assert run.BENCHMARKS
    for bench in run.BENCHMARKS:
        assert (ROOT / "benchmarks" / bench.script).is_file(), bench.script
    assert any(b.needs_cuda for b in run.BENCHMARKS)


def test_run_skips_gpu_benchmarks_without_cuda(monkeypatch):
    from benchmarks import run

    monkeypatch.setattr(run, "BENCHMARKS", [b for b in run.BENCHMARKS if b.needs_cuda])
    monkeypatch.setattr(run, "cuda_available", lambda: False)
    figures, commands = run.run_all(quick=True)
    assert figures and all(f.value is None and "no CUDA GPU" in f.note for f in figures)
    assert all("skipped" in c for c in commands)


def test_table_marks_goals():
    from benchmarks.figures import Figure, format_table, skipped

    table = format_table([
        Figure("fast", 1.0, "ms", anchor=0.5, goal="< 2 ms", met=True),
        Figure("slow", 3.0, "ms", goal="< 2 ms", met=False),
        Figure("noisy", 1.0, "", ratio=1.01, ratio_spread=(0.9, 1.2), goal="ratio <= 1.02", met=None),
        skipped("gpu", "no CUDA GPU"),
    ])
    assert "2.000" in table  # the ratio value / anchor
    assert " met" in table and "NOT met" in table and "unclear" in table
    assert "1.010 (0.900-1.200)" in table
    assert "skipped: no CUDA GPU" in table


def test_overhead_verdict_needs_every_pair():
    from benchmarks.overhead import verdict

    assert verdict([1.0, 1.01, 1.015], 1.02) is True
    assert verdict([1.03, 1.05, 1.04], 1.02) is False
    assert verdict([0.98, 1.05, 1.0], 1.02) is None


def test_overhead_verdict_uses_the_medians_95_percent_interval():
    from benchmarks.overhead import median_interval, verdict

    ratios = [1.0 + i / 1000 for i in range(15)]  # 1.000 .. 1.014
    assert median_interval(ratios) == (1.003, 1.011)  # 4th smallest, 4th largest: 96.5% for 15 pairs
    assert median_interval(ratios[:7]) == (1.0, 1.006)  # min-max: 98.4% for 7 pairs
    strays = ratios[:13] + [0.95, 1.06]  # one stray each way cannot decide it
    assert verdict(strays, 1.02) is True
    assert verdict([r + 0.012 for r in strays], 1.02) is None
    assert verdict([r + 0.03 for r in strays], 1.02) is False


def test_gpu_sd15_skips_without_cuda(monkeypatch, capsys):
    import torch

    from benchmarks import gpu_sd15

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_sd15.main([]) == 0
    assert "skipped: no CUDA GPU" in capsys.readouterr().out


def test_gpu_sd15_models_have_sd15_parameter_counts():
    from benchmarks import gpu_sd15

    models = gpu_sd15.build_sd15_models("meta")  # no weights allocated
    assert gpu_sd15.parameter_counts(models) == gpu_sd15.SD15_PARAMETERS


@pytest.fixture
def one_torch_thread():
    """One thread: torch's spin-waiting threads crawl on a small machine that is busy elsewhere."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gpu_sd15_measuring_code_runs_on_cpu(tiny_model, one_torch_thread):
    """The GPU script's measuring code against the real Engine and run_job, on CPU with the tiny model."""
    from benchmarks import gpu_sd15

    figures = gpu_sd15.run_smoke(Path(tiny_model), batch_sizes=(1,), steps=2)
    assert [f.unit for f in figures] == ["it/s", "img/s", "img/s"]
    assert all(_is_number(f.value) and f.value > 0 for f in figures)
