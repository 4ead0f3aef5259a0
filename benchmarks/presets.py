"""Compute the results every preset shows and ship them in assets/results/.

    python -m benchmarks.presets                      every preset of every page
    python -m benchmarks.presets --page kernel_convergence
    python -m benchmarks.presets --preset jacot_fig1 --force   recompute even if shipped
    python -m benchmarks.presets --check               list what is missing (exit 1 if any)
    python -m benchmarks.presets --prune               drop shipped entries no preset uses

For each preset in dashboard.presets.PRESETS the page's registered `jobs_for(values)`
(dashboard.page_registry) gives its jobs; those not yet shipped are computed (in a scratch store,
never the user's) and written with their checksum to assets/results/manifest.json. Prints one JSON
line per job (seconds measured and estimated) and the shipped total.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

COMMAND = "python -m benchmarks.presets"


def preset_jobs(preset_ids=None, page_id=None) -> list[tuple[str, object]]:
    """[(preset id, Job)] for the selected presets (every job of every preset by default)."""
    from dashboard import page_registry, presets

    out = []
    for pid, preset in presets.PRESETS.items():
        if preset_ids and pid not in preset_ids:
            continue
        if page_id and preset["page"] != page_id:
            continue
        page = page_registry.by_id(preset["page"])
        out += [(pid, job) for job in page_registry.jobs_for(page, preset["values"])]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", help="only the presets of this page id")
    parser.add_argument("--preset", action="append", help="only this preset (repeatable)")
    parser.add_argument("--force", action="store_true", help="recompute shipped entries too")
    parser.add_argument("--check", action="store_true", help="only report missing entries")
    parser.add_argument("--prune", action="store_true",
                        help="remove shipped entries that no preset uses")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)   # as app.py
    from dashboard import jobs as jobs_mod
    from dashboard import store

    shipped = store.ShippedResults(store.SHIPPED_DIR)
    todo = preset_jobs(args.preset, args.page)
    if args.prune:
        used = {job.key for _, job in preset_jobs()}
        stale = [k for k in shipped.manifest() if k not in used]
        shipped.remove(stale)
        print(json.dumps({"pruned": stale}))
    missing = [(pid, job) for pid, job in todo if args.force or job.key not in shipped]
    if args.check:
        for pid, job in missing:
            print(json.dumps({"preset": pid, "missing": job.key}))
        return 1 if missing else 0
    # a scratch store: shipped results come from this command, never from a user's cache
    os.environ[store.STORE_ENV] = tempfile.mkdtemp(prefix="ntk-presets-")
    seen = set()
    missing.sort(key=lambda pj: pj[1].seconds)   # cheapest first: most presets done soonest
    for pid, job in missing:
        if job.key in seen:
            continue
        seen.add(job.key)
        start = time.perf_counter()
        arrays = jobs_mod.compute_one(job, command=COMMAND, force=True)
        meta = dict(store.default_store().meta(job.key) or {})
        meta["command"] = COMMAND
        size = shipped.write(job.key, arrays, meta)
        print(json.dumps({"preset": pid, "kind": job.kind, "key": job.key,
                          "seconds": round(time.perf_counter() - start, 2),
                          "estimated_seconds": round(job.seconds, 2), "bytes": size}), flush=True)
    total = sum(int(e["size"]) for e in shipped.manifest().values())
    print(json.dumps({"shipped_entries": len(shipped.manifest()), "shipped_bytes": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
