"""Side-by-side processes: they run in parallel with their thread count; a failure names its log."""

import os

import pytest

from lit_rpe.study.jobs import Job, JobFailed, run_jobs


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A folder of tiny modules the jobs run as ``python -m <name>``."""
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return tmp_path


def test_jobs_run_side_by_side_with_their_thread_count(modules):
    # each job waits for the other's flag file: both succeed only if they run at the same time
    (modules / "pair.py").write_text(
        "import os, sys, time, pathlib\n"
        "d, me, other = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
        "(d / me).touch(); t = time.time()\n"
        "while not (d / other).exists() and time.time() - t < 60: time.sleep(0.05)\n"
        "print(os.environ['OMP_NUM_THREADS']); sys.exit(0 if (d / other).exists() else 3)\n"
    )
    jobs = [
        Job("a", ("pair", str(modules), "a", "b"), modules / "a.log"),
        Job("b", ("pair", str(modules), "b", "a"), modules / "b.log"),
    ]
    results = run_jobs(jobs, workers=2, threads=3, echo=lambda _: None)
    assert sorted(r.name for r in results) == ["a", "b"]
    assert all(r.returncode == 0 and r.cpu_s >= 0 for r in results)
    assert (modules / "a.log").read_text().strip() == "3"


def test_a_failing_job_raises_naming_its_log_and_starts_no_more(modules):
    (modules / "fail.py").write_text("import sys; print('boom'); sys.exit(2)")
    (modules / "ok.py").write_text("print('fine')")
    jobs = [
        Job("bad", ("fail",), modules / "bad.log"),
        Job("never", ("ok",), modules / "never.log"),
    ]
    with pytest.raises(JobFailed, match=r"bad exited with 2, see .*bad\.log"):
        run_jobs(jobs, workers=1, threads=1, echo=lambda _: None)
    assert "boom" in (modules / "bad.log").read_text()
    assert not (modules / "never.log").exists()
