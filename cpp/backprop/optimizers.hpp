// Optimizer steps over the flat parameter buffer. Arithmetic follows
// PyTorch's torch.optim.SGD and torch.optim.Adam (single-tensor path), so
// results can be compared with it; weight decay is L2 on weights only.
//
//   SGD (Sutskever et al. 2013 momentum, in PyTorch's form):
//     g ← g + λw;  buf ← μ·buf + g;  w ← w − η·(nesterov ? g + μ·buf : buf)
//     (without momentum: w ← w − η·g)
//   Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization"):
//     g ← g + λw;  m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²
//     w ← w − (η / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
// The step counter t advances once per step of the whole network.
#pragma once

#include <cmath>
#include <cstdint>

#include "architecture.hpp"
#include "types.hpp"

namespace backprop {

enum class OptimizerKind { sgd, adam };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.01;
  double weight_decay = 0.0;
  double momentum = 0.0;  // SGD
  bool nesterov = false;  // SGD
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
};

// Optimizer state, laid out like the parameters. Owned by the caller.
template <class T>
struct OptimizerState {
  T* first = nullptr;       // SGD momentum buffer, or Adam's m (null for plain SGD)
  T* second = nullptr;      // Adam's v
  std::int64_t step = 0;    // steps taken so far
};

namespace detail {

template <class T>
void sgd_segment(T* w, const T* g_in, T* buf, Index n, const OptimizerConfig& c, T decay) {
  const T lr = T(c.lr), mu = T(c.momentum);
  if (!buf) {
#pragma omp simd
    for (Index i = 0; i < n; ++i) w[i] = w[i] + (-lr) * (g_in[i] + decay * w[i]);
  } else if (c.nesterov) {
#pragma omp simd
    for (Index i = 0; i < n; ++i) {
      const T g = g_in[i] + decay * w[i];
      buf[i] = buf[i] * mu + g;
      w[i] = w[i] + (-lr) * (g + mu * buf[i]);
    }
  } else {
#pragma omp simd
    for (Index i = 0; i < n; ++i) {
      const T g = g_in[i] + decay * w[i];
      buf[i] = buf[i] * mu + g;
      w[i] = w[i] + (-lr) * buf[i];
    }
  }
}

template <class T>
void adam_segment(T* w, const T* g_in, T* m, T* v, Index n, const OptimizerConfig& c, T decay,
                  std::int64_t t) {
  const double bias_correction1 = 1.0 - std::pow(c.beta1, double(t));
  const double bias_correction2 = 1.0 - std::pow(c.beta2, double(t));
  const T neg_step_size = T(-c.lr / bias_correction1);
  const T bias_correction2_sqrt = T(std::sqrt(bias_correction2));
  const T one_minus_beta1 = T(1.0 - c.beta1), beta2 = T(c.beta2), one_minus_beta2 = T(1.0 - c.beta2);
  const T eps = T(c.eps);
#pragma omp simd
  for (Index i = 0; i < n; ++i) {
    const T g = g_in[i] + decay * w[i];
    m[i] = m[i] + one_minus_beta1 * (g - m[i]);
    v[i] = v[i] * beta2 + one_minus_beta2 * g * g;
    const T denom = std::sqrt(v[i]) / bias_correction2_sqrt + eps;
    w[i] = w[i] + neg_step_size * (m[i] / denom);
  }
}

}  // namespace detail

// One optimizer step: params ← update(params, grads, state); state.step += 1.
template <class T>
void optimizer_step(const Architecture& arch, const OptimizerConfig& config, OptimizerState<T>& state,
                    T* params, const T* grads) {
  state.step += 1;
  const T decay = T(config.weight_decay);
  for (Index l = 0; l < arch.n_layers(); ++l) {
    // [W^(l), b^(l)] are adjacent; decay applies to W only.
    const Index w_at = arch.weight_offset(l), b_at = arch.bias_offset(l);
    const Index segments[2][2] = {{w_at, b_at - w_at}, {b_at, arch.n_out(l)}};
    for (int s = 0; s < 2; ++s) {
      const Index at = segments[s][0], n = segments[s][1];
      const T seg_decay = s == 0 ? decay : T(0);
      T* first = state.first ? state.first + at : nullptr;
      if (config.kind == OptimizerKind::sgd) {
        detail::sgd_segment(params + at, grads + at, first, n, config, seg_decay);
      } else {
        detail::adam_segment(params + at, grads + at, first, state.second + at, n, config, seg_decay,
                             state.step);
      }
    }
  }
}

}  // namespace backprop
