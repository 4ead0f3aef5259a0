"""ntk_core: the computation behind NTK Explorer, pure JAX/numpy (no streamlit, no plotly).

Public API (everything else lives in private modules and may change):

    nc.MLP, nc.CNN                        network specifications (NTK parameterization)
    nc.infinite_kernels(spec, x1, x2)     infinite-width NNGP and NTK  (.nngp, .ntk)
    nc.dual_activation(act, a, b, c)      E[phi(u)phi(v)], E[phi'(u)phi'(v)]
    nc.normalized_kernels_vs_depth(x, act, w, b, L)   normalized NTK/NNGP at every depth (seed 002)
    nc.correlation_map, nc.correlation_vs_depth       rho -> rho', phase, rho^(L) (Poole et al. 2016)
    nc.kernel_vs_angle, nc.convergence_sweep, nc.function_percentiles   finite NTK -> infinite with width
                                          (Jacot et al. 2018 Figs 1-2, Arora et al. 2019)
"""
from ._spec import ACTIVATIONS, CLOSED_FORM_ACTIVATIONS, CNN, MLP, NetworkSpec, activation_name
from ._activations import activation_fn, dual_activation, dual_activation_diag
from ._ensemble import ensemble_mean_sd, half_mse
from ._data import DATASETS, MAX_CSV_BYTES, MAX_CSV_ROWS, Dataset, dataset_from_points, load_xy_csv, make_dataset
from ._infinite import Kernels, KernelSizeError, KernelOverflowError, infinite_kernels, infinite_kernels_by_depth
from ._finite import apply, count_params, empirical_ntk, empirical_ntk_jacobian, init_params
from ._training import TrainRun, train
from ._ntk_gp import NTKGPPosterior, ntk_gp
from ._convergence import (ConvergenceSweep, FiniteKernelPair, FunctionPercentiles, KernelVsAngle, SlopeFit,
                           circle_points, convergence_sweep, estimate_seconds, finite_kernel_pair,
                           fit_loglog_slope, function_percentiles, gaussian_training_set,
                           infinite_kernel_vs_angle, kernel_vs_angle, product_target, relative_frobenius,
                           width_sweep, angle_kernels, seed_summary, sweep_points, width_errors,
                           relative_change, reference_line)
from ._depth import (CorrelationMap, DepthCurves, DepthKernels, correlation_map, correlation_vs_depth,
                     digits_points, extrapolate_limit, normalized_kernels_vs_depth, predicted_rate,
                     sphere_points)

__all__ = [
    "ConvergenceSweep",
    "FiniteKernelPair",
    "FunctionPercentiles",
    "KernelVsAngle",
    "SlopeFit",
    "circle_points",
    "convergence_sweep",
    "estimate_seconds",
    "finite_kernel_pair",
    "fit_loglog_slope",
    "function_percentiles",
    "gaussian_training_set",
    "infinite_kernel_vs_angle",
    "kernel_vs_angle",
    "product_target",
    "relative_frobenius",
    "width_sweep",
    "angle_kernels",
    "seed_summary",
    "sweep_points",
    "width_errors",
    "relative_change",
    "reference_line",
    "ACTIVATIONS",
    "CLOSED_FORM_ACTIVATIONS",
    "CNN",
    "MLP",
    "NetworkSpec",
    "activation_name",
    "activation_fn",
    "dual_activation",
    "dual_activation_diag",
    "Kernels",
    "KernelSizeError",
    "KernelOverflowError",
    "infinite_kernels",
    "infinite_kernels_by_depth",
    "apply",
    "count_params",
    "empirical_ntk",
    "empirical_ntk_jacobian",
    "init_params",
    "TrainRun",
    "train",
    "NTKGPPosterior",
    "ntk_gp",
    "CorrelationMap",
    "DepthCurves",
    "DepthKernels",
    "correlation_map",
    "correlation_vs_depth",
    "digits_points",
    "extrapolate_limit",
    "normalized_kernels_vs_depth",
    "predicted_rate",
    "sphere_points",
    "DATASETS",
    "MAX_CSV_BYTES",
    "MAX_CSV_ROWS",
    "Dataset",
    "dataset_from_points",
    "load_xy_csv",
    "make_dataset",
    "ensemble_mean_sd",
    "half_mse",
]
