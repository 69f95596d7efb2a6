// Optimizer steps over the flat parameter buffer. Arithmetic follows
// PyTorch's torch.optim.SGD, torch.optim.Adam and torch.optim.AdamW
// (single-tensor path), so results can be compared with it; weight decay is
// on weights only (not biases, not LayerNorm's γ and β).
//
//   Clipping first, as torch.nn.utils.clip_grad_norm_ then clip_grad_value_:
//     g ← g · min(1, c / (‖g‖₂ + 1e-6)), the norm over every parameter;
//     g ← clamp(g, −v, v)
//
//   SGD (Sutskever et al. 2013 momentum, in PyTorch's form):
//     g ← g + λw;  buf ← μ·buf + g;  w ← w − η·(nesterov ? g + μ·buf : buf)
//     (without momentum: w ← w − η·g)
//   Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization"):
//     g ← g + λw;  m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²
//     w ← w − (η / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
//   AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"):
//     w ← w·(1 − ηλ), then the Adam step with g free of λ
// The step counter t advances once per step of the whole network.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "architecture.hpp"
#include "team.hpp"
#include "types.hpp"

namespace backprop {

enum class OptimizerKind { sgd, adam, adamw };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.01;
  double weight_decay = 0.0;
  double momentum = 0.0;  // SGD
  bool nesterov = false;  // SGD
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam, AdamW
  double clip_norm = 0.0;   // c of the global-norm clip; 0: none
  double clip_value = 0.0;  // v of the elementwise clamp; 0: none
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

// g ← clamp(g · scale, lo, hi), the clipped gradient (scale 1 and ±inf: g).
// NaN passes through, so a step from a non-finite gradient is still refused.
template <class T>
struct Clip {
  T scale = 1, lo = -std::numeric_limits<T>::infinity(), hi = std::numeric_limits<T>::infinity();
  T operator()(T g) const {
    const T x = g * scale;
    return x < lo ? lo : (x > hi ? hi : x);
  }
};

// Each kernel updates n entries in place, leaves the old w in g, the old
// state in the backups, and returns a probe that is 0 when every new value is
// finite and NaN otherwise (x·0 is NaN exactly for inf and NaN x).
template <class T>
T sgd_segment(T* w, T* g_io, T* buf, T* buf_old, Index n, const OptimizerConfig& c, T decay, const Clip<T>& clip) {
  const T lr = T(c.lr), mu = T(c.momentum);
  T probe = 0;
  if (!buf) {
#pragma omp simd reduction(+ : probe)
    for (Index i = 0; i < n; ++i) {
      const T w_old = w[i];
      const T w_new = w_old + (-lr) * (clip(g_io[i]) + decay * w_old);
      w[i] = w_new;
      g_io[i] = w_old;
      probe += w_new * T(0);
    }
  } else {
    const bool nesterov = c.nesterov;
#pragma omp simd reduction(+ : probe)
    for (Index i = 0; i < n; ++i) {
      const T w_old = w[i], b_old = buf[i];
      const T g = clip(g_io[i]) + decay * w_old;
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

// `keep` is AdamW's decoupled decay factor 1 − ηλ (1 for Adam and for
// parameters without decay).
template <class T>
T adam_segment(T* w, T* g_io, T* m, T* v, T* m_old, T* v_old, Index n, const OptimizerConfig& c, T decay,
               T keep, std::int64_t t, const Clip<T>& clip) {
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
    const T g = clip(g_io[i]) + decay * w_old;
    const T m_new = m_prev + one_minus_beta1 * (g - m_prev);
    const T v_new = v_prev * beta2 + one_minus_beta2 * g * g;
    const T denom = std::sqrt(v_new) / bias_correction2_sqrt + eps;
    const T w_new = w_old * keep + neg_step_size * (m_new / denom);
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

// The clipping of this step's gradient g (n entries). The norm is summed in
// one fixed order, so the step does not depend on how a team splits it.
template <class T>
Clip<T> gradient_clip(const OptimizerConfig& c, const T* g, Index n) {
  Clip<T> clip;
  if (c.clip_norm > 0) {
    double squares = 0.0;
    for (Index i = 0; i < n; ++i) squares += double(g[i]) * double(g[i]);
    const double coefficient = c.clip_norm / (std::sqrt(squares) + 1e-6);
    clip.scale = coefficient < 1.0 ? T(coefficient) : std::isnan(coefficient) ? T(coefficient) : T(1);
  }
  if (c.clip_value > 0) {
    clip.lo = T(-c.clip_value);
    clip.hi = T(c.clip_value);
  }
  return clip;
}

}  // namespace detail

// One step's update of the parameters, applied a block of rows at a time:
// the whole network at once by optimizer_step, or, inside a training step,
// each layer as soon as its gradient is complete and no part of the step
// reads its weights any more (backward_pass). Either way every entry gets
// the same arithmetic, so the result does not depend on the order.
template <class T>
class StepRule {
 public:
  // For step state.step + 1 of `config` on gradients `grads` (read now only
  // for a norm clip, which needs the whole gradient before any update).
  StepRule(const Architecture& arch, const OptimizerConfig& config, OptimizerState<T>& state,
           const StepBackup<T>& backup, const T* grads)
      : arch_(arch),
        config_(config),
        state_(state),
        backup_(backup),
        clip_(detail::gradient_clip(config, grads, arch.n_params())),
        t_(state.step + 1),
        decay_(config.kind == OptimizerKind::adamw ? T(0) : T(config.weight_decay)),
        keep_(config.kind == OptimizerKind::adamw ? T(1.0 - config.lr * config.weight_decay) : T(1)) {}

  // Rows [r0, r0 + rows) of layer l: those of W^(l) (with weight decay), then
  // its entries of b^(l) (and γ^(l), β^(l)). Leaves the old parameters in
  // `grads`; returns the probe (0 when every new value is finite).
  T update_rows(T* params, T* grads, Index l, Index r0, Index rows) const {
    const Index n_out = arch_.n_out(l);
    const Index gamma_at = arch_.has_norm(l) ? arch_.gamma_offset(l) : 0;
    const Index segments[4][2] = {{arch_.weight_offset(l) + r0 * arch_.n_in(l), rows * arch_.n_in(l)},
                                  {arch_.bias_offset(l) + r0, rows},
                                  {gamma_at + r0, rows},
                                  {gamma_at + n_out + r0, rows}};
    T probe = 0;
    for (int s = 0; s < (arch_.has_norm(l) ? 4 : 2); ++s) {
      const Index at = segments[s][0], n = segments[s][1];
      const T seg_decay = s == 0 ? decay_ : T(0), seg_keep = s == 0 ? keep_ : T(1);
      if (config_.kind == OptimizerKind::sgd) {
        T* buf = state_.first ? state_.first + at : nullptr;
        T* buf_old = state_.first ? backup_.first + at : nullptr;
        probe += detail::sgd_segment(params + at, grads + at, buf, buf_old, n, config_, seg_decay, clip_);
      } else {
        probe += detail::adam_segment(params + at, grads + at, state_.first + at, state_.second + at,
                                      backup_.first + at, backup_.second + at, n, config_, seg_decay, seg_keep,
                                      t_, clip_);
      }
    }
    return probe;
  }

  // Ends the step once every row has been updated, given the sum of the
  // probes: counts it, or, if anything came out not finite, undoes it exactly
  // and returns false.
  bool finish(T* params, const T* grads, T probe_total) const {
    if (probe_total == T(0)) {
      state_.step = t_;
      return true;
    }
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(arch_.n_params());
    std::memcpy(params, grads, bytes);
    if (state_.first) std::memcpy(state_.first, backup_.first, bytes);
    if (state_.second) std::memcpy(state_.second, backup_.second, bytes);
    return false;
  }

 private:
  const Architecture& arch_;
  const OptimizerConfig& config_;
  OptimizerState<T>& state_;
  const StepBackup<T>& backup_;
  detail::Clip<T> clip_;
  std::int64_t t_;
  T decay_, keep_;
};

// One optimizer step, shared by `team`: params ← update(params, grads, state)
// and state.step += 1. Each part updates the rows of W and entries of b
// whose gradients the same part of the backward pass computed. If any new
// parameter or state value is not finite the step is undone exactly and
// false is returned. `grads` is consumed (it ends up holding the old
// parameters). `probes` has one slot per part of the team.
template <class T>
bool optimizer_step(const Architecture& arch, const OptimizerConfig& config, OptimizerState<T>& state,
                    const StepBackup<T>& backup, T* params, T* grads, const Team& team, T* probes) {
  const StepRule<T> rule(arch, config, state, backup, grads);
  team.parallel([&](const Part& part) {
    T probe = 0;
    for (Index l = 0; l < arch.n_layers(); ++l)
      probe += rule.update_rows(params, grads, l, part.begin(arch.n_out(l)), part.count(arch.n_out(l)));
    probes[part.id] = probe;
  });
  T total = 0;
  for (int i = 0; i < team.size(); ++i) total += probes[i];
  return rule.finish(params, grads, total);
}

}  // namespace backprop
