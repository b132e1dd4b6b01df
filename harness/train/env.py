"""What a run records about where it ran, so it can be repeated and its report regenerated."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from harness.version import PACKAGE_DIR, __version__


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def torchvision_version() -> str | None:
    """torchvision's own __version__ (with its build tag, as 0.29.1+cu130), read from its
    version.py: importing torchvision takes about 2 s (it imports torch._dynamo) in a run
    that may not use it."""
    if "torchvision" in sys.modules:
        return str(sys.modules["torchvision"].__version__)
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        text = ""
    found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, flags=re.M)
    if found:
        return found.group(1)
    try:  # the distribution's version, without the build tag
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision_version(),
        "harness": __version__,
        "git_commit": git_commit(),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "seed": seed,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
