"""W&B mirror: mode choice, offline logging read back from the .wandb file, failure handling.

Everything runs offline with all W&B folders inside tmp; nothing touches the network.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, TESTS
from wandb_offline import find_offline_runs, read_offline_run

from harness.tracking.wandb_client import WandbRun, choose_mode, wandb_safe_id
from harness.tracking.wandb_log import BLOCK_LEN, FULL, RECORD_HEADER_LEN, split_records

FAKE_KEY = "a" * 40  # the right shape for wandb's format check; never sent anywhere.


@pytest.fixture(scope="module", autouse=True)
def wandb_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep wandb's cache/data/config/temp files in tmp and stop wandb-core afterwards."""
    base = tmp_path_factory.mktemp("wandb_env")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
            (base / var).mkdir()
            mp.setenv(var, str(base / var))
        (base / "tmp").mkdir()
        mp.setenv("TMPDIR", str(base / "tmp"))
        mp.setenv("NETRC", str(base / "no-such-netrc"))
        for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_IDENTITY_TOKEN_FILE"):
            mp.delenv(var, raising=False)
        yield base
        try:
            import wandb

            wandb.teardown()
        except Exception:
            pass


def make_tracker(root: Path, mode: str = "offline", run_id: str = "cifar/l2-0.001/seed0"):
    return WandbRun(
        mode=mode,
        project="harness-test",
        entity=None,
        group="l2-sweep",
        job_type="train",
        name="l2-0.001-seed0",
        tags=["l2", "seed0"],
        config={"lr": 0.1, "weight_decay": 0.001, "model": {"name": "mlp", "width": 128}},
        run_id=run_id,
        root=root,
    )


def epoch_rows(n: int = 5) -> list[dict[str, Any]]:
    return [
        {
            "epoch": e,
            "train_loss": 2.0 / (e + 1),
            "val_loss": 2.5 - 0.3 * e,
            "val_acc": 0.5 + 0.05 * e,
            "lr": 0.1,
        }
        for e in range(1, n + 1)
    ]


def same_number(a: Any, b: Any) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)


def test_choose_mode_auto_is_offline_without_credentials() -> None:
    mode, reason = choose_mode("auto")
    assert mode == "offline"
    assert "offline" in reason


def test_choose_mode_auto_is_online_with_api_key(monkeypatch: pytest.MonkeyPatch,
                                                 wandb_server: str) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert choose_mode("auto")[0] == "online"


def test_choose_mode_auto_is_online_with_netrc_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.tracking import wandb_mode

    monkeypatch.setattr(wandb_mode, "_probe", lambda url: None)  # api.wandb.ai "reachable"
    rc = tmp_path / "netrc"
    rc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    rc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(rc))
    mode, reason = choose_mode("auto")
    assert mode == "online"
    assert str(rc) in reason


def test_choose_mode_honours_wandb_mode_and_explicit_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert choose_mode("disabled")[0] == "disabled"
    assert choose_mode("offline")[0] == "offline"
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert choose_mode("auto")[0] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert choose_mode("auto")[0] == "disabled"
    with pytest.raises(ValueError):
        choose_mode("sometimes")


def test_malformed_api_key_means_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "short")
    mode, reason = choose_mode("auto")
    assert mode == "offline"
    assert "40" in reason


def test_wandb_safe_id_is_deterministic_clean_and_distinct() -> None:
    a, b = wandb_safe_id("cifar/l2:0.001 seed#0"), wandb_safe_id("cifar/l2:0.001 seed#0")
    assert a == b  # the same run resumes the same W&B run
    assert a.startswith("cifar-l2-0-001-seed-0-") and len(a) <= 64
    assert all(c.isalnum() or c in "-_" for c in a)
    # ids that slug alike still differ: the suffix is a hash of the full id
    assert wandb_safe_id("a/b") != wandb_safe_id("a:b")


def test_offline_run_round_trips(tmp_path: Path) -> None:
    tracker = make_tracker(tmp_path)
    assert tracker.mode == "offline" and not tracker.failed
    rows = epoch_rows()
    for row in rows:
        tracker.log_epoch(row)
    tracker.set_summary({"test_acc": 0.91, "best": {"epoch": 5, "val_acc": 0.7}})
    tracker.finish()

    run_dir = tracker.run_dir
    assert run_dir is not None and run_dir.is_dir()
    assert run_dir.name.startswith("offline-run-")
    assert tmp_path in run_dir.parents  # wandb wrote under root, not elsewhere
    assert find_offline_runs(tmp_path) == [run_dir]
    assert tracker.info["dir"] == str(run_dir)

    run = read_offline_run(run_dir)
    assert run.complete and not run.truncated and run.exit_code == 0
    assert run.config == {"lr": 0.1, "weight_decay": 0.001, "model": {"name": "mlp", "width": 128}}
    assert (run.group, run.job_type, run.name) == ("l2-sweep", "train", "l2-0.001-seed0")
    assert run.tags == ["l2", "seed0"]
    assert run.run_id == tracker.info["id"] and run.run_id.startswith("cifar-l2-0-001-seed0-")

    assert len(run.history) == len(rows)
    for logged, read in zip(rows, run.history, strict=True):
        for key, value in logged.items():
            assert same_number(read[key], value), (key, read[key], value)
        assert {"_step", "_runtime", "_timestamp"} <= set(read)
    assert [r["_step"] for r in run.history] == list(range(len(rows)))

    defs = {d["name"]: d for d in run.metric_definitions}
    assert defs["*"]["glob"] and defs["*"]["step_metric"] == "epoch"
    assert "epoch" in defs and defs["epoch"]["step_metric"] is None
    assert defs["val_acc"]["step_metric"] == "epoch" and defs["val_acc"]["summary"] == ["max"]
    assert defs["val_loss"]["step_metric"] == "epoch" and defs["val_loss"]["summary"] == ["min"]

    assert same_number(run.summary["test_acc"], 0.91)
    assert run.summary["best"] == {"epoch": 5, "val_acc": 0.7}
    assert same_number(run.summary["val_acc"]["max"], max(r["val_acc"] for r in rows))
    assert same_number(run.summary["val_loss"]["min"], min(r["val_loss"] for r in rows))
    assert same_number(run.summary["train_loss"], rows[-1]["train_loss"])


def test_second_attempt_of_a_run_resumes_its_wandb_run(tmp_path: Path) -> None:
    first = make_tracker(tmp_path)
    first.finish()
    second = make_tracker(tmp_path)
    second.finish()
    assert first.info["id"] == second.info["id"] and not second.failed
    folders = find_offline_runs(tmp_path)  # offline: one folder per attempt, same id
    assert len(folders) == 2
    assert {read_offline_run(f).run_id for f in folders} == {first.info["id"]}


def test_truncated_log_keeps_complete_records(tmp_path: Path) -> None:
    tracker = make_tracker(tmp_path)
    for row in epoch_rows():
        tracker.log_epoch(row)
    tracker.finish()
    assert tracker.run_dir is not None
    (log_file,) = tracker.run_dir.glob("run-*.wandb")
    data = log_file.read_bytes()
    keep = 3  # history records kept whole; the cut lands inside the record after the third
    cut = tmp_path / "cut" / log_file.name
    cut.parent.mkdir()
    cut.write_bytes(data[: history_record_end(data, keep) + 3])
    run = read_offline_run(cut.parent)
    assert run.truncated and not run.complete
    assert run.config["lr"] == 0.1
    assert [row["epoch"] for row in run.history] == [1, 2, 3]
    for got, want in zip(run.history, epoch_rows(keep), strict=True):
        assert all(same_number(got[k], v) for k, v in want.items())


def history_record_end(data: bytes, k: int) -> int:
    """Byte offset just past the k-th history record of a .wandb log (a fixed point of the
    file, wherever wandb-core put the records before it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    payloads, truncated = split_records(data)
    assert not truncated
    history = [p for p in payloads if pb.Record.FromString(p).WhichOneof("record_type")
               == "history"]
    assert len(history) >= k + 1, f"only {len(history)} history records"
    payload = history[k - 1]  # small: one FULL record, stored whole after its 7-byte header
    start = data.index(payload)
    length, rtype = struct.unpack("<HB", data[start - 3 : start])
    assert (length, rtype) == (len(payload), FULL)
    end = start + len(payload)
    assert BLOCK_LEN - end % BLOCK_LEN > RECORD_HEADER_LEN, "the next record starts a new block"
    return end


def test_disabled_tracker_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "study"
    tracker = make_tracker(root, mode="disabled")
    tracker.log_epoch({"epoch": 1, "train_loss": 1.0})
    tracker.set_summary({"test_acc": 0.5})
    tracker.finish()
    assert tracker.mode == "disabled" and tracker.run_dir is None and not tracker.failed
    assert not root.exists() or not any(root.iterdir())


def test_init_failure_is_a_warning_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import wandb

    def broken_init(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("wandb-core exploded")

    monkeypatch.setattr(wandb, "init", broken_init)
    with caplog.at_level(logging.WARNING, logger="harness.tracking.wandb_client"):
        tracker = make_tracker(tmp_path)
        tracker.log_epoch({"epoch": 1, "train_loss": 1.0})
        tracker.set_summary({"test_acc": 0.5})
        tracker.finish()
    assert tracker.failed and tracker.run_dir is None
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_online_init_failure_falls_back_to_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    wandb_server: str
) -> None:
    import wandb

    real_init = wandb.init

    def no_network(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("mode") == "online":
            raise wandb.errors.CommError("simulated: no network")
        return real_init(*args, **kwargs)

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setattr(wandb, "init", no_network)
    with caplog.at_level(logging.WARNING, logger="harness.tracking.wandb_client"):
        tracker = make_tracker(tmp_path, mode="online")
    tracker.log_epoch({"epoch": 1, "train_loss": 1.0})
    tracker.finish()
    assert tracker.mode == "offline" and not tracker.failed
    assert any("offline" in r.getMessage() for r in caplog.records)
    assert tracker.run_dir is not None
    assert len(read_offline_run(tracker.run_dir).history) == 1
    # the failure is remembered: the study's next runs go offline without trying again
    assert choose_mode("auto")[0] == "offline"


def test_log_failure_does_not_raise_and_keeps_earlier_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = make_tracker(tmp_path)
    rows = epoch_rows(3)
    tracker.log_epoch(rows[0])

    def broken_log(*args: Any, **kwargs: Any) -> None:
        raise OSError("simulated wandb.log failure")

    monkeypatch.setattr(tracker._run, "log", broken_log)
    tracker.log_epoch(rows[1])
    assert tracker.failed
    tracker.log_epoch(rows[2])  # a no-op now
    tracker.set_summary({"test_acc": 0.5})
    tracker.finish(exit_code=1)
    assert tracker.run_dir is not None
    run = read_offline_run(tracker.run_dir)
    assert len(run.history) == 1
    assert same_number(run.history[0]["train_loss"], rows[0]["train_loss"])
    assert run.exit_code == 1


@pytest.mark.slow
def test_an_offline_run_never_imports_wandb_launch_yet_staged_inputs_still_apply(
        tmp_path: Path) -> None:
    """wandb.init's Launch-input step is skipped only while nothing could have been staged
    (the staging module is not imported); once it is, wandb's own step runs for each init."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from test_wandb_tracking import make_tracker, epoch_rows
        t = make_tracker(Path({str(tmp_path)!r}) / "a")
        t.log_epoch(epoch_rows(1)[0]); t.finish()
        print("launch imported after a run:", {LAUNCH!r} in sys.modules)
        from wandb.sdk.launch.inputs import internal
        seen = []
        internal.StagedLaunchInputs.apply = lambda self, run: seen.append(run.id)
        t = make_tracker(Path({str(tmp_path)!r}) / "b", run_id="b/seed0")
        t.finish()
        print("applied for:", seen)
    """)
    env = {**__import__("os").environ, "PYTHONPATH": f"{Path(__file__).parent}:{TESTS}:{REPO}",
           "WANDB_DIR": str(tmp_path), "WANDB_CONFIG_DIR": str(tmp_path),
           "WANDB_CACHE_DIR": str(tmp_path), "WANDB_DATA_DIR": str(tmp_path),
           "NETRC": str(tmp_path / "none"), "WANDB_API_KEY": ""}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "launch imported after a run: False" in out.stdout, out.stdout
    applied = out.stdout.split("applied for:")[1].strip()
    assert applied.startswith("[") and applied != "[]", out.stdout  # wandb's step ran once


LAUNCH = "wandb.sdk.launch.inputs.internal"


def test_runs_of_one_process_read_the_installed_packages_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each W&B run records the installed packages (requirements.txt); a process reads them
    once and every later run records the same list."""
    import wandb.util

    from harness.tracking import wandb_packages

    reads = []
    original = wandb.util.working_set

    def counted() -> Any:
        reads.append(1)
        return original()

    monkeypatch.setattr(wandb.util, "working_set", counted)
    expected = sorted(f"{d.key}=={d.version}" for d in original())
    wandb_packages.list_packages_once()
    wandb_packages.list_packages_once()  # wraps once
    for seed in range(2):
        make_tracker(tmp_path / f"s{seed}").finish()
    assert len(reads) == 1
    for seed in range(2):
        (listed,) = (tmp_path / f"s{seed}").rglob("requirements.txt")
        assert sorted(listed.read_text().split()) == expected
