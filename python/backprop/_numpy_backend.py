"""The reference backend: the same math as the C++ core, in plain NumPy.

It never calls ``backprop._core``: parity tests compare the two, and it is the
fallback when the extension cannot be imported. Samples are rows here
(Z = A_prev·Wᵀ + b), the transpose of the core's convention; see the documentation's math page (docs/guide/math.md).
"""

from __future__ import annotations

import math

import numpy as np

from ._architecture import ELU_ALPHA, LEAKY_RELU_SLOPE
from ._dropout_mask import dropout_mask
from ._layout import Layout
from ._validation import refuse_nonfinite


def _sigmoid(z):
    with np.errstate(over="ignore"):  # exp(−z) → inf gives the right limit 0
        return 1.0 / (1.0 + np.exp(-z))


_erf = np.frompyfunc(math.erf, 1, 1)  # the C library's erf, as the core calls it


def _normal_cdf(z):
    """Φ(z) = (1 + erf(z/√2)) / 2."""
    return (0.5 * (1.0 + _erf(z * (1.0 / math.sqrt(2.0))).astype(z.dtype))).astype(z.dtype)


def _gelu(z):
    return z * _normal_cdf(z)


def _gelu_derivative(z):
    """gelu'(z) = Φ(z) + z·φ(z), φ(z) = exp(−z²/2)/√(2π)."""
    return _normal_cdf(z) + z * (np.exp(-0.5 * z * z) * (1.0 / math.sqrt(2.0 * math.pi))).astype(z.dtype)


def _silu_derivative(z):
    """silu'(z) = σ(z)(1 + z(1 − σ(z)))."""
    s = _sigmoid(z)
    return s * (1 + z * (1 - s))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, LEAKY_RELU_SLOPE * z),
    "gelu": _gelu,
    "silu": lambda z: z * _sigmoid(z),
    "elu": lambda z: np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0))),
    "softmax": _softmax,
    "exp": np.exp,  # output only, with poisson; overflow to inf is reported like the core's
}

# σ'(z) from z and a = σ(z): through a where that is exact (the core keeps only a
# for those), through z for gelu, silu and elu (the core keeps z for them).
DERIVATIVES = {
    "identity": lambda z, a: 1,
    "sigmoid": lambda z, a: a * (1 - a),
    "tanh": lambda z, a: 1 - a * a,
    "relu": lambda z, a: (a > 0).astype(a.dtype),
    "leaky_relu": lambda z, a: np.where(a > 0, 1, LEAKY_RELU_SLOPE).astype(a.dtype),
    "gelu": lambda z, a: _gelu_derivative(z),
    "silu": lambda z, a: _silu_derivative(z),
    "elu": lambda z, a: np.where(z > 0, 1, ELU_ALPHA * np.exp(np.minimum(z, 0))).astype(a.dtype),
}

#: LayerNorm's ε (torch.nn.LayerNorm's default)
LAYER_NORM_EPS = 1e-5


def _one_hot(labels, n_classes, dtype):
    y = np.zeros((labels.shape[0], n_classes), dtype)
    y[np.arange(labels.shape[0]), labels] = 1
    return y


class NumpyBackend:
    """Forward, loss and gradients, epochs and optimizer steps in NumPy.

    `norms` (one bool per hidden layer: LayerNorm after the affine map),
    `dropout` (one rate per hidden layer) and `dropout_seed` (the key of the
    masks, see _dropout_mask) describe the hidden blocks; None means none.
    """

    name = "numpy"

    def __init__(self, sizes, activations, loss, dtype, norms=None, dropout=None, dropout_seed=0):
        self.layout = Layout(sizes, norms)
        self.activations = list(activations)
        self.loss = loss
        self.dtype = np.dtype(dtype)
        self.dropout = tuple(float(p) for p in dropout) if dropout is not None else (0.0,) * (len(sizes) - 2)
        self.dropout_seed = int(dropout_seed)

    # -- passes -----------------------------------------------------------
    def _layer_norm(self, z, gamma, beta):
        """(u, ẑ, 1/√(s² + ε)) of LayerNorm over each row's units: u = γ ⊙ ẑ + β, ẑ = (z − μ)/√(s² + ε)."""
        mu = z.mean(axis=1, keepdims=True)
        centred = z - mu
        inv_std = 1 / np.sqrt((centred * centred).mean(axis=1, keepdims=True) + self.dtype.type(LAYER_NORM_EPS))
        z_hat = centred * inv_std
        return z_hat * gamma + beta, z_hat, inv_std

    def _forward_all(self, params, X, logits_out, dropout_step=None):
        """(outputs [X, ã^(1), ..., a^(L)], per-layer caches) of one pass.

        With `logits_out` the last output is Z_L for the losses that read
        logits (all but mse). With `dropout_step` (a training pass) hidden
        outputs are dropped out with that step's masks. Each cache holds the
        activation's input "u", its output "a" before dropout, and "z_hat",
        "inv_std" (LayerNorm) and "mask" (m/(1 − p)) where they apply.
        """
        logits_out = logits_out and self.loss != "mse"
        outs, caches = [X], []
        L = self.layout.n_layers
        norms = self.layout.norm_views(params)
        for l, (W, b) in enumerate(self.layout.views(params)):
            u = outs[-1] @ W.T + b
            cache = {}
            if norms[l] is not None:
                u, cache["z_hat"], cache["inv_std"] = self._layer_norm(u, *norms[l])
            cache["u"] = u
            last = l == L - 1
            a = cache["a"] = u if (last and logits_out) else ACTIVATIONS[self.activations[l]](u)
            if not last and dropout_step is not None and self.dropout[l] > 0:
                cache["mask"] = dropout_mask(self.dropout_seed, dropout_step, l, a.shape[0], a.shape[1],
                                             self.dropout[l], self.dtype)
                a = a * cache["mask"]
            outs.append(a)
            caches.append(cache)
        return outs, caches

    # Overflow in these passes shows up as inf/NaN in the results, as in the
    # native core; NumPy's floating-point warnings are silenced to match.
    @np.errstate(all="ignore")
    def forward(self, params, X, check_finite=False):
        """A^(L) for every row of X: (n_samples, n_out); with check_finite, ValueError for NaN or ±inf in X."""
        if check_finite:
            refuse_nonfinite("X", X)
        return self._forward_all(params, X, logits_out=False)[0][-1]

    def _targets(self, labels, targets, n_out):
        return _one_hot(labels, n_out, self.dtype) if labels is not None else targets

    def _output_loss(self, out, Y, labels, u=None):
        """(per-sample losses, per-sample right classifications, ∂L/∂z_L per sample) from the output layer.

        `out` is Z_L for cross_entropy, binary_cross_entropy and poisson, else
        A_L, computed from `u` = Z_L (needed for mse's gradient only).
        """
        if self.loss == "cross_entropy":
            z_max = out.max(axis=1, keepdims=True)
            e = np.exp(out - z_max)
            sum_exp = e.sum(axis=1, keepdims=True)
            # Σ_k y_k (lse − z_k) with lse − z_k = (z_max − z_k) + log Σ exp(z − z_max)
            losses = np.sum(Y * ((z_max - out) + np.log(sum_exp)), axis=1, dtype=np.float64)
            wanted = labels if labels is not None else Y.argmax(axis=1)
            right = (out.argmax(axis=1) == wanted).astype(np.float64)
            a = e / sum_exp
            return losses, right, a - Y
        if self.loss == "binary_cross_entropy":
            terms = np.maximum(out, 0) - out * Y + np.log1p(np.exp(-np.abs(out)))
            a = _sigmoid(out)
            right = np.count_nonzero((a > 0.5) == (Y > 0.5), axis=1).astype(np.float64)  # as Network.predict
            return np.sum(terms, axis=1, dtype=np.float64), right, a - Y
        if self.loss == "poisson":
            # Σ_k xlogy(y, y/a) − y + a with a = exp(z), xlogy(y, y/a) = y·(log y − z) (0 where y = 0)
            a = np.exp(out)
            positive = Y > 0
            y_log_ratio = np.where(positive, Y * (np.log(np.where(positive, Y, 1)) - out), 0)
            losses = np.sum(y_log_ratio - Y + a, axis=1, dtype=np.float64)
            return losses, np.zeros(out.shape[0]), a - Y
        diff = out - Y  # mse
        losses = 0.5 * np.sum(diff * diff, axis=1, dtype=np.float64)
        return losses, np.zeros(out.shape[0]), diff * DERIVATIVES[self.activations[-1]](u, out)

    @staticmethod
    def _weighted_sums(losses, right, weights):
        """(Σ w·L, Σ w·right, Σ w), w = 1 without weights."""
        if weights is None:
            return float(losses.sum()), float(right.sum()), float(losses.shape[0])
        return float(weights @ losses), float(weights @ right), float(weights.sum())

    @np.errstate(all="ignore")
    def evaluate(self, params, X, labels=None, targets=None, weights=None):
        """(Σ w·loss, Σ w·correct, Σ w) over all rows of X, w = 1 without weights."""
        outs, caches = self._forward_all(params, X, logits_out=True)
        out = outs[-1]
        Y = self._targets(labels, targets, out.shape[1])
        losses, right, _ = self._output_loss(out, Y, labels, caches[-1]["u"])
        return self._weighted_sums(losses, right, weights)

    def _loss_and_gradients(self, params, X, labels, targets, weights, dropout_step=1):
        """(Σ w·L, Σ w·right, Σ w, flat gradient of the weighted mean loss Σ w·L / Σ w).

        A training pass: dropout (if any) uses the masks of `dropout_step`.
        """
        acts, caches = self._forward_all(params, X, logits_out=True, dropout_step=dropout_step)
        Y = self._targets(labels, targets, acts[-1].shape[1])
        losses, right, delta = self._output_loss(acts[-1], Y, labels, caches[-1]["u"])
        loss_sum, right_sum, weight_sum = self._weighted_sums(losses, right, weights)
        delta = delta * self.dtype.type(1.0 / weight_sum if weight_sum > 0 else 0.0)
        if weights is not None:
            delta *= weights.astype(self.dtype)[:, None]
        grads = np.empty(self.layout.n_params, self.dtype)
        views, grad_views = self.layout.views(params), self.layout.views(grads)
        norms, grad_norms = self.layout.norm_views(params), self.layout.norm_views(grads)
        # Code layer l (0-based) is the math's layer l+1; `delta` holds Δ^(l+1) of
        # the batch (samples as rows) and `acts[l]` is Ã^(l), the input of layer l+1.
        for l in range(self.layout.n_layers - 1, -1, -1):
            dW, db = grad_views[l]
            dW[...] = delta.T @ acts[l]
            db[...] = delta.sum(axis=0)
            if l > 0:
                below = caches[l - 1]
                # δ_u = (W^(l+1)ᵀ δ^(l+1) ⊙ m/(1 − p)) ⊙ σ'(u^(l)), for every sample (row) at once
                delta = delta @ views[l][0]
                if "mask" in below:
                    delta = delta * below["mask"]
                delta = delta * DERIVATIVES[self.activations[l - 1]](below["u"], below["a"])
                if norms[l - 1] is not None:
                    delta = self._layer_norm_backward(delta, below, norms[l - 1][0], grad_norms[l - 1])
        return loss_sum, right_sum, weight_sum, grads

    @staticmethod
    def _layer_norm_backward(g, cache, gamma, grad_norm):
        """δ_z from g = ∂L/∂u; writes ∂L/∂γ = Σ_batch g ⊙ ẑ and ∂L/∂β = Σ_batch g into `grad_norm`.

        δ_z = (γ⊙g − mean(γ⊙g) − ẑ ⊙ mean(γ⊙g ⊙ ẑ)) / √(s² + ε), the means over each sample's units.
        """
        z_hat = cache["z_hat"]
        grad_norm[0][...] = (g * z_hat).sum(axis=0)
        grad_norm[1][...] = g.sum(axis=0)
        gg = g * gamma
        return (gg - gg.mean(axis=1, keepdims=True) - z_hat * (gg * z_hat).mean(axis=1, keepdims=True)) \
            * cache["inv_std"]

    @np.errstate(all="ignore")
    def gradients(self, params, X, labels=None, targets=None, weights=None, dropout_step=1):
        """(weighted mean loss, flat gradient of the weighted mean loss over all rows of X,
        weighted fraction of right classifications Σ w·right / Σ w); dropout with the masks of `dropout_step`."""
        loss_sum, right_sum, weight_sum, grads = self._loss_and_gradients(params, X, labels, targets, weights,
                                                                          dropout_step)
        if not weight_sum > 0:
            return 0.0, grads, 0.0
        return loss_sum / weight_sum, grads, right_sum / weight_sum

    # -- training -----------------------------------------------------------
    @np.errstate(all="ignore")
    def optimizer_step(self, params, grads, optimizer, state, batch_weight, grad_scale=1.0):
        """One update of `params` and `state` with the gradient grad_scale·grads, applied in place only if
        it is finite.

        `batch_weight` is Σ w_j of the batch (its size when unweighted); the
        'sklearn' convention divides the weight decay by it. Returns False
        (changing nothing) when the new parameters or state would hold NaN or inf.
        """
        optimizer._check_room(1)
        if grad_scale != 1.0:
            grads = grads * self.dtype.type(grad_scale)
        step = optimizer.step_count + 1
        dt = self.dtype.type
        sklearn = optimizer.convention == "sklearn"
        weight_decay = optimizer.weight_decay
        if sklearn:
            weight_decay = weight_decay * (1.0 / batch_weight if batch_weight > 0 else 0.0)
        decoupled = optimizer.kind == "adamw"
        mask = self.layout.weight_mask(self.dtype)
        g = self._clipped(grads, optimizer)
        if not decoupled:
            g = g + mask * dt(weight_decay) * params
        new_state = {}
        if optimizer.kind == "sgd":
            if optimizer.momentum > 0:
                buf = new_state["momentum_buffer"] = state["momentum_buffer"] * dt(optimizer.momentum) + g
                g = g + dt(optimizer.momentum) * buf if optimizer.nesterov else buf
            new_params = params + dt(-optimizer.lr) * g
        else:
            bias_correction1 = 1.0 - optimizer.beta1 ** step
            bias_correction2 = 1.0 - optimizer.beta2 ** step
            m = new_state["m"] = state["m"] + dt(1.0 - optimizer.beta1) * (g - state["m"])
            v = new_state["v"] = state["v"] * dt(optimizer.beta2) + dt(1.0 - optimizer.beta2) * g * g
            eps = optimizer.eps / np.sqrt(bias_correction2) if sklearn else optimizer.eps
            denom = np.sqrt(v) / dt(np.sqrt(bias_correction2)) + dt(eps)
            # AdamW: w·(1 − ηλ) on weights (decoupled decay), w·1 elsewhere
            kept = params * np.where(mask > 0, dt(1.0 - optimizer.lr * weight_decay), dt(1)) if decoupled else params
            new_params = kept + dt(-optimizer.lr / bias_correction1) * (m / denom)
        if not all(np.isfinite(a).all() for a in (new_params, *new_state.values())):
            return False
        params[...] = new_params
        for name, value in new_state.items():
            state[name][...] = value
        optimizer.step_count = step
        return True

    def prepare(self, X, labels=None, targets=None, weights=None):
        """The training data as train_epoch and gradient_sum take it (checked arrays; the native
        backend checks them once more and keeps the result)."""
        return X, labels, targets, weights

    @np.errstate(all="ignore")
    def gradient_sum(self, params, data, rows, out):
        """out ← Σ_i w_i ∂L_i/∂θ over the listed rows of `data` (a data-parallel rank's share of a batch);
        returns (Σ w·loss, Σ w·right, Σ w)."""
        X, labels, targets, weights = data
        loss_sum, right_sum, weight_sum, grads = self._loss_and_gradients(
            params, X[rows], None if labels is None else labels[rows], None if targets is None else targets[rows],
            None if weights is None else weights[rows])
        out[...] = grads * self.dtype.type(weight_sum)
        return loss_sum, right_sum, weight_sum

    def _clipped(self, grads, optimizer):
        """The gradient after clip_norm (g·min(1, c/(‖g‖₂ + 1e-6))) and clip_value (clamp to ±v)."""
        g = grads
        if optimizer.clip_norm is not None:
            norm = math.sqrt(float(np.dot(g.astype(np.float64), g.astype(np.float64))))
            coefficient = optimizer.clip_norm / (norm + 1e-6)
            g = g * self.dtype.type(coefficient if not coefficient >= 1.0 else 1.0)
        if optimizer.clip_value is not None:
            g = np.clip(g, -self.dtype.type(optimizer.clip_value), self.dtype.type(optimizer.clip_value))
        return g

    def train_epoch(self, params, data, order, batch_size, optimizer, state, record_grad_norms):
        """Mini-batch training over the rows listed in `order`, `batch_size` rows a step.

        Updates `params`, `state` and ``optimizer.step_count`` in place and
        returns a dict: status ("completed", or "nonfinite_loss" or
        "nonfinite_update": stopped without that batch's step), batches,
        samples, loss_sum and n_correct (Σ over batches of B × the batch's
        weighted mean; plain sums without weights), weight_grad_norm_sums,
        penalty_sum (Σ ‖W‖²·B/Σ_batch w before each step, with the 'sklearn'
        convention). Overflow is reported by status, not warnings.
        """
        optimizer._check_room(-(-order.shape[0] // batch_size))  # before the first step
        with np.errstate(all="ignore"):
            return self._train_epoch(params, *data, order, batch_size, optimizer, state, record_grad_norms)

    def _train_epoch(self, params, X, labels, targets, weights, order, batch_size, optimizer, state,
                     record_grad_norms):
        n = order.shape[0]
        result = {"status": "completed", "batches": 0, "samples": 0, "loss_sum": 0.0,
                  "n_correct": 0.0, "penalty_sum": 0.0,
                  "weight_grad_norm_sums": [0.0] * self.layout.n_layers if record_grad_norms else []}
        for first in range(0, n, batch_size):
            index = order[first:first + batch_size]
            B = index.shape[0]
            loss, correct, batch_weight, grads = self._loss_and_gradients(
                params, X[index], None if labels is None else labels[index],
                None if targets is None else targets[index], None if weights is None else weights[index],
                optimizer.step_count + 1)
            if not np.isfinite(loss):
                result["status"] = "nonfinite_loss"
                return result
            share = 1.0 if weights is None else B * (1.0 / batch_weight if batch_weight > 0 else 0.0)
            penalty = 0.0
            if optimizer.convention == "sklearn":
                squared = sum(float(np.vdot(W, W)) for W, _ in self.layout.views(params))
                penalty = squared * B * (1.0 / batch_weight if batch_weight > 0 else 0.0)
            if not self.optimizer_step(params, grads, optimizer, state, batch_weight):
                result["status"] = "nonfinite_update"
                return result
            if record_grad_norms:
                for l, (dW, _) in enumerate(self.layout.views(grads)):
                    result["weight_grad_norm_sums"][l] += float(np.linalg.norm(dW))
            result["batches"] += 1
            result["samples"] += B
            result["loss_sum"] += loss * share
            result["n_correct"] += correct * share
            result["penalty_sum"] += penalty
        return result
