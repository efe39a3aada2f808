#!/usr/bin/env python3
"""Times `wharf validate` of a generated 2000-step DAG (target: under 50 ms).

Usage: bench/validate.py [--steps N] [--runs N]
Builds nothing: run `cargo build --release` first. Prints median, min and max wall time.
"""
import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(path: Path, steps: int) -> None:
    lines = ["type: graph", "env:", "  - GREETING=hello", "steps:"]
    for i in range(steps):
        lines += [
            f"  - name: step_{i}",
            f"    command: echo ${{GREETING}} {i}",
            "    retryPolicy: {limit: 2, intervalSec: 1}",
        ]
        if i:
            lines.append(f"    depends: [step_{i - 1}]")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    wharf = ROOT / "target" / "release" / "wharf"
    with tempfile.TemporaryDirectory() as tmp:
        dag = Path(tmp) / "big.yaml"
        generate(dag, args.steps)
        cmd = [str(wharf), "validate", str(dag)]
        subprocess.run(cmd, check=True, capture_output=True)  # warm-up
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append((time.perf_counter() - start) * 1000)
    print(
        f"wharf validate, {args.steps} steps, "
        f"{args.runs} runs: median {statistics.median(times):.1f} ms, "
        f"min {min(times):.1f} ms, max {max(times):.1f} ms"
    )


if __name__ == "__main__":
    main()
