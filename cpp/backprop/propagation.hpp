// Whole-network forward and backward passes over one batch, on preallocated
// buffers (samples as columns, see types.hpp).
#pragma once

#include <algorithm>
#include <vector>

#include "architecture.hpp"
#include "dense_layer.hpp"
#include "dropout.hpp"
#include "layer_norm.hpp"
#include "losses.hpp"
#include "optimizers.hpp"
#include "team.hpp"
#include "types.hpp"

namespace backprop {

// Buffers for batches of up to `capacity` samples: the activations A^(0..L),
// two ping-pong delta buffers, and room for a transposed copy of the largest
// weight matrix whose products may be small (dense_forward); for the layers
// that need them, the activation's input u (gelu, silu, elu), LayerNorm's ẑ
// and 1/√(s² + ε), and dropout's masks and dropped outputs Ã. Allocated once,
// reused for every batch.
template <class T>
class Workspace {
 public:
  Workspace(const Architecture& arch, Index capacity) : arch_(arch), capacity_(capacity) {
    for (Index l = 0; l <= arch.n_layers(); ++l)
      activations_.emplace_back(static_cast<std::size_t>(size(l) * capacity));
    for (Index l = 0; l < arch.n_layers(); ++l) {
      const auto block = static_cast<std::size_t>(arch.n_out(l) * capacity);
      inputs_.emplace_back(arch.keeps_input(l) ? block : 0);
      z_hats_.emplace_back(arch.has_norm(l) ? block : 0);
      inv_stds_.emplace_back(arch.has_norm(l) ? static_cast<std::size_t>(capacity) : 0);
      masks_.emplace_back(arch.dropout(l) > 0 ? block : 0);
      dropped_.emplace_back(arch.dropout(l) > 0 ? block : 0);
    }
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
  // What layer l + 1 reads: Ã^(l) (the dropped-out activations after a
  // training pass with dropout at layer l - 1 in code numbering), else A^(l).
  T* output_data(Index l, bool dropped) {
    return dropped && l > 0 && arch_.dropout(l - 1) > 0 ? dropped_[l - 1].data() : activations_[l].data();
  }
  // Code layer l's activation input u, LayerNorm's ẑ and 1/√(s² + ε), and
  // dropout's m/(1 − p): n_out(l) × B (inv_std: B), where the layer has them.
  T* input_data(Index l) { return inputs_[l].data(); }
  T* z_hat_data(Index l) { return z_hats_[l].data(); }
  T* inv_std_data(Index l) { return inv_stds_[l].data(); }
  T* mask_data(Index l) { return masks_[l].data(); }
  T* dropped_data(Index l) { return dropped_[l].data(); }
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
  std::vector<Buffer<T>> inputs_, z_hats_, inv_stds_, masks_, dropped_;
  Buffer<T> deltas_[2];
  Buffer<T> zeros_;
  Buffer<T> transposed_;
};

// Columns [c0, c0 + count) of hidden block l after its affine map: `out`
// (n × B) holds z; LayerNorm (z → u, keeping ẑ and 1/√(s² + ε)), u kept for
// an activation that needs it, a = σ(u), and with `dropout` Ã = a ⊙ m/(1 − p).
template <class T>
void finish_block(const Architecture& arch, const T* params, Index l, Activation act, MatrixMap<T>& out,
                  Workspace<T>& ws, const DropoutPass* dropout, Index c0, Index count) {
  if (count == 0) return;
  const Index n = out.rows();
  if (arch.has_norm(l))
    layer_norm_forward(out.data(), arch.gamma(params, l), arch.beta(params, l), ws.z_hat_data(l),
                       ws.inv_std_data(l), n, c0, count);
  auto columns = out.middleCols(c0, count);
  if (arch.keeps_input(l) && act == arch.activation(l))
    MatrixMap<T>(ws.input_data(l), n, out.cols()).middleCols(c0, count) = columns;
  if (act != Activation::identity) add_bias_and_activate(act, columns, ConstVectorMap<T>(ws.zeros(), n));
  if (dropout && arch.dropout(l) > 0)
    apply_dropout(dropout_key(arch.dropout_seed(), dropout->step, std::uint64_t(l)), arch.dropout(l), out.data(),
                  ws.mask_data(l), ws.dropped_data(l), n, c0, count, dropout->first_position);
}

// Runs layers 1..L on `input` (n_0 × B), shared by `team`. The output lands in
// ws.activation(L, B) and holds logits if `stop_at_logits` and the loss reads
// them, else A^(L). A training pass gives `dropout` (which masks to draw);
// inference passes none.
template <class T>
void forward_pass(const Architecture& arch, const T* params, const ConstMatrixMap<T>& input,
                  Workspace<T>& ws, bool stop_at_logits, const Team& team, const DropoutPass* dropout = nullptr) {
  const Index L = arch.n_layers(), B = input.cols();
  for (Index l = 0; l < L; ++l) {
    MatrixMap<T> out = ws.activation(l + 1, B);
    Activation act = arch.activation(l);
    if (l == L - 1 && stop_at_logits && loss_reads_logits(arch.loss())) act = Activation::identity;
    const ConstMatrixMap<T> prev =
        l == 0 ? input : ConstMatrixMap<T>(ws.output_data(l, dropout != nullptr), arch.n_in(l), B);
    const Index n = arch.n_out(l);
    // Steps by whole columns (softmax, LayerNorm, kept inputs, dropout) follow the products by rows.
    const bool by_columns = act == Activation::softmax || arch.has_norm(l) ||
                            (arch.keeps_input(l) && act == arch.activation(l)) ||
                            (dropout && arch.dropout(l) > 0);
    team.parallel(double(B) * double(n) * double(arch.n_in(l)), [&](const Part& part) {
      dense_forward(arch.W(params, l), arch.b(params, l), by_columns ? Activation::identity : act, prev, out,
                    part.begin(n), part.count(n), ws.transposed_weights());
    });
    if (by_columns)
      team.parallel([&](const Part& part) {
        finish_block(arch, params, l, act, out, ws, dropout, part.begin(B), part.count(B));
      });
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
      const bool by_columns = act == Activation::softmax || arch.has_norm(l);
      const T* prev = l == 0 ? input.data() + c0 * input.outerStride() : ws.activation_data(l) + c0 * n_in;
      MatrixMap<T> out(ws.activation_data(l + 1) + c0 * n_out, n_out, n);
      // No small-product path: its copy of W is shared by the parts.
      dense_forward(arch.W(params, l), arch.b(params, l), by_columns ? Activation::identity : act,
                    ConstMatrixMap<T>(prev, n_in, n), out, 0, n_out, static_cast<T*>(nullptr));
      if (arch.has_norm(l))  // inference keeps neither ẑ nor 1/√(s² + ε)
        layer_norm_forward(out.data(), arch.gamma(params, l), arch.beta(params, l), static_cast<T*>(nullptr),
                           static_cast<T*>(nullptr), n_out, 0, n);
      if (by_columns) add_bias_and_activate(act, out, ConstVectorMap<T>(ws.zeros(), n_out));
    }
  });
}

// An optimizer step taken inside backward_pass: each layer's rows are
// updated by `rule` in the phase after the one that completed their gradient
// and last read their weights, while both are still in the cache of the
// thread that computed them; probes[part] sums that part's probes.
template <class T>
struct FusedStep {
  const StepRule<T>& rule;
  T* params;
  T* probes;
};

// From δ^(L) in ws.delta(L, B), writes ∂R/∂W, ∂R/∂b (and ∂R/∂γ, ∂R/∂β) of
// every layer into the flat `grads` (added to it with `accumulate`), shared by
// `team`. Needs the buffers that forward_pass left in `ws`, the same `input`,
// and `dropped` when that pass applied dropout. With `step` (and without
// `accumulate`) it also takes that step, consuming `grads` as optimizer_step
// does: layer l + 1 is updated in layer l's phase (the weights of layer
// l + 1 are read by its own phase, for δ^(l)), and layer 0 in its own.
// Code layer l (0-based) is the math's layer l+1: ws.delta(l + 1) holds
// δ^(l+1) and ws.activation(l) holds a^(l), samples as columns.
template <class T>
void backward_pass(const Architecture& arch, const T* params, const ConstMatrixMap<T>& input,
                   Workspace<T>& ws, T* grads, bool accumulate, const Team& team, bool dropped = false,
                   const FusedStep<T>* step = nullptr) {
  const Index L = arch.n_layers(), B = input.cols();
  if (step) std::fill(step->probes, step->probes + team.size(), T(0));
  for (Index l = L - 1; l >= 0; --l) {
    const MatrixMap<T> D = ws.delta(l + 1, B);
    WeightMap<T> dW = arch.W(grads, l);
    VectorMap<T> db = arch.b(grads, l);
    const ConstMatrixMap<T> A_prev =
        l == 0 ? input : ConstMatrixMap<T>(ws.output_data(l, dropped), arch.n_in(l), B);
    const Index n_out = arch.n_out(l), n_in = arch.n_in(l), below = l - 1;
    const double macs = double(B) * double(n_out) * double(n_in) * (l > 0 ? 2.0 : 1.0);
    team.parallel(macs, [&](const Part& part) {
      dense_parameter_gradients(D, A_prev, dW, db, accumulate, part.begin(n_out), part.count(n_out));
      if (l > 0) {  // δ of the layer below; the input layer needs none
        MatrixMap<T> D_prev = ws.delta(l, B);
        const Index r0 = part.begin(n_in), rows = part.count(n_in);
        // δ_u^(l) = (W^(l+1)ᵀ δ^(l+1) ⊙ m/(1 − p)) ⊙ σ'(u^(l)), σ' read from the stored a^(l) (or u^(l))
        dense_input_gradient(arch.W(params, l), D, D_prev, r0, rows);
        auto D_rows = D_prev.middleRows(r0, rows);
        if (dropped && arch.dropout(below) > 0)
          D_rows.array() *= MatrixMap<T>(ws.mask_data(below), n_in, B).middleRows(r0, rows).array();
        const auto A_rows = ws.activation(l, B).middleRows(r0, rows);
        if (arch.keeps_input(below))
          multiply_by_derivative(arch.activation(below), A_rows,
                                 MatrixMap<T>(ws.input_data(below), n_in, B).middleRows(r0, rows), D_rows);
        else
          multiply_by_derivative(arch.activation(below), A_rows, A_rows, D_rows);
        if (arch.has_norm(below))
          layer_norm_parameter_gradients(D_prev.data(), ws.z_hat_data(below), arch.gamma(grads, below),
                                         arch.beta(grads, below), n_in, B, accumulate, r0, rows);
      }
      if (step) {  // this part's rows of layer l + 1, and in the last phase of layer 0
        const auto update = [&](Index layer) {
          const Index n = arch.n_out(layer);
          step->probes[part.id] += step->rule.update_rows(step->params, grads, layer, part.begin(n), part.count(n));
        };
        if (l + 1 < L) update(l + 1);
        if (l == 0) update(0);
      }
    });
    if (l > 0 && arch.has_norm(below)) {  // δ_z^(l) = LN'ᵀ(δ_u^(l)), by whole columns
      T* D_prev = ws.delta(l, B).data();
      team.parallel([&](const Part& part) {
        layer_norm_input_gradient(D_prev, ws.z_hat_data(below), ws.inv_std_data(below), arch.gamma(params, below),
                                  n_in, part.begin(B), part.count(B));
      });
    }
  }
}

}  // namespace backprop
