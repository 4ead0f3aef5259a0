"""ntk_core: the computation behind NTK Explorer, pure JAX/numpy/numba (no streamlit, no plotly).

Public API, grouped as in `__all__` (everything else lives in private modules and may change):

    nc.MLP, nc.CNN                        network specifications (NTK parameterization)
    nc.infinite_kernels(spec, x1, x2)     infinite-width NNGP and NTK  (.nngp, .ntk)
    nc.infinite_kernels_by_depth(cnn, x1, x2)   {d: Kernels} after 1..depth conv layers, one pass
    nc.infinite_kernel_diagonals(spec, x)  k(x_i, x_i) only (the variance recursion: n, not n^2)
    nc.kernel_regression(Ktt, Kte, Y, diag_reg)  kernel classifier (Arora et al. 2019), + image data helpers
    nc.dual_activation(act, a, b, c)      E[phi(u)phi(v)], E[phi'(u)phi'(v)]
    nc.init_params, nc.apply, nc.empirical_ntk         finite networks and their empirical NTK
    nc.train(spec, x, y, x_test, y_test, lr, steps)    GD/SGD of one network or an ensemble
    nc.ntk_gp_posterior(nc.GPKernels(...), y_train)    NTK-GP from kernel matrices (seed 003, Thm 5.1)
    nc.ntk_gp(spec, x_train, y_train, x_test)          the same from a network spec
    nc.normalized_kernels_vs_depth, nc.correlation_map, nc.correlation_vs_depth   depth (Poole et al. 2016)
    nc.kernel_vs_angle, nc.convergence_sweep, nc.function_percentiles   finite NTK -> infinite with width
                                          (Jacot et al. 2018 Figs 1-2, Arora et al. 2019)
    nc.train(..., linearized=True), nc.train_pair, nc.relative_scale, nc.parameter_change,
    nc.kernel_change, nc.lambda_max, nc.laziness_point, nc.catapult_run   lazy training (seed 003 sec. 2)
"""
# Process housekeeping: compiled programs stay under the kernel's memory-map limit
from ._compiled import release_compiled_code_if_needed as release_compiled_code_if_needed

# Network specifications
from ._spec import CNN as CNN
from ._spec import MLP as MLP
from ._spec import NetworkSpec as NetworkSpec

# Activations and their dual kernels
from ._spec import ACTIVATIONS as ACTIVATIONS
from ._spec import CLOSED_FORM_ACTIVATIONS as CLOSED_FORM_ACTIVATIONS
from ._spec import QUADRATURE_ACTIVATIONS as QUADRATURE_ACTIVATIONS
from ._activations import activation_fn as activation_fn
from ._spec import activation_name as activation_name
from ._activations import dual_activation as dual_activation
from ._activations import dual_activation_diag as dual_activation_diag

# Infinite-width kernels
from ._infinite import KernelOverflowError as KernelOverflowError
from ._infinite import KernelSizeError as KernelSizeError
from ._infinite import Kernels as Kernels
from ._infinite import infinite_kernel_diagonals as infinite_kernel_diagonals
from ._infinite import infinite_kernels as infinite_kernels
from ._infinite import infinite_kernels_by_depth as infinite_kernels_by_depth
from ._kernel_regression import MAX_TEST_IMAGES as MAX_TEST_IMAGES
from ._kernel_regression import MAX_TRAIN_IMAGES as MAX_TRAIN_IMAGES
from ._kernel_regression import ImageSplit as ImageSplit
from ._kernel_regression import accuracy as accuracy
from ._kernel_regression import class_targets as class_targets
from ._kernel_regression import condition_number as condition_number
from ._kernel_regression import confusion_matrix as confusion_matrix
from ._kernel_regression import digits_images as digits_images
from ._kernel_regression import kernel_regression as kernel_regression
from ._kernel_regression import load_images_npz as load_images_npz
from ._kernel_regression import prepare_images as prepare_images
from ._kernel_regression import train_cnn_classifier as train_cnn_classifier

# Finite-width networks and their empirical NTK
from ._finite import apply as apply
from ._finite import count_params as count_params
from ._finite import empirical_ntk as empirical_ntk
from ._finite import empirical_ntk_jacobian as empirical_ntk_jacobian
from ._finite import init_params as init_params

# Training by gradient descent, ensembles
from ._training import TrainRun as TrainRun
from ._ensemble import ensemble_mean_sd as ensemble_mean_sd
from ._ensemble import half_mse as half_mse
from ._training import train as train

# NTK-GP: kernel-level and spec-level
from ._ntk_gp import GPKernels as GPKernels
from ._ntk_gp import NTKGPPosterior as NTKGPPosterior
from ._ntk_gp import ntk_gp as ntk_gp
from ._ntk_gp import ntk_gp_posterior as ntk_gp_posterior

# Regression data sets and uploads
from ._data import DATASETS as DATASETS
from ._data import Dataset as Dataset
from ._data import MAX_CSV_BYTES as MAX_CSV_BYTES
from ._data import MAX_CSV_ROWS as MAX_CSV_ROWS
from ._data import dataset_from_points as dataset_from_points
from ._data import load_xy_csv as load_xy_csv
from ._data import make_dataset as make_dataset

# Kernel convergence with width (Jacot et al. 2018, Arora et al. 2019)
from ._convergence import ConvergenceSweep as ConvergenceSweep
from ._convergence import FiniteKernelPair as FiniteKernelPair
from ._convergence import FunctionPercentiles as FunctionPercentiles
from ._convergence import KernelVsAngle as KernelVsAngle
from ._convergence import SlopeFit as SlopeFit
from ._convergence import angle_kernels as angle_kernels
from ._convergence import circle_points as circle_points
from ._convergence import convergence_sweep as convergence_sweep
from ._convergence import estimate_seconds as estimate_seconds
from ._convergence import finite_kernel_pair as finite_kernel_pair
from ._convergence import fit_loglog_slope as fit_loglog_slope
from ._convergence import function_percentiles as function_percentiles
from ._convergence import gaussian_training_set as gaussian_training_set
from ._convergence import infinite_kernel_vs_angle as infinite_kernel_vs_angle
from ._convergence import kernel_vs_angle as kernel_vs_angle
from ._convergence import product_target as product_target
from ._convergence import relative_frobenius as relative_frobenius
from ._convergence import sweep_points as sweep_points
from ._convergence import width_errors as width_errors

# Signal propagation with depth (Poole et al. 2016, seed 002)
from ._depth import CorrelationMap as CorrelationMap
from ._depth import DepthCurves as DepthCurves
from ._depth import DepthKernels as DepthKernels
from ._depth import correlation_map as correlation_map
from ._depth import correlation_vs_depth as correlation_vs_depth
from ._depth import digits_points as digits_points
from ._depth import extrapolate_limit as extrapolate_limit
from ._depth import normalized_kernels_vs_depth as normalized_kernels_vs_depth
from ._depth import predicted_rate as predicted_rate
from ._depth import sphere_points as sphere_points

# Size limits (enforced here, shown by the pages)
from ._validation import MAX_DATASET_POINTS as MAX_DATASET_POINTS
from ._validation import MAX_GP_TEST_POINTS as MAX_GP_TEST_POINTS
from ._validation import MAX_GP_TRAIN_POINTS as MAX_GP_TRAIN_POINTS
from ._validation import MAX_KERNEL_POINTS as MAX_KERNEL_POINTS
from ._validation import MAX_SEEDS as MAX_SEEDS
from ._validation import MAX_STEPS as MAX_STEPS
from ._validation import MAX_SWEEP_SEEDS as MAX_SWEEP_SEEDS
from ._validation import MAX_SWEEP_STEPS as MAX_SWEEP_STEPS
from ._validation import MAX_SWEEP_TRAIN_POINTS as MAX_SWEEP_TRAIN_POINTS
from ._validation import MAX_SWEEP_WIDTH as MAX_SWEEP_WIDTH
from ._validation import MAX_TRAIN_POINTS as MAX_TRAIN_POINTS

# Utilities
from ._lru import LRUCache as LRUCache


# Lazy training (seed 003 sec. 2; Chizat et al. 2019; Lewkowycz et al. 2020): pages/6_lazy_training.py
from ._lazy import CatapultRun as CatapultRun
from ._lazy import LazinessPoint as LazinessPoint
from ._lazy import LazyPair as LazyPair
from ._lazy import RelativeScale as RelativeScale
from ._lazy import catapult_run as catapult_run
from ._lazy import hessian_norm as hessian_norm
from ._lazy import kernel_change as kernel_change
from ._lazy import lambda_max as lambda_max
from ._lazy import laziness_point as laziness_point
from ._lazy import parameter_change as parameter_change
from ._lazy import relative_scale as relative_scale
from ._lazy import train_linearized as train_linearized
from ._lazy import train_pair as train_pair

__all__ = [
    # Process housekeeping
    "release_compiled_code_if_needed",
    # Network specifications
    "CNN",
    "MLP",
    "NetworkSpec",
    # Activations and their dual kernels
    "ACTIVATIONS",
    "CLOSED_FORM_ACTIVATIONS",
    "QUADRATURE_ACTIVATIONS",
    "activation_fn",
    "activation_name",
    "dual_activation",
    "dual_activation_diag",
    # Infinite-width kernels
    "KernelOverflowError",
    "KernelSizeError",
    "Kernels",
    "infinite_kernel_diagonals",
    "infinite_kernels",
    "infinite_kernels_by_depth",
    # Exact convolutional kernels as image classifiers (seed 001)
    "ImageSplit",
    "MAX_TEST_IMAGES",
    "MAX_TRAIN_IMAGES",
    "accuracy",
    "class_targets",
    "condition_number",
    "confusion_matrix",
    "digits_images",
    "kernel_regression",
    "load_images_npz",
    "prepare_images",
    "train_cnn_classifier",
    # Finite-width networks and their empirical NTK
    "apply",
    "count_params",
    "empirical_ntk",
    "empirical_ntk_jacobian",
    "init_params",
    # Training by gradient descent, ensembles
    "TrainRun",
    "ensemble_mean_sd",
    "half_mse",
    "train",
    # NTK-GP: kernel-level and spec-level
    "GPKernels",
    "NTKGPPosterior",
    "ntk_gp",
    "ntk_gp_posterior",
    # Regression data sets and uploads
    "DATASETS",
    "Dataset",
    "MAX_CSV_BYTES",
    "MAX_CSV_ROWS",
    "dataset_from_points",
    "load_xy_csv",
    "make_dataset",
    # Kernel convergence with width (Jacot et al. 2018, Arora et al. 2019)
    "ConvergenceSweep",
    "FiniteKernelPair",
    "FunctionPercentiles",
    "KernelVsAngle",
    "SlopeFit",
    "angle_kernels",
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
    "sweep_points",
    "width_errors",
    # Signal propagation with depth (Poole et al. 2016, seed 002)
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
    # Size limits (enforced here, shown by the pages)
    "MAX_DATASET_POINTS",
    "MAX_GP_TEST_POINTS",
    "MAX_GP_TRAIN_POINTS",
    "MAX_KERNEL_POINTS",
    "MAX_SEEDS",
    "MAX_STEPS",
    "MAX_SWEEP_SEEDS",
    "MAX_SWEEP_STEPS",
    "MAX_SWEEP_TRAIN_POINTS",
    "MAX_SWEEP_WIDTH",
    "MAX_TRAIN_POINTS",
    # Utilities
    "LRUCache",
    # Lazy training (seed 003 sec. 2)
    "CatapultRun",
    "LazinessPoint",
    "LazyPair",
    "RelativeScale",
    "catapult_run",
    "hessian_norm",
    "kernel_change",
    "lambda_max",
    "laziness_point",
    "parameter_change",
    "relative_scale",
    "train_linearized",
    "train_pair",
]

# ---- Deep narrow networks (Lee, Choi, Ryu, No, ICML 2022; seed 000). nc.init_params, nc.apply,
# nc.empirical_ntk and nc.train dispatch on these specs.
from ._deep_narrow import (NTK_ANCHOR as DEEP_NARROW_X0, DeepNarrowCNN, DeepNarrowKernelTrial, DeepNarrowMLP, DeepNarrowRun, critical_lr,
                           deep_narrow_kernel_trial, deep_narrow_limit_ntk, digits_onehot, limit_distances,
                           quarter_circle_points, relative_distance, relu_gaussian_kernel)

__all__ += [
    "DEEP_NARROW_X0",
    "DeepNarrowCNN",
    "DeepNarrowKernelTrial",
    "DeepNarrowMLP",
    "DeepNarrowRun",
    "critical_lr",
    "deep_narrow_kernel_trial",
    "deep_narrow_limit_ntk",
    "digits_onehot",
    "limit_distances",
    "quarter_circle_points",
    "relative_distance",
    "relu_gaussian_kernel",
]
