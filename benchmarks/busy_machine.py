"""How a training run slows down when other runs share the machine, under each thread policy.

    python benchmarks/busy_machine.py [--epochs 3] [--policies default,passive,one-thread]

On a shared course server or a grader's machine several runs go at once. For each policy, 1, 2 and 3 identical runs
of the fast preset start together; each reports its own training time (fit's, without start-up), and the table
gives their mean against one run alone under the default policy. On a machine with C cores, runs that share it
fairly take about max(1, runs x threads / C) times as long: much more than that means threads wait for cores that
other processes hold (spinning). Run it on an otherwise quiet machine: it is the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap

RUN = textwrap.dedent("""
    import io, sys
    import torch
    from labkit import threads as policy
    from labkit.data import DataConfig, load_data
    from labkit.models import build_model, fit_to_data
    from labkit.presets import get_preset
    from labkit.train import fit
    if sys.argv[3] == "fixed":  # the thread count torch starts with (or the one given), whatever the load
        policy.CpuThreads.epoch = lambda self: None
    threads = int(sys.argv[2])
    if threads:
        torch.set_num_threads(threads)
    p = get_preset("fast")
    data = load_data(DataConfig())
    model = build_model(fit_to_data(p.model, len(data.classes)), 0)
    print(fit(model, data, p.recipe(int(sys.argv[1])), out=io.StringIO(), progress=False).seconds)
""")

# name: (environment, torch threads (0 keeps torch's own choice), whether the count follows the load)
POLICIES = {
    "default": ({}, 0, False),  # torch's own: one thread per core, OpenMP's default wait policy
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0, False),  # threads sleep instead of spinning while they wait
    "one-thread": ({}, 1, False),
    "labkit": ({}, 0, True),  # labkit's fit: each epoch, as many threads as there are cores free (threads.CpuThreads)
}


def together(runs: int, epochs: int, policy: str) -> list[float]:
    """The training seconds of ``runs`` identical runs started together under ``policy``."""
    extra, threads, adaptive = POLICIES[policy]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | extra
    command = [sys.executable, "-c", RUN, str(epochs), str(threads), "adaptive" if adaptive else "fixed"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(runs)]
    return [float(p.communicate(timeout=1200)[0].split()[-1]) for p in procs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; fast preset, {args.epochs} epochs; training seconds, mean of the runs")
    quiet = None
    print("| policy | 1 run alone | 2 at once | 3 at once | slowdown: 1 / 2 / 3 runs (against the default alone) |")
    print("|---|---:|---:|---:|---|")
    for policy in args.policies.split(","):
        seconds = [statistics.mean(together(n, args.epochs, policy)) for n in (1, 2, 3)]
        quiet = quiet or seconds[0]
        factors = " / ".join(f"{s / quiet:.1f}×" for s in seconds)
        print(f"| {policy} | {seconds[0]:.1f} | {seconds[1]:.1f} | {seconds[2]:.1f} | {factors} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
