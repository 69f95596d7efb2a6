// LayerNorm over a hidden layer's units, per sample (torch.nn.LayerNorm(n)).
//
// For one sample's z (n units): μ = mean(z), s² = mean((z − μ)²) (biased),
// ẑ = (z − μ)/√(s² + ε), u = γ ⊙ ẑ + β, ε = 1e-5. With g = ∂L/∂u:
//   ∂L/∂γ = Σ_batch g ⊙ ẑ,  ∂L/∂β = Σ_batch g,
//   ∂L/∂z = (γ⊙g − mean(γ⊙g) − ẑ ⊙ mean(γ⊙g ⊙ ẑ)) / √(s² + ε),
// the means over the sample's units. Samples are columns (types.hpp); the
// forward and input-gradient kernels take whole columns, the parameter
// gradient takes rows (units), each summed over the batch in column order,
// so no result depends on how a team splits the work.
#pragma once

#include <cmath>

#include "types.hpp"

namespace backprop {

constexpr double kLayerNormEps = 1e-5;

// Columns [c0, c0 + count) of Z (n × B, contiguous): Z ← u. ẑ goes into z_hat
// and 1/√(s² + ε) into inv_std (per column) when they are not null.
template <class T>
void layer_norm_forward(T* Z, const T* gamma, const T* beta, T* z_hat, T* inv_std, Index n, Index c0,
                        Index count) {
  const T eps = T(kLayerNormEps), inv_n = T(1) / T(n);
  for (Index j = c0; j < c0 + count; ++j) {
    T* z = Z + j * n;
    T sum = 0;
    for (Index i = 0; i < n; ++i) sum += z[i];
    const T mu = sum * inv_n;
    T squares = 0;
    for (Index i = 0; i < n; ++i) squares += (z[i] - mu) * (z[i] - mu);
    const T inv = T(1) / std::sqrt(squares * inv_n + eps);
    if (inv_std) inv_std[j] = inv;
    T* zh = z_hat ? z_hat + j * n : nullptr;
#pragma omp simd
    for (Index i = 0; i < n; ++i) {
      const T normalised = (z[i] - mu) * inv;
      if (zh) zh[i] = normalised;
      z[i] = normalised * gamma[i] + beta[i];
    }
  }
}

// Rows [r0, r0 + rows) of the parameter gradients from G = ∂L/∂u (n × B):
// dγ ← (+)= Σ_j G(:, j) ⊙ ẑ(:, j), dβ ← (+)= Σ_j G(:, j).
template <class T>
void layer_norm_parameter_gradients(const T* G, const T* z_hat, T* d_gamma, T* d_beta, Index n, Index B,
                                    bool accumulate, Index r0, Index rows) {
  if (!accumulate)
    for (Index i = r0; i < r0 + rows; ++i) d_gamma[i] = d_beta[i] = T(0);
  for (Index j = 0; j < B; ++j) {
    const T* g = G + j * n;
    const T* zh = z_hat + j * n;
#pragma omp simd
    for (Index i = r0; i < r0 + rows; ++i) {
      d_gamma[i] += g[i] * zh[i];
      d_beta[i] += g[i];
    }
  }
}

// Columns [c0, c0 + count): G (n × B) ← ∂L/∂z from G = ∂L/∂u.
template <class T>
void layer_norm_input_gradient(T* G, const T* z_hat, const T* inv_std, const T* gamma, Index n, Index c0,
                               Index count) {
  const T inv_n = T(1) / T(n);
  for (Index j = c0; j < c0 + count; ++j) {
    T* g = G + j * n;
    const T* zh = z_hat + j * n;
    T sum = 0, sum_hat = 0;
    for (Index i = 0; i < n; ++i) {
      const T gg = gamma[i] * g[i];
      sum += gg;
      sum_hat += gg * zh[i];
    }
    const T mean = sum * inv_n, mean_hat = sum_hat * inv_n, inv = inv_std[j];
#pragma omp simd
    for (Index i = 0; i < n; ++i) g[i] = (gamma[i] * g[i] - mean - zh[i] * mean_hat) * inv;
  }
}

}  // namespace backprop
