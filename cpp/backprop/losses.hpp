// Losses, summed over output units, and the output delta δ^(L).
//
//   mse:                  L = ½‖a − y‖²,  δ = (a − y) ⊙ σ'(z)
//   cross_entropy:        L = −Σ_k y_k log softmax(z)_k = Σ_k y_k (lse(z) − z_k),
//                         δ = softmax(z) − y   (fused; output must be softmax)
//   binary_cross_entropy: L = Σ_k max(z_k, 0) − z_k y_k + log1p(exp(−|z_k|)),
//                         δ = sigmoid(z) − y   (fused; output must be sigmoid)
//   poisson:              L = Σ_k xlogy(y_k, y_k) − y_k z_k − y_k + exp(z_k), which is
//                         half the Poisson deviance Σ_k y_k log(y_k / a_k) − y_k + a_k
//                         with a = exp(z) (scikit-learn's poisson_loss; 0·log 0 = 0),
//                         δ = exp(z) − y   (fused; output must be exp, the log link)
// The fused forms work on the logits z, so no log(0) or overflowing exp occurs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "activations.hpp"
#include "types.hpp"

namespace backprop {

enum class Loss { mse, cross_entropy, binary_cross_entropy, poisson };

inline Loss loss_from_name(const std::string& name) {
  if (name == "mse") return Loss::mse;
  if (name == "cross_entropy") return Loss::cross_entropy;
  if (name == "binary_cross_entropy") return Loss::binary_cross_entropy;
  if (name == "poisson") return Loss::poisson;
  throw std::invalid_argument("unknown loss '" + name + "'");
}

// True when the loss reads the output layer's logits Z^(L) rather than A^(L).
inline bool loss_reads_logits(Loss loss) { return loss != Loss::mse; }

// The targets of one batch, samples as columns. Exactly one of labels and
// dense is set; weights is optional (null: every sample weighs 1).
template <class T>
struct BatchTargets {
  const std::int64_t* labels = nullptr;  // B class indices (cross_entropy)
  const T* dense = nullptr;              // n_out × B col-major target rows
  const double* weights = nullptr;       // B sample weights w_j >= 0
};

// Sums over a batch, each sample j counted with its weight w_j.
struct LossStats {
  double loss_sum = 0.0;    // Σ_j w_j L_j
  double n_correct = 0.0;   // Σ_j w_j · (classifications right: argmax, or units right at 0.5)
  double weight_sum = 0.0;  // Σ_j w_j (B when unweighted)
};

// The output stage of one batch. On entry `out` (n_out × B) holds Z^(L) when
// loss_reads_logits(loss), else A^(L). On exit it holds A^(L). When `delta` is
// given, column j receives δ_j^(L) · scale · w_j: with scale = 1/Σ_j w_j this is
// the delta of the weighted mean loss R = Σ_j w_j L_j / Σ_j w_j (1/B unweighted).
// `input` (n_out × B) holds Z^(L) for an output activation that needs_input.
template <class T>
LossStats output_loss(Loss loss, Activation out_act, MatrixMap<T>& out,
                      const BatchTargets<T>& y, MatrixMap<T>* delta, T scale, const T* input = nullptr) {
  LossStats stats;
  const Index n_out = out.rows(), B = out.cols();
  auto weight = [&](Index j) { return y.weights ? y.weights[j] : 1.0; };
  switch (loss) {
    case Loss::mse: {
      ConstMatrixMap<T> Y(y.dense, n_out, B);
      for (Index j = 0; j < B; ++j)
        stats.loss_sum += weight(j) * (0.5 * double((out.col(j) - Y.col(j)).squaredNorm()));
      if (delta) {
        delta->noalias() = (out - Y) * scale;
        if (input)
          multiply_by_derivative(out_act, out, ConstMatrixMap<T>(input, n_out, B), *delta);
        else
          multiply_by_derivative(out_act, out, out, *delta);
      }
      break;
    }
    case Loss::cross_entropy: {
      // Columns in chunks: shift each by its maximum (so exp never overflows)
      // and score it, then one vectorised exp over the whole chunk (a column
      // of a few outputs is too short for SIMD), then normalise each column.
      // Plain loops over a column: with ten outputs, an Eigen expression per
      // column costs more than its arithmetic (W3 spent a sixth of a step here).
      constexpr Index kChunk = 64;
      Index wanted[kChunk];
      double shifted_loss[kChunk], target_sum[kChunk];  // Σ_k y_k (z_max − z_k), Σ_k y_k
      T sums[kChunk], log_sums[kChunk];
      using Run = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
      for (Index j0 = 0; j0 < B; j0 += kChunk) {
        const Index cols = std::min(kChunk, B - j0);
        T* const block = out.data() + j0 * n_out;
        for (Index c = 0; c < cols; ++c) {
          const Index j = j0 + c;
          T* const z = block + c * n_out;
          Index predicted = 0;  // the first largest, as argmax
          T z_max = z[0];
          for (Index k = 1; k < n_out; ++k)
            if (z[k] > z_max) {
              z_max = z[k];
              predicted = k;
            }
          for (Index k = 0; k < n_out; ++k) z[k] -= z_max;  // z_k − z_max ≤ 0
          if (y.labels) {
            wanted[c] = y.labels[j];
            shifted_loss[c] = double(-z[wanted[c]]);
            target_sum[c] = 1.0;
          } else {  // Σ_k y_k (lse − z_k) as Σ_k y_k (z_max − z_k) + Σ_k y_k · log_sum: no cancellation
            const T* t = y.dense + j * n_out;
            ConstVectorMap<T>(t, n_out).maxCoeff(&wanted[c]);
            shifted_loss[c] = target_sum[c] = 0.0;
            for (Index k = 0; k < n_out; ++k) {
              shifted_loss[c] += double(t[k] * -z[k]);
              target_sum[c] += double(t[k]);
            }
          }
          stats.n_correct += predicted == wanted[c] ? weight(j) : 0.0;
        }
        Run(block, n_out * cols) = Run(block, n_out * cols).exp();
        for (Index c = 0; c < cols; ++c) {
          const T* z = block + c * n_out;
          T sum = 0;
          for (Index k = 0; k < n_out; ++k) sum += z[k];
          sums[c] = sum;
        }
        Run(log_sums, cols) = Run(sums, cols).log();  // lse(z) = z_max + log_sum
        for (Index c = 0; c < cols; ++c) {
          const Index j = j0 + c;
          T* const z = block + c * n_out;
          const T log_sum = log_sums[c], sum = sums[c];
          stats.loss_sum += weight(j) * (y.labels ? double(T(shifted_loss[c]) + log_sum)
                                                  : shifted_loss[c] + target_sum[c] * double(log_sum));
          for (Index k = 0; k < n_out; ++k) z[k] /= sum;  // softmax
          if (delta) {
            T* const d = delta->data() + j * n_out;
            if (y.labels) {
              for (Index k = 0; k < n_out; ++k) d[k] = z[k] * scale;
              d[wanted[c]] -= scale;
            } else {
              const T* t = y.dense + j * n_out;
              for (Index k = 0; k < n_out; ++k) d[k] = (z[k] - t[k]) * scale;
            }
          }
        }
      }
      break;
    }
    case Loss::binary_cross_entropy: {
      ConstMatrixMap<T> Y(y.dense, n_out, B);
      for (Index j = 0; j < B; ++j) {
        double sample_loss = 0.0, units_right = 0.0;
        for (Index k = 0; k < n_out; ++k) {
          const T z = out(k, j), t = Y(k, j);
          sample_loss += double(std::max(z, T(0)) - z * t + std::log1p(std::exp(-std::abs(z))));
          const T a = T(1) / (T(1) + std::exp(-z));
          units_right += ((a > T(0.5)) == (t > T(0.5))) ? 1.0 : 0.0;  // as Network.predict
          out(k, j) = a;
          if (delta) (*delta)(k, j) = (a - t) * scale;
        }
        stats.loss_sum += weight(j) * sample_loss;
        stats.n_correct += weight(j) * units_right;
      }
      break;
    }
    case Loss::poisson: {
      ConstMatrixMap<T> Y(y.dense, n_out, B);
      for (Index j = 0; j < B; ++j) {
        double sample_loss = 0.0;
        for (Index k = 0; k < n_out; ++k) {
          const T z = out(k, j), t = Y(k, j), a = std::exp(z);
          const T y_log_ratio = t > T(0) ? t * (std::log(t) - z) : T(0);  // xlogy(y, y / a)
          sample_loss += double(y_log_ratio - t + a);
          out(k, j) = a;
          if (delta) (*delta)(k, j) = (a - t) * scale;
        }
        stats.loss_sum += weight(j) * sample_loss;
      }
      break;
    }
  }
  if (y.weights) {
    for (Index j = 0; j < B; ++j) stats.weight_sum += y.weights[j];
    if (delta)
      for (Index j = 0; j < B; ++j) delta->col(j) *= T(y.weights[j]);
  } else {
    stats.weight_sum = double(B);
  }
  return stats;
}

}  // namespace backprop
