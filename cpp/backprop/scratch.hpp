// The buffers a model keeps from call to call: a per-batch call
// (train_on_batch, gradients, apply_gradients, a data-parallel step) then
// allocates nothing once its batch size has been seen. Buffers grow to the
// largest batch asked for and are never shrunk; a workspace sized for B
// columns serves every batch of at most B.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "architecture.hpp"
#include "optimizers.hpp"
#include "propagation.hpp"
#include "types.hpp"

namespace backprop {

// Per-batch copies of targets and weights, room for `capacity` samples of
// whichever kind the data set has (class labels or dense rows).
template <class T>
struct TargetBuffers {
  void reserve(bool labelled, bool weighted, Index capacity, Index n_out) {
    const auto n = static_cast<std::size_t>(capacity);
    if (labelled && labels.size() < n) labels.resize(n);
    if (!labelled && dense.size() < n * static_cast<std::size_t>(n_out)) dense.resize(n * n_out);
    if (weighted && weights.size() < n) weights.resize(n);
  }
  std::vector<std::int64_t> labels;
  Buffer<T> dense;
  std::vector<double> weights;
};

template <class T>
class Scratch {
 public:
  // A workspace for batches of up to `capacity` samples.
  Workspace<T>& workspace(const Architecture& arch, Index capacity) {
    if (!workspace_ || workspace_->capacity() < capacity) {
      workspace_.reset();  // free the old one before the larger one is allocated
      workspace_ = std::make_unique<Workspace<T>>(arch, capacity);
    }
    return *workspace_;
  }

  TargetBuffers<T>& targets(bool labelled, bool weighted, Index capacity, Index n_out) {
    targets_.reserve(labelled, weighted, capacity, n_out);
    return targets_;
  }

  // A gradient buffer of n entries, and the step's backups of the optimizer
  // state (see StepBackup) for the buffers `state` has.
  T* grads(Index n) { return grown(grads_, n); }
  StepBackup<T> backup(const OptimizerState<T>& state, Index n) {
    return {state.first ? grown(backup_first_, n) : nullptr, state.second ? grown(backup_second_, n) : nullptr};
  }
  // One probe per part of a team of up to n threads (optimizer_step).
  T* probes(int n) { return grown(probes_, n); }

 private:
  static T* grown(Buffer<T>& buffer, Index n) {
    if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
    return buffer.data();
  }

  std::unique_ptr<Workspace<T>> workspace_;
  TargetBuffers<T> targets_;
  Buffer<T> grads_, backup_first_, backup_second_, probes_;
};

}  // namespace backprop
