"""The registry of audit checks: each check is a function `check(ctx) -> [Finding]`
registered in `CHECKS` with the finding ids it can produce (the ids are a stable
interface: CI configurations name them in `--ignore`). A check raises
`Skip(reason)` when it cannot look (no dpkg database, no environment visible, ...).
"""

from dataclasses import dataclass
from typing import Callable, Tuple


class Skip(Exception):
    """The check could not look; the message says why (shown as 'not checked')."""


@dataclass
class Check:
    id: str
    ids: Tuple[str, ...]
    run: Callable
    background: bool = False    # mostly waits for a subprocess: run in a thread
    image_only: bool = False    # needs an image's layers (audit IMAGE): skipped otherwise


# The note of an image-only check's run with --root or inside the image.
IMAGE_ONLY = "image-only: needs the image's layers (audit IMAGE)"

CHECKS = []


def check(check_id, *ids, background=False, image_only=False):
    def deco(fn):
        CHECKS.append(Check(check_id, tuple(ids) or (check_id,), fn, background, image_only))
        return fn
    return deco


def known_ids():
    result = set()
    for c in CHECKS:
        result.add(c.id)
        result.update(c.ids)
    return result
