"""bench/plain_device.py is the shared hand-written yardsticks with a device argument: on the
CPU, over a few epochs, it prints exactly what the shared scripts print."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SHARED = REPO.parent / "shared" / "bench"


# Both loops run in one interpreter that generates each MNIST-1D set once (it takes 3-9 s).
DRIVER = r"""
import contextlib, io, json, runpy, sys
import mnist1d.data as md
made, make = {}, md.make_dataset
def make_once(args):
    key = repr(sorted(vars(args).items(), key=str))
    if key not in made:
        made[key] = make(args)
    return made[key]
md.make_dataset = make_once
out = []
for argv in json.loads(sys.argv[1]):
    sys.argv = argv
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        runpy.run_path(argv[0], run_name="__main__")
    out.append(buf.getvalue())
print(json.dumps(out))
"""


def outputs(*argvs: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    return [re.sub(r"wall [0-9.]+s", "wall", text) for text in printed]  # all but the timing


def shared_with_epochs(tmp_path: Path, name: str, loop: str, epochs: int) -> Path:
    """The shared script with its epoch count cut: the one edit."""
    text = (SHARED / name).read_text()
    assert text.count(loop) == 1, f"{name} changed: {loop!r} not found once"
    script = tmp_path / name
    script.write_text(text.replace(loop, loop.split("(")[0] + f"({epochs})"))
    return script


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared yardsticks are not beside the repo")
@pytest.mark.parametrize(("name", "loop", "args"), [
    ("plain_dropout_study.py", "range(60)", ["dropout", "1"]),
    ("plain_dd_width.py", "range(500)", ["dd", "8", "1"]),
])
def test_device_copy_prints_what_the_shared_loop_prints(tmp_path: Path, name: str, loop: str,
                                                        args: list[str]) -> None:
    epochs = 3
    shared, ours = outputs([str(shared_with_epochs(tmp_path, name, loop, epochs)), *args[1:]],
                           [str(REPO / "bench" / "plain_device.py"), *args, "--device", "cpu",
                            "--epochs", str(epochs)])
    assert ours == shared
    assert "wall" in ours and ("{0.0: 0." in ours or "test err 0." in ours)
