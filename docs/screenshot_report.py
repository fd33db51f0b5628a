"""Render a saddles HTML report headless with Chromium and save screenshots to look at.

Usage: ``python docs/screenshot_report.py runs/demo/report.html [--out DIR] [--width 1400]``.
It takes the first screen (``<out>/first-screen.png``, 1400 x 900) and the whole page
(``<out>/full-page.png``, cropped to ``--max-height`` pixels), with Debian's ``chromium``
package (``apt-get install chromium``). Nothing is fetched: the report is one file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("error: no chromium found; install Debian's package: apt-get install chromium")


def screenshot(report: Path, out: Path, width: int, height: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--window-size={width},{height}", f"--screenshot={out}", report.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: beside the report")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--max-height", type=int, default=6000)
    args = parser.parse_args()
    if not args.report.is_file():
        sys.exit(f"error: no report at {args.report}")
    out = args.out or args.report.parent / "screenshots"
    print(screenshot(args.report, out / "first-screen.png", args.width, 900))
    print(screenshot(args.report, out / "full-page.png", args.width, args.max_height))


if __name__ == "__main__":
    main()
