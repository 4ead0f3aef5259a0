"""Cost estimates against measured time, per job kind (issue 10: estimates within 30 %).

    python -m benchmarks.estimates                 every case below, each in a fresh process
    python -m benchmarks.estimates lazy conv_fig2  only these cases
    python -m benchmarks.estimates --jobs lazy     one case in this process, a line per job too

A case is a preset's settings (with a seed no shipped result uses, so every job is computed): its
jobs from the page registry's `jobs_for` run one after another in a new Python process, as a
fresh server computes them (the first job of a shape pays the compilation, the later ones reuse
it). The page shows the sum of the estimates of the missing jobs, so the sums per kind are
compared. Prints one JSON line per (case, kind): jobs, estimated and measured seconds, ratio
measured / estimated. Run it on a quiet machine.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

# case: (preset id, extra values); seed 11 is used by no preset, so nothing comes from the shipped store
CASES = {
    "finite_fig1": ("seed003_fig1", {}),
    "depth_deep": ("seed002_deep", {}),
    "conv_arora": ("arora_rate", {}),
    "conv_fig2": ("jacot_fig2", {}),
    "lazy": ("lazy_width_sweep", {}),
    "lazy_deep": ("lazy_width_sweep", {"depth": 2, "lz_wmax": 2048}),
    "dn_mlp": ("lee2022_mlp", {}),
    "dn_cnn": ("lee2022_cnn", {}),
    "ik_lecture": ("image_kernels_lecture", {}),
}
SEED = 11


def run_case(name: str, per_job: bool = False) -> list[dict]:
    import os
    import tempfile

    os.environ["NTK_EXPLORER_STORE"] = tempfile.mkdtemp()
    import jax

    jax.config.update("jax_enable_x64", True)   # as app.py
    from dashboard import page_registry, presets, threads

    threads.limit_blas_threads()   # as app.py: the server's jobs run with one BLAS thread

    preset_id, extra = CASES[name]
    preset = presets.PRESETS[preset_id]
    values = {**preset["values"], "seed": SEED, **extra}
    jobs = page_registry.jobs_for(page_registry.by_id(preset["page"]), values)
    per_kind: dict[str, dict] = {}
    for job in jobs:
        start = time.perf_counter()
        job.compute(lambda *a, **k: None)
        seconds = time.perf_counter() - start
        row = per_kind.setdefault(job.kind, {"case": name, "kind": job.kind, "jobs": 0,
                                             "estimated_s": 0.0, "measured_s": 0.0})
        row["jobs"] += 1
        row["estimated_s"] += job.seconds
        row["measured_s"] += seconds
        if per_job:
            print(json.dumps({"case": name, "kind": job.kind, "estimated_s": round(job.seconds, 3),
                              "measured_s": round(seconds, 3),
                              "params": {k: v for k, v in job.params.items()
                                         if isinstance(v, (int, float, str))}}), flush=True)
    for row in per_kind.values():
        row["ratio"] = round(row["measured_s"] / max(row["estimated_s"], 1e-9), 2)
        row["estimated_s"] = round(row["estimated_s"], 2)
        row["measured_s"] = round(row["measured_s"], 2)
    return list(per_kind.values())


def main(names: list[str]) -> None:
    if len(names) == 2 and names[0] in ("--in-process", "--jobs"):
        for row in run_case(names[1], per_job=names[0] == "--jobs"):
            print(json.dumps(row), flush=True)
        return
    for name in names or list(CASES):
        out = subprocess.run([sys.executable, "-m", "benchmarks.estimates", "--in-process", name],
                             capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            print(json.dumps({"case": name, "error": out.stderr.strip().splitlines()[-1:]}))
        for line in lines:
            print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
