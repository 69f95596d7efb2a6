// One dense layer's three kernels, named by what they produce.
// Shapes (samples are columns): A_prev n_in × B, Z/A/D n_out × B,
// W n_out × n_in (row-major), b n_out.
#pragma once

#include "activations.hpp"
#include "types.hpp"

namespace backprop {

// Forward: A = σ(W·A_prev + b 1ᵀ), written into `out`.
template <class T>
void dense_forward(const ConstWeightMap<T>& W, const ConstVectorMap<T>& b, Activation act,
                   const ConstMatrixMap<T>& A_prev, MatrixMap<T>& out) {
  out.noalias() = W * A_prev;
  add_bias_and_activate(act, out, b);
}

// Input gradient: D_prev = Wᵀ·D (the caller multiplies by σ'_prev).
template <class T>
void dense_input_gradient(const ConstWeightMap<T>& W, const MatrixMap<T>& D, MatrixMap<T>& D_prev) {
  D_prev.noalias() = W.transpose() * D;
}

// Parameter gradients: dW = D·A_prevᵀ, db = D·1 (D already carries the 1/B
// of the batch mean). With `accumulate` they are added to what is there.
template <class T>
void dense_parameter_gradients(const MatrixMap<T>& D, const ConstMatrixMap<T>& A_prev,
                               WeightMap<T>& dW, VectorMap<T>& db, bool accumulate) {
  if (accumulate) {
    dW.noalias() += D * A_prev.transpose();
    db.noalias() += D.rowwise().sum();
  } else {
    dW.noalias() = D * A_prev.transpose();
    db.noalias() = D.rowwise().sum();
  }
}

}  // namespace backprop
