"""One scenario per row of the table in docs/failures.md ("What happens when things go wrong").

`test_every_row_has_a_scenario` reads the table, so a row without a scenario (or a
scenario without a row) fails; `test_what_goes_wrong` runs each scenario. The scenarios
run `harness` in a subprocess as a user would, and check its one line, its exit code and
what it left on disk.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pytest
import yaml
from conftest import other_tests, tiny_study, unreadable_fashion_mnist
from faults import (
    REPO,
    as_terminal_job,
    error_of,
    files_under,
    harness,
    remount,
    tmpfs,
    write_study,
)
from optuna.trial import TrialState

from harness.record.disk import remove_stale_temp_files
from harness.record.run_dir import list_run_dirs
from harness.study.queue import RunQueue
from harness.study.storage import default_storage_url

Scenario = Callable[[Path, pytest.FixtureRequest], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(row: str) -> Callable[[Scenario], Scenario]:
    def add(fn: Scenario) -> Scenario:
        SCENARIOS[row] = fn
        return fn
    return add


def documented_rows() -> list[str]:
    text = (REPO / "docs" / "failures.md").read_text()
    return re.findall(r"^\| \*\*(.+?)\*\*", text, flags=re.M)


# Rows whose scenario stays in `make test-fast`: one `harness` process that answers before
# importing torch, the queue's retry rule in-process, and the Makefile's quoting. The others
# start studies (or a dozen processes) and are marked slow; the diverging run and the W&B
# failure are also checked in test_train and test_wandb_tracking.
FAST_ROWS = {"Typo or bad value in a config or study", "A run raises an error",
             "Shell characters in a make variable"}


def test_every_row_has_a_scenario() -> None:
    assert documented_rows() and sorted(documented_rows()) == sorted(SCENARIOS)
    assert FAST_ROWS <= set(documented_rows())


@pytest.mark.parametrize("row", [pytest.param(r, marks=() if r in FAST_ROWS else pytest.mark.slow)
                                 for r in documented_rows()])
def test_what_goes_wrong(row: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    SCENARIOS[row](tmp_path, request)


# ------------------------------------------------------------------ bad input

@scenario("Typo or bad value in a config or study")
def typo(tmp: Path, request: pytest.FixtureRequest) -> None:
    path = write_study(tmp, seeds=-1)
    done = harness("ablation", str(path), "--results-dir", str(tmp / "r"))
    assert done.returncode == 2 and f"{path}: seeds = -1" in error_of(done)
    path = write_study(tmp, seeds=[0, -3])
    done = harness("ablation", str(path), "--results-dir", str(tmp / "r"))
    assert done.returncode == 2 and "seeds must be integers >= 0" in error_of(done)
    assert not (tmp / "r").exists()


@scenario("A failure known before training")
def known_before_training(tmp: Path, request: pytest.FixtureRequest) -> None:
    cases = (
        ({"data": {"name": "mnist1d", "num_samples": 600, "train_size": 999999}},
         "data.train_size = 999999: mnist1d has 432 training samples"),
        ({"data": {"name": "mnist1d", "num_samples": 600, "val_fraction": 0},
          "regularizers": {"early_stopping": {}}}, "needs a validation split"),
        ({"seeds": [2**64]}, "18446744073709551616"),
        ({"model": {"name": "mlp", "width": 10**9}}, "parameters, about"),
        ({"model": {"name": "transformer1d", "depth": 1},
          "regularizers": {"drop_path": {"rate": 0.2}}}, "drop_path would do nothing"),
    )
    for i, (base, expected) in enumerate(cases):
        path = write_study(tmp, name=f"k{i}")
        raw = yaml.safe_load(path.read_text())
        for key, value in base.items():
            if key == "seeds":  # a study's seeds, outside its base config
                raw["seeds"] = value
            else:
                raw["base"].setdefault(key, {}).update(value)
        raw["design"] = {"kind": "sweep", "parameter": "train.epochs", "values": [1]}
        path.write_text(yaml.safe_dump(raw))
        done = harness("ablation", str(path), "--results-dir", str(tmp / "r"))
        assert done.returncode == 2 and expected in error_of(done), (expected, done.stderr)
    assert not (tmp / "r").exists()


@scenario("A run fails while training")
def fails_while_training(tmp: Path, request: pytest.FixtureRequest) -> None:
    """The dataset's files are there (so the study starts) but not readable: each run fails
    when it loads them."""
    path = write_study(tmp, name="failing")
    raw = yaml.safe_load(path.read_text())
    raw["base"]["data"] = {"name": "fashion_mnist",
                           "data_dir": str(unreadable_fashion_mnist(tmp / "bad-data"))}
    path.write_text(yaml.safe_dump(raw))
    done = harness("ablation", str(path), "--results-dir", str(tmp / "r"))
    assert done.returncode == 1, done.stderr
    out = " ".join((done.stdout + done.stderr).split())
    assert "failed baseline seed 0: " in out and "not an IDX file" in out  # as it happens
    assert out.count("failed baseline seed 0:") == 1  # a user's mistake is not retried
    assert "not finished (2)" in out and "width=8 seed 0: failed: " in out
    notes = list((tmp / "r" / "failing" / "runs").glob("*/failure.json"))
    assert len(notes) == 2 and "not an IDX file" in json.loads(notes[0].read_text())["reason"]
    assert "not an IDX file" in (tmp / "r" / "failing" / "report.html").read_text()


@scenario("A dataset's files are missing")
def dataset_missing(tmp: Path, request: pytest.FixtureRequest) -> None:
    """HARNESS_DATA_DIR at an empty folder: it used to fail all 12 runs of the study after
    34 s and write 39 files, a W&B study run among them."""
    empty = tmp / "empty"
    empty.mkdir()
    path = write_study(tmp)
    raw = yaml.safe_load(path.read_text())
    raw["base"]["data"] = {"name": "fashion_mnist"}
    path.write_text(yaml.safe_dump(raw))
    for args in (["ablation", str(path)], ["ablation", "augmentation"]):
        done = harness(*args, "--results-dir", str(tmp / "r"), HARNESS_DATA_DIR=str(empty))
        line = error_of(done)
        assert done.returncode == 2 and line.startswith(
            f"error: dataset fashion_mnist: 4 file(s) missing in {empty}"), line
    assert not (tmp / "r").exists()


@scenario("A launcher that is not there")
def launcher_missing(tmp: Path, request: pytest.FixtureRequest) -> None:
    path = write_study(tmp)
    path_without_srun = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                        if not (Path(p) / "srun").exists())
    done = harness("ablation", str(path), "--launcher", "slurm", "--results-dir",
                   str(tmp / "r"), "--storage", "postgresql+psycopg2://u:pw@127.0.0.1:1/x",
                   PATH=path_without_srun)
    line = error_of(done)
    assert done.returncode == 2 and 'Could not detect "srun"' in line, line
    assert not (tmp / "r").exists()


HOSTILE = {
    "binary.yaml": (b"\x7fELF\x02\x01\x01\x00\x00", "a binary file"),
    "latin1.yaml": ("name: caf\xe9\nseeds: 2\n".encode("latin-1"), "line 1: not UTF-8 text"),
    "deep.yaml": (b"design: " + b"[" * 20000 + b"]" * 20000, "nest"),
    "deepmap.yaml": (b"".join(b"  " * i + b"k:\n" for i in range(100)),
                     "nested more than 64 levels deep"),
    "laughs.yaml": (b"name: laughs\ndesign:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                    + b"".join(f"  {c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode()
                               for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
                    "more than 100,000 values after expanding aliases"),
    "dup.yaml": (b"name: dup\nbase: {}\nseeds: 2\nbase:\n  model: {name: mlp}\n",
                 "duplicate key 'base' on lines 2 and 4"),
    "big.yaml": (b"description: '" + b"x" * 1_100_000 + b"'\n", "larger than 1,000,000 bytes"),
}


@scenario("Hostile or damaged config file")
def hostile(tmp: Path, request: pytest.FixtureRequest) -> None:
    for name, (data, expected) in HOSTILE.items():
        path = tmp / name
        path.write_bytes(data)
        for args in (["ablation", str(path)], ["run", "--config", str(path)]):
            done = harness(*args, "--results-dir", str(tmp / "r"), timeout=60)
            line = error_of(done)
            assert done.returncode == 2 and str(path) in line and expected in line, line
    assert not (tmp / "r").exists()
    small = tmp / "small.yaml"  # the size limit is configurable
    small.write_text("name: small\n" + "#" * 200 + "\n")
    done = harness("ablation", str(small), HARNESS_MAX_CONFIG_BYTES="100")
    assert done.returncode == 2 and "larger than 100 bytes" in error_of(done)


@scenario("A bad file among the studies")
def bad_study_file(tmp: Path, request: pytest.FixtureRequest) -> None:
    studies = tmp / "studies"
    studies.mkdir()
    write_study(studies, "good")
    (studies / "broken.yaml").write_bytes(HOSTILE["deep.yaml"][0])
    (studies / "binary.yaml").write_bytes(HOSTILE["binary.yaml"][0])
    (studies / "folder.yaml").mkdir()
    listing = harness("studies", cwd=tmp)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:] if line.strip()}
    assert "fault test" in lines["good"]
    assert "(invalid:" in lines["broken"] and "(invalid:" in lines["binary"]
    assert "a binary file" in lines["binary"]
    assert "folder" not in lines  # a folder is not a study
    done = harness("ablation", "goood", cwd=tmp)  # a misspelt name still gets its hint
    assert done.returncode == 2 and "did you mean 'good'?" in error_of(done)
    done = harness("ablation", "folder", cwd=tmp)
    assert done.returncode == 2 and "(did you mean 'folder'?)" not in error_of(done)


# ------------------------------------------------------------------ the machine

@scenario("Unwritable results or study folder")
def unwritable(tmp: Path, request: pytest.FixtureRequest) -> None:
    """As root (who ignores permission bits) the folder is a read-only tmpfs."""
    path = write_study(tmp)
    folder = tmp / "r" / "f"  # the study's own folder
    folder.mkdir(parents=True)
    with tmpfs(folder, "1m", read_only=True) if os.geteuid() == 0 else nullcontext(True) as ok:
        if not ok:
            pytest.skip("root, and the kernel refuses a tmpfs mount: no unwritable folder")
        if os.geteuid() != 0:
            folder.chmod(0o500)
            request.addfinalizer(lambda: folder.chmod(0o700))
        for results in (tmp / "r", folder, folder / "results"):
            done = harness("ablation", str(path), "--results-dir", str(results))
            line = error_of(done)
            assert done.returncode == 2 and f"{folder} is not writable" in line, line
        assert files_under(folder) == []


@scenario("Disk full")
def disk_full(tmp: Path, request: pytest.FixtureRequest) -> None:
    disk = tmp / "disk"
    path = write_study(tmp, seeds=1, epochs=2)
    with tmpfs(disk, "170k") as mounted:  # the queue fits, the runs do not
        if not mounted:
            pytest.skip("the kernel refuses a tmpfs mount here (needs root / CAP_SYS_ADMIN)")
        done = harness("ablation", str(path), "--workers", "1", "--results-dir", str(disk),
                       "--no-report")
        line = error_of(done)
        assert done.returncode == 1 and "disk full" in line
        assert "free space and run the same command again" in line
        remount(disk, "size=20m")
        again = harness("ablation", str(path), "--workers", "1", "--results-dir", str(disk),
                        "--no-report")
        assert again.returncode == 0, again.stderr[-2000:]
        runs = list_run_dirs(disk / "f")
        assert len(runs) == 2 and all(r.finished for r in runs)  # baseline and width 8
        q = RunQueue.open(default_storage_url(disk / "f"), "f")
        assert not [t for t in q.trials(TrialState.FAIL) if t.user_attrs.get("failure") == "error"]


@scenario("Corrupt queue")
def corrupt_queue(tmp: Path, request: pytest.FixtureRequest) -> None:
    path = write_study(tmp)
    sdir = tmp / "r" / "f"
    sdir.mkdir(parents=True)
    (sdir / "queue.db").write_bytes(b"this is not sqlite" * 100)
    done = harness("ablation", str(path), "--results-dir", str(tmp / "r"))
    line = error_of(done)
    assert done.returncode == 2 and "queue.db" in line and "deleting it is safe" in line
    assert files_under(sdir) == ["queue.db"]  # no study.json, no runs


@scenario("Bad or unreachable queue storage")
def bad_storage(tmp: Path, request: pytest.FixtureRequest) -> None:
    path = write_study(tmp)
    results = tmp / "r"
    done = harness("ablation", str(path), "--results-dir", str(results), "--storage",
                   "nosuchdb://u:secret@host/x")
    line = error_of(done)
    assert done.returncode == 2 and "u:***@host" in line and "secret" not in line
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = harness("ablation", str(path), "--results-dir", str(results), "--storage",
                   f"postgresql+psycopg2://u:secret@127.0.0.1:{port}/x")
    line = error_of(done)
    assert done.returncode == 2 and "secret" not in line, line
    assert "queue storage unreachable" in line and "check --storage" in line
    done = harness("ablation", str(path), "--results-dir", str(results), "--storage",
                   f"sqlite:///{tmp / 'no-such-folder' / 'q.db'}")
    assert done.returncode == 2 and f"folder {tmp / 'no-such-folder'} does not exist; create " \
        "it or pass another --storage" in error_of(done)
    assert not results.exists()


# ------------------------------------------------------------------ concurrency and signals

def start(path: Path, results: Path, workers: int = 1, *extra: str,
          preexec: Callable[[], None] = as_terminal_job) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *typed(path, results, workers,
                                                                         *extra)],
                            env=env, start_new_session=True, preexec_fn=preexec,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def typed(path: Path, results: Path, workers: int, *extra: str) -> list[str]:
    """The arguments `start` gives `harness` (what its resume hint must repeat)."""
    return ["ablation", str(path), "--workers", str(workers), "--results-dir", str(results),
            "--no-report", *extra]


def resume_hint(out: str) -> list[str]:
    """The arguments of the command the interrupted study says to run again."""
    line = " ".join(out.split()).split("to resume, run again: ", 1)[1]
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "harness.cli"], line
    return words[3:]


def in_background() -> None:
    """preexec_fn of a study started as `harness ablation ... &` by a shell without job
    control: SIGINT ignored, which the process and its workers inherit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def signal_state(pid: int) -> str:
    """SIGINT's place in a process's masks (blocked, ignored, caught) and in this one's: when
    Ctrl-C goes unanswered, the failure message says which."""
    def bits(path: str) -> str:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return "gone"
        masks = {ln.split(":")[0]: int(ln.split()[1], 16) for ln in lines
                 if ln.startswith(("SigBlk", "SigIgn", "SigCgt"))}
        return " ".join(f"{k}={'SIGINT' if v & 2 else '-'}" for k, v in masks.items())
    return f"harness: {bits(f'/proc/{pid}/status')}; pytest: {bits('/proc/thread-self/status')}"


def wait_for(check: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@scenario("The same study started twice")
def started_twice(tmp: Path, request: pytest.FixtureRequest) -> None:
    path = write_study(tmp, seeds=2, epochs=500)  # long enough to be running throughout
    results = tmp / "r"
    first = start(path, results)
    request.addfinalizer(lambda: first.poll() is None and os.killpg(first.pid, signal.SIGKILL))
    lock = results / "f" / ".study.lock"
    wait_for(lambda: lock.is_file() and lock.stat().st_size > 0)
    second = harness("ablation", str(path), "--results-dir", str(results), "--no-report")
    assert first.poll() is None, "the first finished too soon to test anything"
    line = error_of(second)
    holder = json.loads(lock.read_text())
    assert second.returncode == 2 and "already running" in line
    assert f"pid {first.pid} on {socket.gethostname()} since {holder['since']}" in line
    state = signal_state(first.pid)
    os.killpg(first.pid, signal.SIGINT)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 130 and "Traceback" not in out, state + "\n" + out[-2000:]
    trials = RunQueue.open(default_storage_url(results / "f"), "f").trials()
    assert len(trials) == 4  # baseline and width 8, 2 seeds: queued once each
    assert len({t.user_attrs["run_id"] for t in trials}) == 4


@scenario("Ctrl-C")
def ctrl_c(tmp: Path, request: pytest.FixtureRequest) -> None:
    path = write_study(tmp, seeds=2, epochs=200)
    results = tmp / "r"
    extra = ("--set", "base.train.batch_size=64")  # the hint must repeat it (and --results-dir)
    proc = start(path, results, 2, *extra)
    request.addfinalizer(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
    runs = results / "f" / "runs"
    wait_for(lambda: len(list(runs.glob("*/metrics.csv"))) == 2, timeout=400)
    state = signal_state(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "interrupted" in out and "Traceback" not in out, \
        state + "\n" + out
    assert resume_hint(out) == typed(path, results, 2, *extra)  # not `make ablation STUDY=..`
    in_flight = [r for r in list_run_dirs(results / "f") if r.metrics()]
    assert len(in_flight) == 2
    assert [r.summary["status"] for r in in_flight] == ["interrupted", "interrupted"]
    q = RunQueue.open(default_storage_url(results / "f"), "f")
    assert not q.trials(TrialState.RUNNING)
    interrupted = q.trials(TrialState.FAIL)
    assert len(interrupted) == 2
    assert all(t.user_attrs["failure"] == "interrupted" for t in interrupted)


def stopped_runs(results: Path) -> list[str]:
    """The status of each run that had started (interrupted when stopped right)."""
    return [r.summary["status"] for r in list_run_dirs(results / "f") if r.metrics()]


@scenario("SIGTERM")
def sigterm(tmp: Path, request: pytest.FixtureRequest) -> None:
    """`kill PID` (a batch system's time limit, a container's stop) does what Ctrl-C does;
    it used to end the coordinator on the spot, its workers left running."""
    path = write_study(tmp, seeds=2, epochs=200)
    results = tmp / "r"
    proc = start(path, results, 2)
    request.addfinalizer(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
    wait_for(lambda: len(list((results / "f" / "runs").glob("*/metrics.csv"))) == 2, 400)
    proc.send_signal(signal.SIGTERM)  # to the coordinator only: it stops its workers
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in out, out
    assert "Traceback" not in out and resume_hint(out) == typed(path, results, 2)
    assert stopped_runs(results) == ["interrupted", "interrupted"]
    q = RunQueue.open(default_storage_url(results / "f"), "f")
    assert not q.trials(TrialState.RUNNING)
    assert [t.user_attrs["failure"] for t in q.trials(TrialState.FAIL)] == ["interrupted"] * 2


@scenario("Started in the background")
def background(tmp: Path, request: pytest.FixtureRequest) -> None:
    """`harness ablation x &` from a script: SIGINT ignored, as the shell asks, by the
    coordinator and its workers alike (the workers used to stop their runs, which the
    coordinator then ran again without a word); SIGTERM stops it."""
    path = write_study(tmp, seeds=2, epochs=200)
    results = tmp / "r"
    proc = start(path, results, 2, preexec=in_background)
    request.addfinalizer(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
    runs = results / "f" / "runs"
    wait_for(lambda: len(list(runs.glob("*/metrics.csv"))) == 2, timeout=400)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group: coordinator and workers
    before = {p.name: len(p.read_text()) for p in runs.glob("*/metrics.csv")}
    wait_for(lambda: any(len(p.read_text()) > before.get(p.name, 0)
                         for p in runs.glob("*/metrics.csv")), timeout=120)
    assert proc.poll() is None and not list(runs.glob("*/summary.json")), "SIGINT stopped runs"
    q = RunQueue.open(default_storage_url(results / "f"), "f")
    assert not q.trials(TrialState.FAIL)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in out, out
    assert stopped_runs(results) == ["interrupted", "interrupted"]


@scenario("A worker or the machine dies")
def killed(tmp: Path, request: pytest.FixtureRequest) -> None:
    # resumes, nothing lost or run twice
    other_tests("test_study").test_killed_study_resumes_without_duplicates(tmp)
    # what a SIGKILL during a write leaves: a temp file that was never renamed
    run = list_run_dirs(tmp / "results" / "k")[0].path
    old, fresh = run / ".checkpoint.pt.abc123.tmp", run / ".summary.json.def456.tmp"
    old.write_bytes(b"\0" * 1000)
    fresh.write_bytes(b"{}")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    path = tmp / "k.yaml"
    done = harness("ablation", str(path), "--results-dir", str(tmp / "results"), "--no-report")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not old.exists() and fresh.exists()  # a fresh one may be someone's write
    # the kill above may itself have left a fresh temp file mid-write: at least ours goes
    assert remove_stale_temp_files(tmp / "results" / "k", min_age=0) >= 1
    assert not fresh.exists()


@scenario("A run diverges")
def diverges(tmp: Path, request: pytest.FixtureRequest) -> None:
    other_tests("test_train").test_divergence_is_stored_and_stops_at_once(tmp)


@scenario("A run raises an error")
def run_error(tmp: Path, request: pytest.FixtureRequest) -> None:
    from harness.study.plan import expand

    (spec,) = expand(tiny_study(design={"kind": "sweep", "parameter": "model.width",
                                        "values": [8]}, seeds=1))[:1]
    q = RunQueue.open(default_storage_url(tmp), "t")
    for failure in ("interrupted", "environment", "duplicate", "error", "error", "error"):
        assert q.enqueue_missing([spec], set()) == 1
        job = q.pop()
        q.fail(job, "boom", failure)
    assert q.enqueue_missing([spec], set()) == 0  # 3 errors: left failed
    assert len(q.trials(TrialState.FAIL)) == 6


@scenario("W&B fails")
def wandb_fails(tmp: Path, request: pytest.FixtureRequest) -> None:
    check = other_tests("test_wandb_tracking").test_init_failure_is_a_warning_not_an_error
    check(tmp, request.getfixturevalue("monkeypatch"), request.getfixturevalue("caplog"))


@scenario("Shell characters in a make variable")
def makefile_hostile(tmp: Path, request: pytest.FixtureRequest) -> None:
    """Runs a copy of the Makefile with a fake venv whose `harness` records its argv: make
    installs nothing (the stamp is newer than pyproject.toml) and runs nothing else."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(REPO / "Makefile", tmp / "Makefile")
    (tmp / "pyproject.toml").write_text("")
    bin_dir = tmp / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    record = tmp / "argv.jsonl"
    fake = bin_dir / "harness"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(0o755)
    stamp = tmp / ".venv" / ".installed"
    stamp.write_text("")
    os.utime(tmp / "pyproject.toml", (time.time() - 60, time.time() - 60))
    canary = tmp / "canary"
    hostile_values = [f"x; touch {canary}", f"`touch {canary}`", f"$$(touch {canary})",
                      f"x && touch {canary}", f"x' ; touch {canary} ; '", f"x\" | touch {canary}"]
    for value in hostile_values:
        for target in ("ablation", "tune", "report"):
            record.unlink(missing_ok=True)
            done = subprocess.run(["make", "-s", target, f"STUDY={value}", "WORKERS=2; true",
                                   f"ARGS=--x ;touch {canary}"], cwd=tmp, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert not canary.exists(), (target, value)
            argv = json.loads(record.read_text())
            expected_study = value.replace("$$", "$")
            assert argv[:2] == [target, expected_study], argv
            assert argv[-3:] == ["--x", ";touch", str(canary)]  # split, never run
