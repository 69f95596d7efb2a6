// The loops that run over a whole data set: training epochs, inference,
// evaluation and full-data gradients. Their buffers are allocated once per
// call; inside a batch only Eigen's large products allocate (packing space).
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
#include "team.hpp"
#include "types.hpp"

namespace backprop {

// Targets for a whole data set, one row per sample: class labels or dense rows.
template <class T>
struct TargetSource {
  const std::int64_t* labels = nullptr;  // n_samples class indices, or
  DataSource<T> dense;                    // n_samples × n_out rows
};

// Chunk size for passes that need no shuffling: bounds the workspace.
constexpr Index kInferenceChunk = 1024;

namespace detail {

// Batch targets for samples index[0..B) (or first..first+B when index is null),
// gathered into the caller's buffers.
template <class T>
BatchTargets<T> gather_targets(const TargetSource<T>& y, const std::int64_t* index, Index first, Index B,
                               std::vector<std::int64_t>& label_buf, Buffer<T>& dense_buf) {
  BatchTargets<T> batch;
  if (y.labels) {
    for (Index j = 0; j < B; ++j) label_buf[j] = y.labels[index ? index[j] : first + j];
    batch.labels = label_buf.data();
  } else {
    if (index)
      gather_rows(y.dense, index, B, dense_buf.data());
    else
      copy_rows(y.dense, first, B, dense_buf.data());
    batch.dense = dense_buf.data();
  }
  return batch;
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
             const std::function<bool()>& should_stop) {
  const Index capacity = std::min(kInferenceChunk, X.rows), n_out = arch.n_outputs();
  Workspace<T> ws(arch, capacity);
  const int team_cap = max_team_size();
  for (Index first = 0; first < X.rows; first += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, X.rows - first);
    run_team(double(B) * arch.n_weights(), team_cap, [&](const Team& team) {
      forward_pass(arch, params, detail::batch_input(X, nullptr, first, B, ws, team), ws, false, team);
      MatrixMap<T>(out + first * n_out, n_out, B) = ws.activation(arch.n_layers(), B);
    });
    if (first + B < X.rows && should_stop()) return false;
  }
  return true;
}

// total ← loss and correct classifications summed over the data set.
template <class T>
bool evaluate(const Architecture& arch, const T* params, const DataSource<T>& X, const TargetSource<T>& y,
              const std::function<bool()>& should_stop, LossStats& total) {
  Workspace<T> ws(arch, std::min(kInferenceChunk, X.rows));
  std::vector<std::int64_t> label_buf(ws.capacity());
  Buffer<T> dense_buf(y.labels ? 0 : ws.capacity() * arch.n_outputs());
  const Index L = arch.n_layers();
  const int team_cap = max_team_size();
  total = LossStats{};
  for (Index first = 0; first < X.rows; first += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, X.rows - first);
    run_team(double(B) * arch.n_weights(), team_cap, [&](const Team& team) {
      forward_pass(arch, params, detail::batch_input(X, nullptr, first, B, ws, team), ws, true, team);
    });
    MatrixMap<T> out = ws.activation(L, B);
    const auto batch = detail::gather_targets(y, nullptr, first, B, label_buf, dense_buf);
    const LossStats s = output_loss<T>(arch.loss(), arch.activation(L - 1), out, batch, nullptr, T(1));
    total.loss_sum += s.loss_sum;
    total.n_correct += s.n_correct;
    if (first + B < X.rows && should_stop()) return false;
  }
  return true;
}

// grads ← ∂R/∂θ and loss ← R, with R the mean loss over all of X.
template <class T>
bool full_gradients(const Architecture& arch, const T* params, const DataSource<T>& X, const TargetSource<T>& y,
                    T* grads, const std::function<bool()>& should_stop, double& loss) {
  Workspace<T> ws(arch, std::min(kInferenceChunk, X.rows));
  std::vector<std::int64_t> label_buf(ws.capacity());
  Buffer<T> dense_buf(y.labels ? 0 : ws.capacity() * arch.n_outputs());
  const T scale = T(1.0 / double(X.rows));
  const Index L = arch.n_layers();
  const int team_cap = max_team_size();
  double loss_sum = 0.0;
  for (Index first = 0; first < X.rows; first += kInferenceChunk) {
    const Index B = std::min(kInferenceChunk, X.rows - first);
    const auto batch = detail::gather_targets(y, nullptr, first, B, label_buf, dense_buf);
    run_team(3.0 * double(B) * arch.n_weights(), team_cap, [&](const Team& team) {
      const ConstMatrixMap<T> input = detail::batch_input(X, nullptr, first, B, ws, team);
      forward_pass(arch, params, input, ws, true, team);
      MatrixMap<T> out = ws.activation(L, B);
      MatrixMap<T> delta = ws.delta(L, B);
      loss_sum += output_loss(arch.loss(), arch.activation(L - 1), out, batch, &delta, scale).loss_sum;
      backward_pass(arch, params, input, ws, grads, first > 0, team);
    });
    if (first + B < X.rows && should_stop()) return false;
  }
  loss = loss_sum / double(X.rows);
  return true;
}

enum class EpochStatus { completed, interrupted, nonfinite_loss, nonfinite_update };

struct EpochResult {
  EpochStatus status = EpochStatus::completed;
  Index batches_done = 0;   // optimizer steps taken
  Index samples_done = 0;   // samples in those steps
  double loss_sum = 0.0;    // Σ per-sample loss over those samples (before each step)
  double n_correct = 0.0;
  std::vector<double> weight_grad_norm_sums;  // per layer Σ_batches ‖∂R/∂W‖_F (if recorded)
};

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
                        const std::function<bool()>& should_stop) {
  const Index capacity = std::min(batch_size, n);
  Workspace<T> ws(arch, capacity);
  Buffer<T> grads(static_cast<std::size_t>(arch.n_params()));
  std::vector<std::int64_t> label_buf(capacity);
  Buffer<T> dense_buf(y.labels ? 0 : capacity * arch.n_outputs());
  Buffer<T> backup_first(state.first ? arch.n_params() : 0), backup_second(state.second ? arch.n_params() : 0);
  const StepBackup<T> backup{backup_first.data(), backup_second.data()};
  const int team_cap = max_team_size();
  std::vector<T> probes(static_cast<std::size_t>(team_cap));
  const Index L = arch.n_layers();

  EpochResult result;
  if (record_grad_norms) result.weight_grad_norm_sums.assign(L, 0.0);
  for (Index first = 0; first < n; first += batch_size) {
    const Index B = std::min(batch_size, n - first);
    const std::int64_t* index = order + first;
    const auto batch = detail::gather_targets(y, index, 0, B, label_buf, dense_buf);
    LossStats stats;
    bool loss_finite = true, update_finite = true;
    run_team(3.0 * double(B) * arch.n_weights(), team_cap, [&](const Team& team) {
      const ConstMatrixMap<T> input = detail::batch_input(X, index, 0, B, ws, team);
      forward_pass(arch, params, input, ws, true, team);
      MatrixMap<T> out = ws.activation(L, B);
      MatrixMap<T> delta = ws.delta(L, B);
      stats = output_loss(arch.loss(), arch.activation(L - 1), out, batch, &delta, T(1.0 / double(B)));
      loss_finite = std::isfinite(stats.loss_sum);
      if (!loss_finite) return;
      backward_pass(arch, params, input, ws, grads.data(), false, team);
      if (record_grad_norms)  // before the step overwrites the gradients
        for (Index l = 0; l < L; ++l) result.weight_grad_norm_sums[l] += double(arch.W(grads.data(), l).norm());
      update_finite = optimizer_step(arch, config, state, backup, params, grads.data(), team, probes.data());
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
    result.samples_done += B;
    result.loss_sum += stats.loss_sum;
    result.n_correct += stats.n_correct;
    if (first + B < n && should_stop()) {
      result.status = EpochStatus::interrupted;
      return result;
    }
  }
  return result;
}

}  // namespace backprop
