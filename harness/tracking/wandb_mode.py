"""Which W&B mode a run gets (online / offline / disabled), decided by the harness itself.

wandb would otherwise prompt for a key forever on a terminal, or raise without one, and
retry an unreachable server for 20-100 s per run: so credentials are looked up without
prompting, the server is probed once per process (one TCP connect), and the answer is
remembered for the study's other runs and the worker processes it starts.
"""

from __future__ import annotations

import functools
import logging
import netrc
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
DEFAULT_BASE_URL = "https://api.wandb.ai"
PROBE_TIMEOUT_S = 3.0  # one TCP connect to the W&B server before going online
# Set (to the server URL) once a process found the W&B server unreachable: later runs of the
# study, and the worker processes it starts (they inherit it), go offline without waiting.
UNREACHABLE_ENV = "HARNESS_WANDB_UNREACHABLE"

def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def _netrc_path() -> Path:
    env = os.environ.get("NETRC")
    return Path(env).expanduser() if env else Path("~/.netrc").expanduser()


def _stdlib_netrc_key(host: str) -> str | None:
    """Fallback when wandb's private netrc reader moves: the stdlib parser, errors -> None."""
    netloc = urlsplit(host).netloc
    if not netloc:
        return None
    try:
        creds = netrc.netrc(str(_netrc_path())).authenticators(netloc)
    except (OSError, netrc.NetrcParseError):
        return None
    return creds[2] if creds and creds[2] else None


def find_credentials() -> tuple[str | None, str]:
    """Where a W&B key would come from, without prompting or touching the network.

    Returns (source, problem): source is "WANDB_API_KEY", a netrc path, or None; problem is
    a non-empty explanation when a key was found but wandb would reject its format.
    """
    key = os.environ.get("WANDB_API_KEY", "").strip()
    if key:
        problem = _check_key_format(key)
        return "WANDB_API_KEY", problem or ""
    if os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "WANDB_IDENTITY_TOKEN_FILE", ""
    host = _base_url()
    try:  # wandb's own reader: same host matching rules as wandb.init uses.
        from wandb.sdk.lib.wbauth import wbnetrc

        found = wbnetrc.read_netrc_auth(host=host)
    except ImportError:
        found = _stdlib_netrc_key(host)
    except Exception as exc:  # AuthenticationError: a netrc entry with a malformed key.
        return str(_netrc_path()), f"netrc entry for {host} rejected: {exc}"
    return (str(_netrc_path()), "") if found else (None, "")


def _check_key_format(key: str) -> str | None:
    try:
        from wandb.sdk.lib.wbauth import check_api_key
    except ImportError:
        return None
    try:
        return check_api_key(key)
    except Exception:
        return None


def choose_mode(requested: str) -> tuple[str, str]:
    """Resolve the requested W&B mode to online/offline/disabled plus a one-line reason.

    "auto" never leaves the choice to wandb: with no key it would raise (no TTY) or prompt
    forever (TTY). WANDB_MODE, when set to a known value, wins over auto-detection.
    """
    requested = (requested or "auto").strip().lower()
    if requested not in MODES:
        raise ValueError(f"W&B mode must be one of {', '.join(MODES)}, got {requested!r}")
    if requested != "auto":
        return requested, f"W&B mode {requested} (requested)"
    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode == "dryrun":
        env_mode = "offline"
    if env_mode in ("online", "offline", "disabled"):
        return env_mode, f"W&B mode {env_mode} (from WANDB_MODE)"
    source, problem = find_credentials()
    if source and not problem:
        unreachable = server_unreachable()
        if unreachable:
            return "offline", f"W&B offline: {unreachable} (upload later with `harness sync`)"
        return "online", f"W&B online (credentials from {source})"
    if problem:
        return "offline", f"W&B offline: {problem}"
    return "offline", (
        "W&B offline: no WANDB_API_KEY or netrc login found "
        "(run `wandb login`, then `wandb sync` the run folders to upload)"
    )


def server_unreachable() -> str | None:
    """Why the W&B server cannot be reached (None when it can), probed once per process.

    wandb itself retries an unreachable server for 20-100 s per run; one TCP connect tells
    the same in at most PROBE_TIMEOUT_S. The answer is remembered in UNREACHABLE_ENV so the
    study's other runs and its worker processes skip both the probe and the wait.
    """
    url = _base_url()
    if os.environ.get(UNREACHABLE_ENV) == url:
        return f"W&B server {url} unreachable (found earlier in this study)"
    why = _probe(url)
    if why:
        os.environ[UNREACHABLE_ENV] = url
    return why


@functools.lru_cache(maxsize=8)
def _probe(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None  # not a URL we understand: leave it to wandb
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"W&B server {url} unreachable ({type(exc).__name__}: {exc})"


def mark_unreachable(why: str) -> None:
    """An online init failed: the rest of this study goes offline at once."""
    os.environ[UNREACHABLE_ENV] = _base_url()
    log.debug("W&B marked unreachable: %s", why)
