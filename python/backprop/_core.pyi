"""Type stubs for backprop._core: the loader that re-exports the compiled core
(cpp/bindings.cpp) built for the best instruction set this CPU runs.

Arrays: ``params`` is the flat, contiguous, writeable parameter vector
(float32 or float64, length ``Model.n_params``); ``X`` and ``targets`` are 2-D
arrays of the same dtype (samples are rows); ``labels`` and ``order`` are
contiguous 1-D int64 arrays.
"""

from typing import Any, ClassVar, Optional, Sequence, TypedDict

import numpy as np
import numpy.typing as npt

_Float = np.floating[Any]
_FloatArray = npt.NDArray[_Float]
_IndexArray = npt.NDArray[np.int64]

LEVELS: tuple[str, ...]

class OptimizerKind:
    """Which update rule a training epoch applies (a pybind11 enum)."""

    sgd: ClassVar[OptimizerKind]
    adam: ClassVar[OptimizerKind]
    adamw: ClassVar[OptimizerKind]
    __members__: ClassVar[dict[str, OptimizerKind]]
    def __init__(self, value: int) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __int__(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class OptimizerConfig:
    """Hyper-parameters of one optimizer step (see backprop.optim)."""

    kind: OptimizerKind
    lr: float
    weight_decay: float
    momentum: float
    nesterov: bool
    beta1: float
    beta2: float
    eps: float
    decay_per_batch_weight: bool  # scikit-learn's convention: decay divided by the batch's weight
    eps_before_bias_correction: bool  # scikit-learn's Adam: eps added before the bias correction
    clip_norm: float  # 0: no clipping
    clip_value: float  # 0: no clamping
    def __init__(self) -> None: ...

class _EpochResult(TypedDict):
    """What Model.train_epoch returns (a plain dict at run time)."""

    status: str  # 'completed', 'nonfinite_loss' or 'nonfinite_update' (Ctrl-C raises instead)
    batches: int
    samples: int
    loss_sum: float
    n_correct: float
    weight_grad_norm_sums: list[float]
    penalty_sum: float

class Dataset:
    """X and its targets, checked once for a Model (Model.dataset); referenced, not copied."""

    @property
    def rows(self) -> int: ...

class Model:
    """The core for one network shape; the scalar type follows each call's params."""

    def __init__(
        self,
        sizes: Sequence[int],
        activations: Sequence[str],
        loss: str,
        norms: Sequence[bool] = ...,
        dropout: Sequence[float] = ...,
        dropout_seed: int = 0,
    ) -> None: ...
    @property
    def n_params(self) -> int: ...
    def forward(self, params: _FloatArray, X: _FloatArray, check_finite: bool = False) -> _FloatArray:
        """A^(L) for every row of X: (n_samples, n_out); with check_finite, ValueError for NaN or ±inf in X."""
    def evaluate(
        self,
        params: _FloatArray,
        X: _FloatArray,
        labels: Optional[_IndexArray] = None,
        targets: Optional[_FloatArray] = None,
        weights: Optional[npt.NDArray[np.float64]] = None,
    ) -> tuple[float, float, float]:
        """(Σ w·loss, Σ w·correct classifications, Σ w), w = 1 without weights."""
    def gradients(
        self,
        params: _FloatArray,
        X: _FloatArray,
        labels: Optional[_IndexArray] = None,
        targets: Optional[_FloatArray] = None,
        weights: Optional[npt.NDArray[np.float64]] = None,
        dropout_step: int = 1,
    ) -> tuple[float, _FloatArray, float]:
        """(weighted mean loss, flat gradient of the weighted mean loss, weighted fraction of right
        classifications)."""
    def dataset(
        self,
        X: _FloatArray,
        labels: Optional[_IndexArray] = None,
        targets: Optional[_FloatArray] = None,
        weights: Optional[npt.NDArray[np.float64]] = None,
    ) -> Dataset:
        """X and its targets, checked once for this model."""
    def gradient_sum(self, params: _FloatArray, data: Dataset, rows: _IndexArray,
                     out: _FloatArray) -> tuple[float, float, float]:
        """out ← Σ w·∂loss/∂θ over the listed rows of data; returns (Σ w·loss, Σ w·right, Σ w)."""
    def train_epoch(
        self,
        params: _FloatArray,
        data: Dataset,
        order: _IndexArray,
        batch_size: int,
        config: OptimizerConfig,
        first: Optional[_FloatArray],
        second: Optional[_FloatArray],
        step: _IndexArray,
        record_grad_norms: bool,
    ) -> _EpochResult:
        """One epoch of mini-batch training over the rows of data listed in order.

        Updates params, first, second and step (an int64 array of shape (1,),
        the optimizer's step count) in place.
        """
    def optimizer_step(
        self,
        params: _FloatArray,
        grads: _FloatArray,
        config: OptimizerConfig,
        first: Optional[_FloatArray],
        second: Optional[_FloatArray],
        step: _IndexArray,
        batch_weight: float,
        grad_scale: float = 1.0,
    ) -> bool:
        """One optimizer step with the flat gradient grad_scale·grads; False (nothing changed) if not
        finite."""

class _BuildInfo(TypedDict):
    """What build_info returns (a plain dict at run time)."""

    isa: str  # 'baseline', 'avx2', 'avx512' or 'native'
    compiler: str
    openmp: Optional[int]
    eigen: str
    simd: str

def all_finite(a: npt.NDArray[Any]) -> Optional[bool]:
    """Whether every value of a float32 or float64 array of 1 or 2 dimensions is finite; None for other arrays."""

def build_info() -> _BuildInfo:
    """Level, compiler, OpenMP, Eigen version and SIMD of this build."""

def supported_levels() -> list[str]:
    """Instruction-set levels this CPU can run, best last."""

def set_num_threads(n: int) -> None:
    """Use at most n threads (n >= 1), capped by OpenMP's limit."""

def get_num_threads() -> int:
    """The most threads the core will use from the calling thread."""

def _set_sharing(mode: int) -> None:
    """Tests and benchmarks: -1 automatic, 0 leader alone, 1 always wake workers."""
