// The loops that run over a whole data set: training epochs, inference,
// evaluation and full-data gradients. Their buffers come from the model's
// Scratch (scratch.hpp), so a call allocates nothing once its batch size has
// been seen; inside a batch only Eigen's large products allocate (packing
// space).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "architecture.hpp"
#include "data_source.hpp"
#include "losses.hpp"
#include "optimizers.hpp"
#include "propagation.hpp"
#include "scratch.hpp"
#include "team.hpp"
#include "types.hpp"

namespace backprop {

// Targets for a whole data set, one row per sample: class labels or dense
// rows, and optionally a weight per sample (see losses.hpp).
template <class T>
struct TargetSource {
  const std::int64_t* labels = nullptr;  // n_samples class indices, or
  DataSource<T> dense;                    // n_samples × n_out rows
  const double* weights = nullptr;        // n_samples weights, or null (all 1)
};

// Chunk size for passes that need no shuffling: bounds the workspace.
constexpr Index kInferenceChunk = 1024;

namespace detail {

// Batch targets for samples index[0..B) (or first..first+B when index is null),
// gathered into `buf`.
template <class T>
BatchTargets<T> gather_targets(const TargetSource<T>& y, const std::int64_t* index, Index first, Index B,
                               TargetBuffers<T>& buf) {
  BatchTargets<T> batch;
  if (y.weights) {
    for (Index j = 0; j < B; ++j) buf.weights[j] = y.weights[index ? index[j] : first + j];
    batch.weights = buf.weights.data();
  }
  if (y.labels) {
    for (Index j = 0; j < B; ++j) buf.labels[j] = y.labels[index ? index[j] : first + j];
    batch.labels = buf.labels.data();
  } else {
    if (index)
      gather_rows(y.dense, index, B, buf.dense.data());
    else
      copy_rows(y.dense, first, B, buf.dense.data());
    batch.dense = buf.dense.data();
  }
  return batch;
}

template <class T>
TargetBuffers<T>& target_buffers(Scratch<T>& scratch, const TargetSource<T>& y, Index capacity, Index n_out) {
  return scratch.targets(y.labels != nullptr, y.weights != nullptr, capacity, n_out);
}

// The input of a batch, shared by `team`: rows index[0..B) of X (rows
// first..first+B when index is null). A C-contiguous X is mapped in place
// for sequential batches; otherwise each part copies its share of the rows
// into A^(0) of the workspace.
template <class T>
ConstMatrixMap<T> batch_input(const DataSource<T>& X, const std::int64_t* index, Index first, Index B,
                              Workspace<T>& ws, const Team& team) {
  if (!index && X.c_contiguous()) return ConstMatrixMap<T>(X.row(first), X.cols, B);
  T* dst = ws.activation_data(0);
  team.parallel([&](const Part& part) {
    const Index c0 = part.begin(B), count = part.count(B);
    if (index)
      gather_rows(X, index + c0, count, dst + c0 * X.cols);
    else
      copy_rows(X, first + c0, count, dst + c0 * X.cols);
  });
  return ConstMatrixMap<T>(dst, X.cols, B);
}

}  // namespace detail

// out (n_samples × n_out, C-order) ← A^(L) for every row of X. Like the two
// passes below, it polls `should_stop` between chunks and returns false,
// unfinished, when it says so.
template <class T>
bool predict(const Architecture& arch, const T* params, const DataSource<T>& X, T* out,
             const std::function<bool()>& should_stop, Scratch<T>& scratch) {
  const Index capacity = std::min(kInferenceChunk, X.rows), n_out = arch.n_outputs();
  Workspace<T>& ws = scratch.workspace(arch, capacity);
  const int team_cap = max_team_size();
  for (Index first = 0; first < X.rows; first += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, X.rows - first);
    run_team(double(B) * arch.macs_per_sample(), team_cap, [&](const Team& team) {
      forward_by_samples(arch, params, detail::batch_input(X, nullptr, first, B, ws, team), ws, false, team);
      MatrixMap<T>(out + first * n_out, n_out, B) = ws.activation(arch.n_layers(), B);
    });
    if (first + B < X.rows && should_stop()) return false;
  }
  return true;
}

// total ← loss and correct classifications summed over the data set.
template <class T>
bool evaluate(const Architecture& arch, const T* params, const DataSource<T>& X, const TargetSource<T>& y,
              const std::function<bool()>& should_stop, Scratch<T>& scratch, LossStats& total) {
  const Index capacity = std::min(kInferenceChunk, X.rows);
  Workspace<T>& ws = scratch.workspace(arch, capacity);
  TargetBuffers<T>& target_buf = detail::target_buffers(scratch, y, capacity, arch.n_outputs());
  const Index L = arch.n_layers();
  const int team_cap = max_team_size();
  total = LossStats{};
  for (Index first = 0; first < X.rows; first += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, X.rows - first);
    run_team(double(B) * arch.macs_per_sample(), team_cap, [&](const Team& team) {
      forward_by_samples(arch, params, detail::batch_input(X, nullptr, first, B, ws, team), ws, true, team);
    });
    MatrixMap<T> out = ws.activation(L, B);
    const auto batch = detail::gather_targets(y, nullptr, first, B, target_buf);
    const LossStats s = output_loss<T>(arch.loss(), arch.activation(L - 1), out, batch, nullptr, T(1));
    total.loss_sum += s.loss_sum;
    total.n_correct += s.n_correct;
    total.weight_sum += s.weight_sum;
    if (first + B < X.rows && should_stop()) return false;
  }
  return true;
}

// Z^(L) as the forward pass kept it, for an output activation whose
// derivative needs it; else null.
template <class T>
const T* output_input(const Architecture& arch, Workspace<T>& ws) {
  const Index L = arch.n_layers();
  return arch.keeps_input(L - 1) ? ws.input_data(L - 1) : nullptr;
}

// Σ_i w_i over samples rows[0..n) (0..n when rows is null); n when unweighted.
template <class T>
double total_weight(const TargetSource<T>& y, const std::int64_t* rows, Index n) {
  if (!y.weights) return double(n);
  double sum = 0.0;
  for (Index i = 0; i < n; ++i) sum += y.weights[rows ? rows[i] : i];
  return sum;
}

// 1 / Σ w, or 0 when no sample carries weight (the weighted mean of nothing
// contributes no gradient rather than 0/0).
inline double inverse_weight(double weight_sum) { return weight_sum > 0.0 ? 1.0 / weight_sum : 0.0; }

// The gradient of the loss over samples rows[0..n) of X (all rows when
// `rows` is null), in chunks of kInferenceChunk samples. With `mean`,
// grads ← ∂R/∂θ for R = Σ w_i L_i / Σ w_i, the (weighted) mean loss; without,
// grads ← Σ w_i ∂L_i/∂θ, the weighted sum (what a data-parallel rank
// contributes to its allreduce). Either way `sums` gets Σ w_i L_i,
// Σ w_i right_i (right_i as in LossStats::n_correct) and Σ w_i.
// A training pass: dropout draws the masks of step `dropout_step`, the k-th
// of the rows at position k.
template <class T>
bool gradient(const Architecture& arch, const T* params, const DataSource<T>& X, const TargetSource<T>& y,
              const std::int64_t* rows, Index n, bool mean, T* grads, const std::function<bool()>& should_stop,
              Scratch<T>& scratch, LossStats& sums, std::uint64_t dropout_step) {
  const Index capacity = std::min(kInferenceChunk, n);
  Workspace<T>& ws = scratch.workspace(arch, capacity);
  TargetBuffers<T>& target_buf = detail::target_buffers(scratch, y, capacity, arch.n_outputs());
  const double weight_sum = total_weight(y, rows, n);
  const T scale = mean ? T(inverse_weight(weight_sum)) : T(1);
  const Index L = arch.n_layers();
  const int team_cap = max_team_size();
  sums = LossStats{};
  sums.weight_sum = weight_sum;
  for (Index first = 0; first < n; first += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, n - first);
    const std::int64_t* index = rows ? rows + first : nullptr;
    const auto batch = detail::gather_targets(y, index, first, B, target_buf);
    run_team(3.0 * double(B) * arch.macs_per_sample(), team_cap, [&](const Team& team) {
      const ConstMatrixMap<T> input = detail::batch_input(X, index, first, B, ws, team);
      const DropoutPass dropout{dropout_step, first};
      forward_pass(arch, params, input, ws, true, team, &dropout);
      MatrixMap<T> out = ws.activation(L, B);
      MatrixMap<T> delta = ws.delta(L, B);
      const LossStats stats = output_loss(arch.loss(), arch.activation(L - 1), out, batch, &delta, scale,
                                          output_input(arch, ws));
      sums.loss_sum += stats.loss_sum;
      sums.n_correct += stats.n_correct;
      backward_pass(arch, params, input, ws, grads, first > 0, team, true);
    });
    if (first + B < n && should_stop()) return false;
  }
  return true;
}

enum class EpochStatus { completed, interrupted, nonfinite_loss, nonfinite_update };

struct EpochResult {
  EpochStatus status = EpochStatus::completed;
  Index batches_done = 0;   // optimizer steps taken
  Index samples_done = 0;   // samples in those steps
  // Σ over those batches of B × the batch's weighted mean loss (before its
  // step); with no weights simply Σ of the per-sample losses. Likewise for
  // n_correct with the weighted fraction of right classifications.
  double loss_sum = 0.0;
  double n_correct = 0.0;
  std::vector<double> weight_grad_norm_sums;  // per layer Σ_batches ‖∂R/∂W‖_F (if recorded)
  // With config.decay_per_batch_weight: Σ_batches ‖W‖² · B / Σ_batch w_j, the
  // weights taken before each step (scikit-learn's reported L2 term is
  // α/2 times this, over n_samples).
  double penalty_sum = 0.0;
};

// ‖W^(1)‖² + … + ‖W^(L)‖² (biases excluded).
template <class T>
double squared_weight_norm(const Architecture& arch, const T* params) {
  double sum = 0.0;
  for (Index l = 0; l < arch.n_layers(); ++l) sum += double(arch.W(params, l).squaredNorm());
  return sum;
}

// One epoch of mini-batch training over the samples in `order` (a permutation
// chosen by the caller). Stops early without the offending step when a loss,
// or the update it leads to, is not finite, and after a completed step when
// `should_stop` (polled between batches) says so. Parameters and optimizer
// state are updated in place, so they always hold the last completed step.
// Each step runs on a team of threads sized to its work (team.hpp).
template <class T>
EpochResult train_epoch(const Architecture& arch, T* params, const OptimizerConfig& config,
                        OptimizerState<T>& state, const DataSource<T>& X, const TargetSource<T>& y,
                        const std::int64_t* order, Index n, Index batch_size, bool record_grad_norms,
                        const std::function<bool()>& should_stop, Scratch<T>& scratch) {
  const Index capacity = std::min(batch_size, n);
  Workspace<T>& ws = scratch.workspace(arch, capacity);
  T* const grads = scratch.grads(arch.n_params());
  TargetBuffers<T>& target_buf = detail::target_buffers(scratch, y, capacity, arch.n_outputs());
  const StepBackup<T> backup = scratch.backup(state, arch.n_params());
  const int team_cap = max_team_size();
  T* const probes = scratch.probes(team_cap);
  const Index L = arch.n_layers();
  // The step is taken inside the backward pass (FusedStep) unless it needs
  // the whole gradient first: for a norm clip, or to record its norms.
  const bool fused_step = config.clip_norm == 0 && !record_grad_norms;

  EpochResult result;
  if (record_grad_norms) result.weight_grad_norm_sums.assign(L, 0.0);
  for (Index first = 0; first < n; first += batch_size) {
    const Index B = std::min(batch_size, n - first);
    const std::int64_t* index = order + first;
    prefetch_next_rows(X, index + B, std::min(batch_size, n - first - B));
    const auto batch = detail::gather_targets(y, index, 0, B, target_buf);
    double batch_weight = double(B);
    if (batch.weights) {
      batch_weight = 0.0;
      for (Index j = 0; j < B; ++j) batch_weight += batch.weights[j];
    }
    const T scale = T(inverse_weight(batch_weight));
    OptimizerConfig step_config = config;
    double penalty = 0.0;
    if (config.decay_per_batch_weight) {
      step_config.weight_decay = config.weight_decay * inverse_weight(batch_weight);
      penalty = squared_weight_norm(arch, params) * double(B) * inverse_weight(batch_weight);
    }
    LossStats stats;
    bool loss_finite = true, update_finite = true;
    run_team(3.0 * double(B) * arch.macs_per_sample(), team_cap, [&](const Team& team) {
      const ConstMatrixMap<T> input = detail::batch_input(X, index, 0, B, ws, team);
      // Dropout draws the masks of the step this batch leads to.
      const DropoutPass dropout{static_cast<std::uint64_t>(state.step + 1), 0};
      forward_pass(arch, params, input, ws, true, team, &dropout);
      MatrixMap<T> out = ws.activation(L, B);
      MatrixMap<T> delta = ws.delta(L, B);
      stats = output_loss(arch.loss(), arch.activation(L - 1), out, batch, &delta, scale, output_input(arch, ws));
      loss_finite = std::isfinite(stats.loss_sum);
      if (!loss_finite) return;
      if (fused_step) {
        const StepRule<T> rule(arch, step_config, state, backup, grads);
        const FusedStep<T> step{rule, params, probes};
        backward_pass(arch, params, input, ws, grads, false, team, true, &step);
        T total = 0;
        for (int i = 0; i < team.size(); ++i) total += probes[i];
        update_finite = rule.finish(params, grads, total);
        return;
      }
      backward_pass(arch, params, input, ws, grads, false, team, true);
      if (record_grad_norms)  // before the step overwrites the gradients
        for (Index l = 0; l < L; ++l) result.weight_grad_norm_sums[l] += double(arch.W(grads, l).norm());
      update_finite = optimizer_step(arch, step_config, state, backup, params, grads, team, probes);
    });
    if (!loss_finite) {
      result.status = EpochStatus::nonfinite_loss;
      return result;
    }
    if (!update_finite) {
      result.status = EpochStatus::nonfinite_update;
      return result;
    }
    result.batches_done += 1;
    result.penalty_sum += penalty;
    result.samples_done += B;
    if (batch.weights) {  // the batch's weighted means, counted B times
      const double share = double(B) * inverse_weight(batch_weight);
      result.loss_sum += stats.loss_sum * share;
      result.n_correct += stats.n_correct * share;
    } else {
      result.loss_sum += stats.loss_sum;
      result.n_correct += stats.n_correct;
    }
    if (first + B < n && should_stop()) {
      result.status = EpochStatus::interrupted;
      return result;
    }
  }
  return result;
}

}  // namespace backprop
