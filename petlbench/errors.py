"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input the user can fix. The message names the problem and the fix."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def hub_unreachable() -> tuple[type[BaseException], ...]:
    """Exception classes meaning "the Hugging Face hub could not be reached" (offline mode, no network, a
    file that is not cached): ``huggingface_hub``'s own classes, the HTTP client's transport errors, and the
    builtin ``ConnectionError`` that ``datasets.load_dataset`` raises. Recognised by class, not by message."""
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
