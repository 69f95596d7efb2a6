"""Where each layer's parameters sit in a network's flat parameter vector.

The flat vector is [W1, b1, (γ1, β1), W2, b2, ...] with each W^(l) stored
C-order as (n_out, n_in), and a hidden layer's LayerNorm gain γ and shift β
(n_out each) right after its bias when that layer is normalised, exactly as
the C++ core lays it out (architecture.hpp). Gradients and optimizer state
use the same layout.
"""

from __future__ import annotations

import numpy as np


class Layout:
    """Offsets of W^(l), b^(l) (and γ^(l), β^(l)) for layer sizes n_0..n_L.

    `norms` holds one bool per hidden layer (True: LayerNorm after its
    affine map); None means no normalised layer.
    """

    def __init__(self, sizes, norms=None):
        self.sizes = tuple(int(n) for n in sizes)
        n_layers = len(self.sizes) - 1
        self.norms = tuple(bool(v) for v in norms) + (False,) if norms is not None else (False,) * n_layers
        self.offsets = []  # (weight offset, bias offset) per layer
        self.norm_offsets = []  # γ offset per layer (β follows γ), or None
        offset = 0
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            self.offsets.append((offset, offset + n_out * n_in))
            offset += n_out * n_in + n_out
            self.norm_offsets.append(offset if self.norms[l] else None)
            offset += 2 * n_out if self.norms[l] else 0
        self.n_params = offset
        self._weight_masks = {}

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    def shapes(self, l):
        """((n_out, n_in), (n_out,)) of layer l."""
        return (self.sizes[l + 1], self.sizes[l]), (self.sizes[l + 1],)

    def views(self, flat):
        """[(W, b), ...]: views into `flat`, W (n_out, n_in), b (n_out,)."""
        out = []
        for l, (w_at, b_at) in enumerate(self.offsets):
            w_shape, b_shape = self.shapes(l)
            out.append((flat[w_at:b_at].reshape(w_shape), flat[b_at:b_at + b_shape[0]]))
        return out

    def norm_views(self, flat):
        """[(γ, β) or None, ...] per layer: views into `flat` of each LayerNorm's gain and shift."""
        out = []
        for l, at in enumerate(self.norm_offsets):
            n = self.sizes[l + 1]
            out.append(None if at is None else (flat[at:at + n], flat[at + n:at + 2 * n]))
        return out

    def weight_mask(self, dtype):
        """1 where the flat vector holds a weight, 0 where it holds a bias, γ or β."""
        dtype = np.dtype(dtype)
        if dtype not in self._weight_masks:
            mask = np.zeros(self.n_params, dtype)
            for W, _ in self.views(mask):
                W[...] = 1
            mask.flags.writeable = False
            self._weight_masks[dtype] = mask
        return self._weight_masks[dtype]
