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
#include <cstring>

#include "architecture.hpp"
#include "team.hpp"
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
  // scikit-learn's conventions (its MLP estimators): the L2 gradient is
  // λ·w / Σ_batch w_j, i.e. the decay is divided by each batch's total weight
  // (its size when unweighted), and Adam adds eps to √v before the bias
  // correction, which is PyTorch's form with eps / √(1 − β2^t).
  bool decay_per_batch_weight = false;
  bool eps_before_bias_correction = false;
};

// Optimizer state, laid out like the parameters. Owned by the caller.
template <class T>
struct OptimizerState {
  T* first = nullptr;       // SGD momentum buffer, or Adam's m (null for plain SGD)
  T* second = nullptr;      // Adam's v
  std::int64_t step = 0;    // steps taken so far
};

// Where a step saves the values it overwrites, so that a step whose result is
// not finite can be undone exactly. `params` go into the gradient buffer
// (each gradient is dead once read), the state into these buffers.
template <class T>
struct StepBackup {
  T* first = nullptr;   // n_params, needed when state.first is set
  T* second = nullptr;  // n_params, needed when state.second is set
};

namespace detail {

// Each kernel updates n entries in place, leaves the old w in g, the old
// state in the backups, and returns a probe that is 0 when every new value is
// finite and NaN otherwise (x·0 is NaN exactly for inf and NaN x).
template <class T>
T sgd_segment(T* w, T* g_io, T* buf, T* buf_old, Index n, const OptimizerConfig& c, T decay) {
  const T lr = T(c.lr), mu = T(c.momentum);
  T probe = 0;
  if (!buf) {
#pragma omp simd reduction(+ : probe)
    for (Index i = 0; i < n; ++i) {
      const T w_old = w[i];
      const T w_new = w_old + (-lr) * (g_io[i] + decay * w_old);
      w[i] = w_new;
      g_io[i] = w_old;
      probe += w_new * T(0);
    }
  } else {
    const bool nesterov = c.nesterov;
#pragma omp simd reduction(+ : probe)
    for (Index i = 0; i < n; ++i) {
      const T w_old = w[i], b_old = buf[i];
      const T g = g_io[i] + decay * w_old;
      const T b = b_old * mu + g;
      const T w_new = w_old + (-lr) * (nesterov ? g + mu * b : b);
      w[i] = w_new;
      buf[i] = b;
      g_io[i] = w_old;
      buf_old[i] = b_old;
      probe += w_new * T(0) + b * T(0);
    }
  }
  return probe;
}

template <class T>
T adam_segment(T* w, T* g_io, T* m, T* v, T* m_old, T* v_old, Index n, const OptimizerConfig& c, T decay,
               std::int64_t t) {
  const double bias_correction1 = 1.0 - std::pow(c.beta1, double(t));
  const double bias_correction2 = 1.0 - std::pow(c.beta2, double(t));
  const T neg_step_size = T(-c.lr / bias_correction1);
  const T bias_correction2_sqrt = T(std::sqrt(bias_correction2));
  const T one_minus_beta1 = T(1.0 - c.beta1), beta2 = T(c.beta2), one_minus_beta2 = T(1.0 - c.beta2);
  const T eps = T(c.eps_before_bias_correction ? c.eps / std::sqrt(bias_correction2) : c.eps);
  T probe = 0;
#pragma omp simd reduction(+ : probe)
  for (Index i = 0; i < n; ++i) {
    const T w_old = w[i], m_prev = m[i], v_prev = v[i];
    const T g = g_io[i] + decay * w_old;
    const T m_new = m_prev + one_minus_beta1 * (g - m_prev);
    const T v_new = v_prev * beta2 + one_minus_beta2 * g * g;
    const T denom = std::sqrt(v_new) / bias_correction2_sqrt + eps;
    const T w_new = w_old + neg_step_size * (m_new / denom);
    w[i] = w_new;
    m[i] = m_new;
    v[i] = v_new;
    g_io[i] = w_old;
    m_old[i] = m_prev;
    v_old[i] = v_prev;
    probe += w_new * T(0) + m_new * T(0) + v_new * T(0);
  }
  return probe;
}

}  // namespace detail

// One optimizer step, shared by `team`: params ← update(params, grads, state)
// and state.step += 1. Each part updates the rows of W and entries of b
// whose gradients the same part of the backward pass computed. If any new
// parameter or state value is not finite the step is undone exactly and
// false is returned. `grads` is consumed (it ends up holding the old
// parameters). `probes` has one slot per part of the team.
template <class T>
bool optimizer_step(const Architecture& arch, const OptimizerConfig& config, OptimizerState<T>& state,
                    const StepBackup<T>& backup, T* params, T* grads, const Team& team, T* probes) {
  const std::int64_t t = state.step + 1;
  const T decay = T(config.weight_decay);
  team.parallel([&](const Part& part) {
    T probe = 0;
    for (Index l = 0; l < arch.n_layers(); ++l) {
      const Index n_out = arch.n_out(l), r0 = part.begin(n_out), rows = part.count(n_out);
      // This part's rows of W^(l) (with weight decay), then its entries of b^(l).
      const Index segments[2][2] = {{arch.weight_offset(l) + r0 * arch.n_in(l), rows * arch.n_in(l)},
                                    {arch.bias_offset(l) + r0, rows}};
      for (int s = 0; s < 2; ++s) {
        const Index at = segments[s][0], n = segments[s][1];
        const T seg_decay = s == 0 ? decay : T(0);
        if (config.kind == OptimizerKind::sgd) {
          T* buf = state.first ? state.first + at : nullptr;
          T* buf_old = state.first ? backup.first + at : nullptr;
          probe += detail::sgd_segment(params + at, grads + at, buf, buf_old, n, config, seg_decay);
        } else {
          probe += detail::adam_segment(params + at, grads + at, state.first + at, state.second + at,
                                        backup.first + at, backup.second + at, n, config, seg_decay, t);
        }
      }
    }
    probes[part.id] = probe;
  });
  T total = 0;
  for (int i = 0; i < team.size(); ++i) total += probes[i];
  const bool finite = total == T(0);
  if (finite) {
    state.step = t;
  } else {
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(arch.n_params());
    std::memcpy(params, grads, bytes);
    if (state.first) std::memcpy(state.first, backup.first, bytes);
    if (state.second) std::memcpy(state.second, backup.second, bytes);
  }
  return finite;
}

}  // namespace backprop
