"""Shipped preset results (assets/results): every preset's jobs are shipped, every file passes its
checksum, and a cheap part of the shipped entries is recomputed and must match, so shipped results
cannot drift from the code."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from benchmarks.presets import preset_jobs
from dashboard import presets
from dashboard.store import SHIPPED_DIR, ShippedResults

SHIPPED = ShippedResults(SHIPPED_DIR)
RECOMPUTE_LIMIT_SECONDS = 60.0   # the cheapest entry of a kind must have taken at most this


def test_every_preset_has_its_results_shipped():
    manifest = SHIPPED.manifest()
    missing = collections.defaultdict(list)
    for pid, job in preset_jobs():
        if job.key not in manifest:
            missing[pid].append(job.kind)
    pages = sorted({presets.PRESETS[pid]["page"] for pid in missing})
    assert not missing, (
        "presets without shipped results: "
        + "; ".join(f"{pid} ({len(kinds)} jobs: {sorted(set(kinds))})"
                    for pid, kinds in missing.items())
        + ". Run `python -m benchmarks.presets"
        + (f" --page {pages[0]}" if len(pages) == 1 else "") + "` and commit assets/results/.")


def test_shipped_files_pass_their_checksums_and_are_small():
    manifest = SHIPPED.manifest()
    for key in manifest:
        assert SHIPPED.read(key) is not None, f"{key} fails its checksum or is missing"
    total = sum(int(e["size"]) for e in manifest.values())
    assert total < 8 * 2**20, f"shipped results take {total / 2**20:.1f} MB"
    for entry in manifest.values():
        assert entry["meta"]["command"].startswith("python -m benchmarks.presets")
        assert entry["meta"]["computed"]


def _close(shipped, fresh, where):
    assert set(shipped) == set(fresh), where
    for name in shipped:
        a, b = np.asarray(shipped[name]), np.asarray(fresh[name])
        if a.dtype.kind in "US":
            assert str(a) == str(b), f"{where}: {name}"
            continue
        assert a.shape == b.shape, f"{where}: {name}"
        finite = np.abs(a[np.isfinite(a)])  # a diverging run (lazy.catapult) holds inf / nan,
        scale = float(np.max(finite)) if finite.size else 0.0  # compared as equal positions
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-4 * max(scale, 1.0),
                                   err_msg=f"{where}: {name}")


def _cheapest_per_kind():
    manifest = SHIPPED.manifest()
    jobs = {job.key: job for _, job in preset_jobs() if job.key in manifest}
    best = {}
    for key, job in jobs.items():
        seconds = float(manifest[key]["meta"].get("seconds", 1e9))
        if job.kind not in best or seconds < best[job.kind][0]:
            best[job.kind] = (seconds, job)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(_cheapest_per_kind()))
def test_the_cheapest_shipped_entry_of_each_kind_is_reproduced(kind):
    seconds, job = _cheapest_per_kind()[kind]
    if seconds > RECOMPUTE_LIMIT_SECONDS:
        pytest.skip(f"the cheapest {kind} entry took {seconds:.0f} s")
    fresh = {k: np.asarray(v) for k, v in job.compute(lambda *a: None).items()}
    _close(SHIPPED.read(job.key)[0], fresh, job.key)


def _jobs_of(preset_id):
    return [job for pid, job in preset_jobs([preset_id])]


@pytest.mark.slow
def test_jacot_width_500_networks_are_reproduced():
    """Two of the ten width-500 networks of the Jacot Fig 1 preset, recomputed."""
    for job in [j for j in _jobs_of("jacot_fig1")
                if j.kind == "convergence.angle" and j.params["width"] == 500][:2]:
        fresh = job.compute(lambda *a: None)
        _close(SHIPPED.read(job.key)[0], fresh, job.key)


def test_fig3_first_network_matches_the_single_network_of_fig1():
    """Seed 003 Fig 3's network 0 (trained in a vmapped chunk of 10) is Fig 1's network (same
    seed, data and setting, trained alone): the ensemble was not shipped from other code."""
    (single,) = _jobs_of("seed003_fig1")
    chunk = _jobs_of("seed003_fig3")[0]
    shipped = [SHIPPED.read(job.key) for job in (single, chunk)]
    assert None not in shipped, "not shipped: run `python -m benchmarks.presets --page " \
                                "finite_vs_infinite`"
    a, b = shipped[0][0], shipped[1][0]
    np.testing.assert_allclose(b["snap_predictions"][0], a["snap_predictions"][0], rtol=1e-2,
                               atol=1e-3)
    np.testing.assert_allclose(b["train_loss"][0], a["train_loss"][0], rtol=1e-2, atol=1e-6)


def test_every_registered_jobs_for_works_on_the_page_defaults():
    from dashboard import page_registry
    from dashboard.jobs import Job

    for page in page_registry.PAGES:
        if not page.jobs:
            continue
        jobs = page_registry.jobs_for(page, {})
        assert jobs and all(isinstance(j, Job) for j in jobs), page.id
        assert len({j.key for j in jobs}) == len(jobs), f"{page.id}: two jobs with one key"
        assert all(j.seconds >= 0 for j in jobs)
