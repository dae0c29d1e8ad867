"""What bench cases share: the Variant record and how to call this checkout's pyimgtools."""

import os
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Variant:
    name: str
    command: Callable[[str], List[str]]
    prepare: Optional[Callable[[str], None]] = None
    env: dict = field(default_factory=dict)
    ok_returncodes: tuple = (0,)
    # The row whose median this one's ratio is against (default: the first row).
    baseline: Optional[str] = None
    # Run under `/usr/bin/time -v` and show its "Maximum resident set size".
    peak_rss: bool = False


def pyimgtools_argv(*args):
    """argv running this checkout's pyimgtools with the benchmarking interpreter."""
    return [sys.executable, "-m", "pyimgtools"] + list(args)
