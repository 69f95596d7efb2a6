// One dense layer's three kernels, named by what they produce. Each computes
// the rows [r0, r0 + n) of its output only, so a team can share a layer.
// Shapes (samples are columns): A_prev n_in × B, Z/A/D n_out × B,
// W n_out × n_in (row-major), b n_out. A layer whose products are small
// (small_product: n_out · n_in · B multiply-adds) uses small_gemm.hpp's
// kernel, every other one Eigen's product.
#pragma once

#include "activations.hpp"
#include "small_gemm.hpp"
#include "types.hpp"

namespace backprop {

// Forward, rows [r0, r0+n): A = σ(W·A_prev + b 1ᵀ), written into `out`.
// softmax needs whole columns: pass Activation::identity here and apply it
// afterwards (see forward_pass). For a small product, rows [r0, r0+n) of W
// are first copied column-major into transposed[r0·n_in, (r0+n)·n_in), the
// layout the kernel streams; a null `transposed` keeps to Eigen's product.
template <class T>
void dense_forward(const ConstWeightMap<T>& W, const ConstVectorMap<T>& b, Activation act,
                   const ConstMatrixMap<T>& A_prev, MatrixMap<T>& out, Index r0, Index n, T* transposed) {
  if (n == 0) return;
  auto rows = out.middleRows(r0, n);
  const Index n_in = W.cols(), B = A_prev.cols();
  if (transposed && small_forward(W.rows(), n_in, B)) {
    T* wt = transposed + r0 * n_in;
    transpose_to_column_major(W.data() + r0 * n_in, n_in, n, n_in, wt);
    small_gemm(n, B, n_in, wt, n, A_prev.data(), 1, n_in, out.data() + r0, out.rows(), false);
  } else {
    rows.noalias() = W.middleRows(r0, n) * A_prev;
  }
  add_bias_and_activate(act, rows, b.segment(r0, n));
}

// Input gradient, rows [r0, r0+n) of D_prev = Wᵀ·D (units r0.. of the layer
// below; the caller multiplies by σ'_prev).
template <class T>
void dense_input_gradient(const ConstWeightMap<T>& W, const MatrixMap<T>& D, MatrixMap<T>& D_prev, Index r0,
                          Index n) {
  if (n == 0) return;
  if (small_product(W.rows(), W.cols(), D.cols()))  // W's rows are columns of Wᵀ: no copy needed
    small_gemm(n, D.cols(), W.rows(), W.data() + r0, W.cols(), D.data(), 1, D.rows(), D_prev.data() + r0,
               D_prev.rows(), false);
  else
    D_prev.middleRows(r0, n).noalias() = W.middleCols(r0, n).transpose() * D;
}

// Parameter gradients, rows [r0, r0+n): dW = D·A_prevᵀ, db = D·1 (D already
// carries the 1/B of the batch mean). With `accumulate` they are added.
// db sums the columns one after another, so its rounding does not depend on
// the alignment of db (the caller's array); see Buffer in types.hpp.
template <class T>
void dense_parameter_gradients(const MatrixMap<T>& D, const ConstMatrixMap<T>& A_prev, WeightMap<T>& dW,
                               VectorMap<T>& db, bool accumulate, Index r0, Index n) {
  if (n == 0) return;
  const auto D_rows = D.middleRows(r0, n);
  if (small_product(D.rows(), A_prev.rows(), D.cols())) {  // rows of dW = columns of dWᵀ = A_prev · Dᵀ
    small_gemm(A_prev.rows(), n, D.cols(), A_prev.data(), A_prev.rows(), D.data() + r0, D.rows(), Index(1),
               dW.data() + r0 * dW.cols(), dW.cols(), accumulate);
  } else if (accumulate) {
    dW.middleRows(r0, n).noalias() += D_rows * A_prev.transpose();
  } else {
    dW.middleRows(r0, n).noalias() = D_rows * A_prev.transpose();
  }
  if (!accumulate) db.segment(r0, n).setZero();
  // Plain loops: an Eigen expression per column costs more than the sum.
  T* sum = db.data() + r0;
  for (Index j = 0; j < D.cols(); ++j) {
    const T* column = D.data() + j * D.rows() + r0;
#pragma omp simd
    for (Index i = 0; i < n; ++i) sum[i] += column[i];
  }
}

}  // namespace backprop
