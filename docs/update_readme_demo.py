"""Run ``saddles demo`` and put what it printed into the README, so the README shows what the
code does now.

Usage: ``python docs/update_readme_demo.py [--out runs/demo]`` (``make readme-demo``). The
block between ``<!-- demo-output:start -->`` and ``<!-- demo-output:end -->`` is replaced by
one line on the run (seeds, machine, wall time) and the demo's printed tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- demo-output:start -->", "<!-- demo-output:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)  # a fresh run, not a resumed one
    saddles = Path(sys.executable).with_name("saddles")
    started = time.perf_counter()
    cmd = [str(saddles), "demo", "--out", str(args.out), "--quiet"]
    env = {**os.environ, "COLUMNS": "160"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = cpu.ru_utime + cpu.ru_stime
    if done.returncode != 0:
        sys.exit(f"error: saddles demo failed:\n{done.stderr}")
    printed = done.stdout.replace(str(args.out), "runs/demo").rstrip()
    machine = f"{os.cpu_count()} CPU cores ({platform.machine()}, {platform.system()})"
    block = (
        f"{START}\nA fresh run on one machine (3 training seeds per beta, 0-2; 8 random planes "
        f"per model, seeds 0-7, plus the Hessian plane) took {seconds:.0f} s of wall time and "
        f"{cpu_seconds:.0f} s of CPU time (torch on 1 thread) on {machine} and printed:"
        f"\n\n```\n{printed}\n```\n{END}"
    )
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"error: README.md has no {START} ... {END} block")
    pattern = re.escape(START) + r".*?" + re.escape(END)
    readme.write_text(re.sub(pattern, lambda _: block, text, flags=re.S))
    print(f"README.md updated ({seconds:.0f} s run)")


if __name__ == "__main__":
    main()
