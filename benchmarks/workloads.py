"""The workloads W1–W9, W10 and W11 (W1 with dropout, with LayerNorm), their sizes per mode, and the
goals to reach.

A training workload is one epoch of mini-batch training of a dense network
with softmax cross-entropy. The modes scale the number of samples only:
``full`` is the goals' definition, ``quick`` a tenth of it (under a minute
on 2 cores), ``smoke`` a few hundred rows (for the test suite).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

W1_SIZES = (784, 256, 128, 10)
W3_SIZES = (64, 32, 10)

#: The timed training workloads, in the order the report prints them; each gets its arithmetic limit.
TRAINING_KEYS = ("W1", "W2", "W3", "W8", "W6.W1", "W6.W2", "W6.W3", "W10", "W11")


@dataclass(frozen=True)
class Workload:
    """One epoch of training, described completely enough for every peer to repeat it.

    Attributes
    ----------
    key : str
        "W1", "W2", "W3", "W8", "W10", "W11", or "W6.W1" … for the float64 variants.
    sizes : tuple of int
        Layer widths n_0 … n_L.
    activation : str
        Hidden activation, 'relu' or 'sigmoid'; the output is always softmax
        with cross-entropy.
    batch_size, n_samples : int
    dtype : 'float32' or 'float64'
    optimizer : 'sgd' (plain, no momentum) or 'adam' (β = 0.9, 0.999, ε = 1e-8)
    lr : float
    inputs : 'pixels' (784 features) or 'pooled64' (see ``data.pool_to_64``)
    dropout : float, the dropout rate after every hidden layer (0: none)
    norm : None or 'layer', LayerNorm in every hidden layer
    seed : int
        Seeds the initial weights (backprop's ``Network(seed=...)``).
    """

    key: str
    sizes: tuple
    activation: str
    batch_size: int
    n_samples: int
    dtype: str = "float32"
    optimizer: str = "sgd"
    lr: float = 0.05
    inputs: str = "pixels"
    seed: int = 0
    dropout: float = 0.0
    norm: str = None

    @property
    def regularized(self):
        """Whether the hidden layers have dropout or LayerNorm (which scikit-learn's MLP cannot run)."""
        return bool(self.dropout) or self.norm is not None

    @property
    def steps(self):
        """Training steps (batches) in one epoch; the last may be smaller."""
        return -(-self.n_samples // self.batch_size)

    def describe(self):
        """One line: architecture, optimizer, batch, samples, dtype."""
        optimizer = f"SGD lr {self.lr:g}" if self.optimizer == "sgd" else f"Adam lr {self.lr:g}"
        inputs = ", inputs pooled to 8×8" if self.inputs == "pooled64" else ""
        blocks = (" + LayerNorm" if self.norm else "") + (f" + dropout {self.dropout:g}" if self.dropout else "")
        return (f"{'-'.join(map(str, self.sizes))} {self.activation}{blocks}, softmax CE, {optimizer}, "
                f"batch {self.batch_size}, {self.n_samples:,} samples{inputs}, {self.dtype} "
                f"({self.steps:,} steps)")

    def to_dict(self):
        return {**asdict(self), "sizes": list(self.sizes), "steps": self.steps}

    @classmethod
    def from_dict(cls, fields):
        known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "sizes": tuple(known["sizes"])})


@dataclass(frozen=True)
class Mode:
    """How big each workload is in one mode of the suite.

    Attributes
    ----------
    name : str
    pixel_samples : int, training rows of W1, W2, W8 and their float64 variants
    pooled_samples : int, training rows of W3
    predict_rows : int, rows W5 predicts
    settle_seconds : float, pause before each timed run so that the
        previous peer's idle thread pools stop spinning (``suite._settle``)
    contention_samples : int, training rows of W1 and W2 under load (W9)
    """

    name: str
    pixel_samples: int
    pooled_samples: int
    predict_rows: int
    settle_seconds: float
    contention_samples: int


MODES = {
    "full": Mode("full", 60_000, 18_000, 10_000, 0.25, 20_000),
    "quick": Mode("quick", 6_000, 3_600, 10_000, 0.2, 4_000),
    "smoke": Mode("smoke", 512, 256, 256, 0.0, 256),
}


def training_workloads(mode):
    """The training workloads of `mode` in the order the suite runs them: {key: Workload}.

    W4 (efficiency), W5 (predict), W7 (threads) and W9 (under load) reuse W1
    and W2 and are not listed here.
    """
    w1 = Workload("W1", W1_SIZES, "relu", 32, mode.pixel_samples)
    w2 = replace(w1, key="W2", batch_size=256)
    w3 = Workload("W3", W3_SIZES, "sigmoid", 16, mode.pooled_samples, inputs="pooled64")
    w8 = replace(w1, key="W8", optimizer="adam", lr=1e-3)
    float64 = [replace(w, key=f"W6.{w.key}", dtype="float64") for w in (w1, w2, w3)]
    w10, w11 = replace(w1, key="W10", dropout=0.2), replace(w1, key="W11", norm="layer")
    return {w.key: w for w in (w1, w2, w3, w8, *float64, w10, w11)}


def warmup_rows(workload):
    """Rows of the untimed warm-up epoch: enough batches to load code, threads and caches."""
    return min(workload.n_samples, max(workload.n_samples // 10, 4 * workload.batch_size))


@dataclass(frozen=True)
class Goal:
    """One line of the goals table.

    The figure is ``native seconds / peer seconds`` for kind 'ratio',
    ``native seconds / floor seconds`` for 'floor', the fit's memory over the
    bound for 'memory', the native time over the workload's arithmetic limit
    (``limits``) for 'limit', the float64 native time over the float32 one
    for 'dtype' (key: the float64 workload), the native time of one call in
    µs for 'latency' and over the peer's for 'call_ratio'. W7's goals (key
    "W7:<workload>"): the 1-thread over the default n-thread time for
    'speedup', the default's time over the faster fixed setting's
    (``threads.FIXED``) for 'threads'. W9's 'contention' goals (key
    "W9:<workload>:<busy processes>"): native default's time over native on
    1 thread (peer 'native_1'), over the faster fixed native setting (peer
    'best_fixed') or over PyTorch's faster setting (peer 'torch_best').
    'speedup' must reach the bound; the others stay at or below it.
    """

    goal_id: str
    key: str
    kind: str
    peer: str
    bound: float
    text: str

    @property
    def at_least(self):
        return self.kind == "speedup"


def goals():
    """The goals of W1–W9 and memory, in the order the table prints them."""
    table = [
        Goal("W1", "W1", "ratio", "torch", 0.45, "native / PyTorch"),
        Goal("W1", "W1", "ratio", "numpy", 0.55, "native / numpy backend"),
        Goal("W2", "W2", "ratio", "torch", 0.8, "native / PyTorch"),
        Goal("W2", "W2", "ratio", "numpy", 0.8, "native / numpy backend"),
        Goal("W3", "W3", "ratio", "torch", 1 / 100, "native / PyTorch"),
        Goal("W3", "W3", "ratio", "numpy", 1 / 8, "native / numpy backend"),
        Goal("W4", "W1", "floor", "floor", 1.25, "native / BLAS floor, W1"),
        Goal("W4", "W2", "floor", "floor", 1.1, "native / BLAS floor, W2"),
        Goal("W5", "W5", "floor", "floor", 1.0, "native predict / BLAS floor"),
    ]
    # W6: "the same ratios within 20 %": each float32 goal, loosened by a fifth.
    for goal in [g for g in table if g.kind == "ratio"]:
        table.append(replace(goal, goal_id="W6", key=f"W6.{goal.key}", bound=goal.bound * 1.2,
                             text=f"{goal.text}, {goal.key} float64 (1.2 × {goal.key}'s goal)"))
    limit = "native / arithmetic limit (fastest 1-core GEMM × cores)"
    table += [
        Goal("W1", "W1", "limit", "native", 1.3, limit),
        Goal("W2", "W2", "limit", "native", 1.3, limit),
        Goal("W3", "W3", "limit", "native", 2.0, limit),
        Goal("W3", "W6.W3", "dtype", "native", 1.5, "native float64 time / float32 time"),
        Goal("W3", "W3.1", "latency", "native", 100.0, "native fit call of one 16-row batch, µs"),
        Goal("W5", "W5.1", "latency", "native", 10.0, "native forward of one sample, µs"),
        Goal("W5", "W5.1", "call_ratio", "onnxruntime", 0.5, "native forward / onnxruntime run, one sample"),
    ]
    for key in ("W1", "W2"):
        table += [Goal("W7", f"W7:{key}", "speedup", "native", 1.7, f"native speed-up, n threads over 1 ({key})"),
                  Goal("W7", f"W7:{key}", "threads", "native", 1.10,
                       f"native default / best fixed setting ({key}, idle)")]
    table += [
        Goal("W8", "W8", "ratio", "torch", 0.45, "native / PyTorch, Adam"),
        Goal("W10", "W10", "cost", "native", 1.15, "native W1 with dropout 0.2 / plain W1 beside it"),
        Goal("W11", "W11", "cost", "native", 1.15, "native W1 with LayerNorm / plain W1 beside it"),
        Goal("mem", "memory", "memory", "native", 1.0, "native fit memory / bound (W1)"),
    ]
    for key in ("W1", "W2"):
        for busy in (1, 2):
            where = f"{key}, {busy} busy"
            table += [Goal("W9", f"W9:{key}:{busy}", "contention", "native_1", 1.15,
                           f"native default / native 1 thread ({where})"),
                      Goal("W9", f"W9:{key}:{busy}", "contention", "torch_best", 0.45,
                           f"native default / PyTorch, faster setting ({where})")]
        table.append(Goal("W9", f"W9:{key}:1", "contention", "best_fixed", 1.10,
                          f"native default / best fixed setting ({key}, 1 busy)"))
    return table
