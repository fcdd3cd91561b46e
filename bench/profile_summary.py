"""Where the time goes, from py-spy's folded stacks (`py-spy record --format raw`).

    python -m bench.profile_summary FILE [--top 25]

Prints the share of samples per function, inclusive (the function or what it calls) and
self (the function itself), grouped by `module:function` — the before/after summary that a
performance change reports.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>.+?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path.removesuffix('.py')}:{match.group('function')}"


def summarise(text: str) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_name(f) for f in stack.split(";")]
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        own[frames[-1]] += samples
    return total, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, inclusive, own = summarise(Path(args.file).read_text())
    print(f"{total} samples")
    print("inclusive:")
    for name, samples in inclusive.most_common(args.top):
        print(f"  {100 * samples / total:5.1f}%  {name}")
    print("self:")
    for name, samples in own.most_common(args.top):
        print(f"  {100 * samples / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
