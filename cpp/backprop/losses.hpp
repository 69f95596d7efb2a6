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
template <class T>
LossStats output_loss(Loss loss, Activation out_act, MatrixMap<T>& out,
                      const BatchTargets<T>& y, MatrixMap<T>* delta, T scale) {
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
        multiply_by_derivative(out_act, out, *delta);
      }
      break;
    }
    case Loss::cross_entropy: {
      for (Index j = 0; j < B; ++j) {
        auto z = out.col(j);
        const T* t = y.labels ? nullptr : y.dense + j * n_out;
        Index predicted, wanted;
        const T z_max = z.maxCoeff(&predicted);
        if (y.labels)
          wanted = y.labels[j];
        else
          ConstVectorMap<T>(t, n_out).maxCoeff(&wanted);
        const T log_sum = std::log((z.array() - z_max).exp().sum());  // lse(z) = z_max + log_sum
        double sample_loss = 0.0;
        if (y.labels) {
          sample_loss = double((z_max - z(wanted)) + log_sum);
        } else {  // Σ_k y_k (lse − z_k) term by term, never a difference of two large sums
          for (Index k = 0; k < n_out; ++k) sample_loss += double(t[k] * ((z_max - z(k)) + log_sum));
        }
        stats.loss_sum += weight(j) * sample_loss;
        stats.n_correct += predicted == wanted ? weight(j) : 0.0;
        z.array() = (z.array() - z_max).exp();
        z /= z.sum();  // softmax
        if (delta) {
          auto d = delta->col(j);
          if (y.labels) {
            d = z * scale;
            d(wanted) -= scale;
          } else {
            d = (z - ConstVectorMap<T>(t, n_out)) * scale;
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
