"""Write one section of bench/RESULTS.md, leaving the other sections as they are."""

from __future__ import annotations

import platform
import re
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nMeasured figures, each section written by the script it names.\n"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> str:
    return subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()


def machine() -> str:
    import torch

    cpu, n = cpu_model(), cores()
    return (f"{time.strftime('%Y-%m-%d')}, {n} cores ({cpu}), Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def write_section(title: str, body: str) -> None:
    text = RESULTS.read_text() if RESULTS.is_file() else HEADER
    section = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + section
    RESULTS.write_text(text.rstrip() + "\n")
