"""The Hugging Face hub, online and offline: fail fast and clearly when it cannot be reached.

Without ``HF_HUB_OFFLINE``, ``huggingface_hub`` retries an unreachable hub for tens of seconds with many lines
of retry noise before giving up. ``offline_if_unreachable`` makes one short probe first; when the hub cannot be
reached it switches the process to offline mode, so cached files still load and anything else fails at once
with the one-line error its caller raises. Errors are recognised by exception class (``unreachable``), never by
message text.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0


def unreachable() -> tuple[type[BaseException], ...]:
    """Exception classes meaning "the hub could not be reached" (offline mode, no network, a file that is not
    cached): ``huggingface_hub``'s own classes, the HTTP client's transport errors, and the builtin
    ``ConnectionError`` that ``datasets.load_dataset`` raises."""
    classes: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from huggingface_hub import errors as hf

        classes += [hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled]
    except ImportError:
        pass
    try:
        import httpx

        classes.append(httpx.TransportError)
    except ImportError:
        pass
    try:
        import requests

        classes += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    except ImportError:
        pass
    return tuple(classes)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def reachable() -> bool:
    """One TCP connection attempt to the hub's host (``HF_ENDPOINT``), at most ``PROBE_TIMEOUT_S``."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def go_offline() -> None:
    """Switch this process to the hub's offline mode (environment and the already-imported libraries)."""
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    for module, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
                         ("transformers.utils.hub", "_is_offline_mode")):
        if module in sys.modules and hasattr(sys.modules[module], attr):
            setattr(sys.modules[module], attr, True)


def offline_if_unreachable() -> None:
    """Before a hub download: when the hub cannot be reached, go offline (cached files still load)."""
    if not _offline() and not reachable():
        go_offline()
