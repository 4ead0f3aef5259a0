"""The one list of pages: app.py builds st.navigation from it and the home page links every entry.

A page is added by creating its file in pages/ and one `PageInfo` here. `tests/test_page_registry.py`
fails when a file in pages/ is not registered or a registered page has no link on the home page.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class PageInfo:
    """One page of the dashboard.

    id           key of the page's presets (dashboard.presets) and of its topic defaults
    file         path relative to the repository root
    title        navigation and home-page title
    icon         a streamlit material icon
    url_path     the page's address (``/<url_path>``)
    description  one line for the home page
    topic        shared-control values the page's topic is about (e.g. the depth page: ReLU without
                 bias, seed 002); a page opened without parameters starts there
    jobs         "module:function" of `jobs_for(values) -> list[dashboard.jobs.Job]`: every long
                 job the page runs for the control values `values` (missing keys take the page's
                 defaults). `python -m benchmarks.presets` uses it to ship each preset's results.
    """
    id: str
    file: str
    title: str
    icon: str
    url_path: str
    description: str
    topic: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    jobs: str = ""


HOME = PageInfo("home", "pages/0_home.py", "Home", ":material/home:", "",
                "what the neural tangent kernel is and what each page shows.")

PAGES: tuple[PageInfo, ...] = (
    PageInfo("finite_vs_infinite", "pages/1_finite_vs_infinite.py", "Finite vs infinite width",
             ":material/compare_arrows:", "finite_vs_infinite",
             "a finite network (or an ensemble of up to 100) trained by GD/SGD next to the NTK-GP "
             "prediction and its +/- 2 sd band at any training time, with train and test loss "
             "curves; y = x^3, sin x, or your own CSV.",
             # seed 003, Figs 1-3
             topic={"activation": "erf", "depth": 2, "sigma_w": 1.5, "sigma_b": 0.05},
             jobs="dashboard.caching:jobs_for"),
    PageInfo("kernel_convergence", "pages/2_kernel_convergence.py", "Kernel convergence with width",
             ":material/trending_down:", "kernel_convergence",
             "the empirical NTK of finite networks at initialisation and after training approaching "
             "the infinite-width kernel as the width grows.",
             # Jacot et al. 2018, Figs 1-2 (beta = 0.1)
             topic={"activation": "relu", "depth": 3, "sigma_w": 1.0, "sigma_b": 0.1},
             jobs="dashboard.convergence_cache:jobs_for"),
    PageInfo("depth", "pages/3_depth.py", "Depth", ":material/layers:", "depth",
             "what happens to the NNGP and NTK correlations, and to the kernel predictor, as "
             "networks get deeper.",
             # seed 002: ReLU without bias (sigma_w drops out of the normalized kernels)
             topic={"activation": "relu", "sigma_b": 0.0},
             jobs="dashboard.depth_cache:jobs_for"),
    PageInfo("deep_narrow", "pages/4_deep_narrow.py", "Deep narrow networks", ":material/stacks:",
             "deep_narrow",
             "networks only d_in + d_out + 1 wide and 1,000 layers deep: the special initialisation of "
             "Lee et al. 2022, its NTK against the derived L -> infinity limit, and digits training "
             "against Kaiming.",
             topic={"activation": "relu", "seed": 0},
             jobs="dashboard.deep_narrow_jobs:jobs_for"),
    PageInfo("image_kernels", "pages/5_image_kernels.py", "Image kernels (CNTK)", ":material/grid_on:",
             "image_kernels",
             "the exact convolutional NTK with and without global average pooling as a classifier on "
             "digits or your images, by depth, against the NNGP, the fully connected NTK and finite "
             "CNNs (Arora et al. 2019, Table 1).",
             topic={"activation": "relu", "sigma_w": 1.4, "sigma_b": 0.0, "depth": 4},
             jobs="dashboard.image_kernel_jobs:jobs_for"),
    PageInfo("lazy_training", "pages/6_lazy_training.py", "Lazy training", ":material/timeline:",
             "lazy_training",
             "a network and its linearisation trained side by side; distance, parameter and kernel "
             "change and the relative scale kappa_f against width; large learning rates and the catapult.",
             topic={"depth": 1, "width": 1024, "sigma_w": 1.5, "sigma_b": 0.05, "activation": "erf"},
             jobs="dashboard.lazy_jobs:jobs_for"),
)


def jobs_for(page: PageInfo, values: Mapping[str, Any]) -> list:
    """The page's long jobs for control `values` (its registered `jobs_for`; [] without one)."""
    if not page.jobs:
        return []
    import importlib

    module, _, name = page.jobs.partition(":")
    return list(getattr(importlib.import_module(module), name)(values))


def by_id(page_id: str) -> PageInfo:
    for page in PAGES:
        if page.id == page_id:
            return page
    raise KeyError(page_id)
