"""Where each layer's W and b sit in a network's flat parameter vector.

The flat vector is [W1, b1, W2, b2, ...] with each W^(l) stored C-order as
(n_out, n_in), exactly as the C++ core lays it out. Gradients and optimizer
state use the same layout.
"""

from __future__ import annotations

import numpy as np


class Layout:
    """Offsets of W^(l) and b^(l) for layer sizes n_0..n_L."""

    def __init__(self, sizes):
        self.sizes = tuple(int(n) for n in sizes)
        self.offsets = []  # (weight offset, bias offset) per layer
        offset = 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            self.offsets.append((offset, offset + n_out * n_in))
            offset += n_out * n_in + n_out
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

    def weight_mask(self, dtype):
        """1 where the flat vector holds a weight, 0 where it holds a bias."""
        dtype = np.dtype(dtype)
        if dtype not in self._weight_masks:
            mask = np.zeros(self.n_params, dtype)
            for W, _ in self.views(mask):
                W[...] = 1
            mask.flags.writeable = False
            self._weight_masks[dtype] = mask
        return self._weight_masks[dtype]
