// Whole-network forward and backward passes over one batch, on preallocated
// buffers (samples as columns, see types.hpp).
#pragma once

#include <algorithm>
#include <vector>

#include "architecture.hpp"
#include "dense_layer.hpp"
#include "losses.hpp"
#include "team.hpp"
#include "types.hpp"

namespace backprop {

// Buffers for batches of up to `capacity` samples: the activations A^(0..L),
// two ping-pong delta buffers, and room for a transposed copy of the largest
// weight matrix whose products may be small (dense_forward). Allocated once,
// reused for every batch.
template <class T>
class Workspace {
 public:
  Workspace(const Architecture& arch, Index capacity) : arch_(arch), capacity_(capacity) {
    for (Index l = 0; l <= arch.n_layers(); ++l)
      activations_.emplace_back(static_cast<std::size_t>(size(l) * capacity));
    for (auto& d : deltas_) d.resize(static_cast<std::size_t>(arch.max_width() * capacity));
    zeros_.assign(static_cast<std::size_t>(arch.max_width()), T(0));
    // Room for dense_forward's copy of W in every layer small_forward can
    // pick at some batch size up to the capacity (it is easiest to meet at
    // the fewest columns it takes).
    Index transposed = 0;
    for (Index l = 0; l < arch.n_layers(); ++l)
      if (capacity >= kMinColumnsForTransposed && small_forward(arch.n_out(l), arch.n_in(l), kMinColumnsForTransposed))
        transposed = std::max(transposed, arch.n_out(l) * arch.n_in(l));
    transposed_.resize(static_cast<std::size_t>(transposed));
  }

  Index capacity() const { return capacity_; }
  // A^(l) for a batch of B samples: size(l) × B; A^(0) is the input.
  T* activation_data(Index l) { return activations_[l].data(); }
  MatrixMap<T> activation(Index l, Index B) { return MatrixMap<T>(activations_[l].data(), size(l), B); }
  // δ^(l) lives in buffer l % 2, so δ^(l) and δ^(l-1) never share one.
  MatrixMap<T> delta(Index l, Index B) { return MatrixMap<T>(deltas_[l % 2].data(), size(l), B); }
  // As many zeros as the widest layer: a bias for bias-free activation passes.
  const T* zeros() const { return zeros_.data(); }
  T* transposed_weights() { return transposed_.data(); }

 private:
  Index size(Index l) const { return l == 0 ? arch_.n_inputs() : arch_.n_out(l - 1); }

  const Architecture& arch_;
  Index capacity_;
  std::vector<Buffer<T>> activations_;
  Buffer<T> deltas_[2];
  Buffer<T> zeros_;
  Buffer<T> transposed_;
};

// Runs layers 1..L on `input` (n_0 × B), shared by `team`. The output lands in
// ws.activation(L, B) and holds logits if `stop_at_logits` and the loss reads
// them, else A^(L).
template <class T>
void forward_pass(const Architecture& arch, const T* params, const ConstMatrixMap<T>& input,
                  Workspace<T>& ws, bool stop_at_logits, const Team& team) {
  const Index L = arch.n_layers(), B = input.cols();
  for (Index l = 0; l < L; ++l) {
    MatrixMap<T> out = ws.activation(l + 1, B);
    Activation act = arch.activation(l);
    if (l == L - 1 && stop_at_logits && loss_reads_logits(arch.loss())) act = Activation::identity;
    const ConstMatrixMap<T> prev = l == 0 ? input : ConstMatrixMap<T>(ws.activation_data(l), arch.n_in(l), B);
    const Index n = arch.n_out(l);
    const bool softmax = act == Activation::softmax;  // whole columns: products by rows, then softmax by columns
    team.parallel([&](const Part& part) {
      dense_forward(arch.W(params, l), arch.b(params, l), softmax ? Activation::identity : act, prev, out,
                    part.begin(n), part.count(n), ws.transposed_weights());
    });
    if (softmax) {
      const ConstVectorMap<T> zero_bias(ws.zeros(), n);
      team.parallel([&](const Part& part) {
        add_bias_and_activate(act, out.middleCols(part.begin(B), part.count(B)), zero_bias);
      });
    }
  }
}

// The same as forward_pass, for inference: each part of `team` takes a block
// of samples (columns) through every layer, so the threads never wait for
// each other between layers and each runs larger products. With one part it
// is forward_pass.
template <class T>
void forward_by_samples(const Architecture& arch, const T* params, const ConstMatrixMap<T>& input,
                        Workspace<T>& ws, bool stop_at_logits, const Team& team) {
  if (team.size() == 1) return forward_pass(arch, params, input, ws, stop_at_logits, team);
  const Index L = arch.n_layers(), B = input.cols();
  team.parallel([&](const Part& part) {
    const Index c0 = part.begin(B), n = part.count(B);
    if (n == 0) return;
    for (Index l = 0; l < L; ++l) {
      const Index n_in = arch.n_in(l), n_out = arch.n_out(l);
      Activation act = arch.activation(l);
      if (l == L - 1 && stop_at_logits && loss_reads_logits(arch.loss())) act = Activation::identity;
      const bool softmax = act == Activation::softmax;
      const T* prev = l == 0 ? input.data() + c0 * input.outerStride() : ws.activation_data(l) + c0 * n_in;
      MatrixMap<T> out(ws.activation_data(l + 1) + c0 * n_out, n_out, n);
      // No small-product path: its copy of W is shared by the parts.
      dense_forward(arch.W(params, l), arch.b(params, l), softmax ? Activation::identity : act,
                    ConstMatrixMap<T>(prev, n_in, n), out, 0, n_out, static_cast<T*>(nullptr));
      if (softmax) add_bias_and_activate(act, out, ConstVectorMap<T>(ws.zeros(), n_out));
    }
  });
}

// From δ^(L) in ws.delta(L, B), writes ∂R/∂W, ∂R/∂b of every layer into the
// flat `grads` (added to it with `accumulate`), shared by `team`. Needs the
// activations that forward_pass left in `ws`, and the same `input`.
// Code layer l (0-based) is the math's layer l+1: ws.delta(l + 1) holds
// δ^(l+1) and ws.activation(l) holds a^(l), samples as columns.
template <class T>
void backward_pass(const Architecture& arch, const T* params, const ConstMatrixMap<T>& input,
                   Workspace<T>& ws, T* grads, bool accumulate, const Team& team) {
  const Index L = arch.n_layers(), B = input.cols();
  for (Index l = L - 1; l >= 0; --l) {
    const MatrixMap<T> D = ws.delta(l + 1, B);
    WeightMap<T> dW = arch.W(grads, l);
    VectorMap<T> db = arch.b(grads, l);
    const ConstMatrixMap<T> A_prev = l == 0 ? input : ConstMatrixMap<T>(ws.activation_data(l), arch.n_in(l), B);
    const Index n_out = arch.n_out(l), n_in = arch.n_in(l);
    team.parallel([&](const Part& part) {
      dense_parameter_gradients(D, A_prev, dW, db, accumulate, part.begin(n_out), part.count(n_out));
      if (l > 0) {  // δ of the layer below; the input layer needs none
        MatrixMap<T> D_prev = ws.delta(l, B);
        const Index r0 = part.begin(n_in), rows = part.count(n_in);
        // δ^(l) = (W^(l+1)ᵀ δ^(l+1)) ⊙ σ'(z^(l)), σ' read from the stored a^(l)
        dense_input_gradient(arch.W(params, l), D, D_prev, r0, rows);
        multiply_by_derivative(arch.activation(l - 1), ws.activation(l, B).middleRows(r0, rows),
                               D_prev.middleRows(r0, rows));
      }
    });
  }
}

}  // namespace backprop
