"""Network specifications shared by the infinite-width and finite-width code.

Conventions follow Neural Tangents' NTK parameterization (see ../shared/reference/README.md):

    h^1     = (w_std / sqrt(d_in)) W^1 x + b_std b^1
    h^{l+1} = (w_std / sqrt(n_l))  W^{l+1} phi(h^l) + b_std b^{l+1}
    f(x)    = h^{depth+1}  (width-1 readout),   W, b ~ N(0, 1)
"""
from __future__ import annotations

import dataclasses
from typing import Union

# The activation lists are derived from the registry in _activations (one place per activation).
from ._activations import (ACTIVATIONS, CLOSED_FORM_ACTIVATIONS, LEAKY_RELU_SLOPE,  # noqa: F401
                           QUADRATURE_ACTIVATIONS, ActivationLike, check_activation)
from ._validation import check_int, check_number

MAX_DEPTH = 100_000


def activation_name(activation: ActivationLike) -> str:
    return activation if isinstance(activation, str) else getattr(activation, "__name__", "custom")


@dataclasses.dataclass(frozen=True)
class MLP:
    """Fully connected net: `depth` hidden layers of `width` units, then a width-1 readout."""

    depth: int = 2
    width: int = 512
    w_std: float = 1.5
    b_std: float = 0.05
    activation: ActivationLike = "erf"

    def __post_init__(self):
        object.__setattr__(self, "depth", check_int("depth", self.depth, 0, MAX_DEPTH))
        object.__setattr__(self, "width", check_int("width", self.width, 1))
        object.__setattr__(self, "w_std", check_number("w_std", self.w_std))
        object.__setattr__(self, "b_std", check_number("b_std", self.b_std))
        object.__setattr__(self, "activation", check_activation(self.activation))


@dataclasses.dataclass(frozen=True)
class CNN:
    """`depth` blocks of [3x3 conv, stride 1, SAME zero padding, activation], then `readout`
    ("gap": global average pooling, or "flatten") and a Dense width-1 readout."""

    depth: int = 5
    channels: int = 64
    w_std: float = 2**0.5
    b_std: float = 0.0
    activation: ActivationLike = "relu"
    readout: str = "gap"

    def __post_init__(self):
        object.__setattr__(self, "depth", check_int("depth", self.depth, 0, MAX_DEPTH))
        object.__setattr__(self, "channels", check_int("channels", self.channels, 1))
        object.__setattr__(self, "w_std", check_number("w_std", self.w_std))
        object.__setattr__(self, "b_std", check_number("b_std", self.b_std))
        object.__setattr__(self, "activation", check_activation(self.activation))
        if self.readout not in ("gap", "flatten"):
            raise ValueError(f"readout must be 'gap' or 'flatten', got {self.readout!r}")


NetworkSpec = Union[MLP, CNN]
