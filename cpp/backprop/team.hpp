// A team of threads that shares one mini-batch step.
//
// The calling thread (the leader) runs the step; each parallel phase of it
// (a layer's product, an optimizer update) is split into `size` parts, each
// the rows [begin, end) of its output, run as single-threaded Eigen products
// by whichever thread of the team is free (thread_pool.hpp). Every output
// element is computed by exactly one part, the split depends only on the
// team size, and there are no cross-thread reductions, so results are
// deterministic for a given thread count, whichever thread ran which part.
// With one part there is no hand-off at all.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "thread_pool.hpp"
#include "types.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace backprop {

// Part `id` of a phase split into `parts`.
struct Part {
  int id = 0;
  int parts = 1;

  // This part's share [begin, end) of n items: contiguous and balanced.
  Index begin(Index n) const { return n * id / parts; }
  Index end(Index n) const { return n * (id + 1) / parts; }
  Index count(Index n) const { return end(n) - begin(n); }
};

// For tests and benchmarks: -1 lets LoadMonitor decide (the default), 0 never
// wakes workers, 1 always does. Results are the same in every mode.
inline std::atomic<int>& sharing_override() {
  static std::atomic<int> mode{-1};
  return mode;
}

// Decides, step by step, whether a team wakes its workers or its leader runs
// every part alone (the same parts, so the same results). On a machine whose
// cores are busy with other processes a worker may be descheduled for
// milliseconds in the middle of its part, or spin on a core the leader
// needs; whether sharing still pays can only be measured. So the monitor
// times blocks of steps (per multiply-add, so that steps of any size
// compare): a block alone, then a block shared; the faster way runs for a
// while (4 blocks, doubling while the same way keeps winning, up to 64),
// then both are timed again. A block that runs 1.5 × slower than its way's
// trial, or a shared trial block twice as slow as the alone one, ends that
// way at once. One monitor per calling thread, kept between calls.
class LoadMonitor {
 public:
  static LoadMonitor& for_this_thread() {
    thread_local LoadMonitor monitor;
    return monitor;
  }

  // Whether the next step wakes the workers.
  bool share() const {
    return stage_ == Stage::trial_alone ? false : stage_ == Stage::trial_shared ? true : exploit_shared_;
  }

  // A step shared or not took `ns` for `macs` multiply-adds.
  void record(std::int64_t ns, double macs) {
    block_ns_ += ns;
    block_macs_ += macs;
    ++block_steps_;
    const double rate = double(block_ns_) / block_macs_;
    if (stage_ == Stage::trial_shared && block_ns_ >= kBlockNs / 4 && rate > 2.0 * alone_rate_)
      return decide(false);
    if (block_steps_ < kBlockSteps || block_ns_ < kBlockNs) return;
    switch (stage_) {
      case Stage::trial_alone:
        alone_rate_ = rate;
        stage_ = Stage::trial_shared;
        break;
      case Stage::trial_shared:
        shared_rate_ = rate;
        return decide(shared_rate_ < alone_rate_);
      case Stage::exploit:
        if (rate > 1.5 * (exploit_shared_ ? shared_rate_ : alone_rate_) || --blocks_left_ == 0)
          stage_ = Stage::trial_alone;
        break;
    }
    new_block();
  }

 private:
  enum class Stage { trial_alone, trial_shared, exploit };
  static constexpr int kBlockSteps = 2;
  static constexpr std::int64_t kBlockNs = 10'000'000;
  static constexpr int kFirstRun = 4, kLongestRun = 64;  // exploit blocks between trials

  void decide(bool shared) {
    run_blocks_ = shared == exploit_shared_ ? std::min(2 * run_blocks_, kLongestRun) : kFirstRun;
    exploit_shared_ = shared;
    blocks_left_ = run_blocks_;
    stage_ = Stage::exploit;
    new_block();
  }

  void new_block() {
    block_ns_ = 0;
    block_macs_ = 0.0;
    block_steps_ = 0;
  }

  Stage stage_ = Stage::trial_alone;
  bool exploit_shared_ = false;
  int run_blocks_ = kFirstRun, blocks_left_ = 0;
  double alone_rate_ = 0.0, shared_rate_ = 0.0;  // ns per multiply-add in the last trial
  std::int64_t block_ns_ = 0;
  double block_macs_ = 0.0;
  int block_steps_ = 0;
};

class Team {
 public:
  static constexpr double kMinSharedMacs = 1 << 17;

  explicit Team(int size = 1, bool share = false) : size_(size < 1 ? 1 : size), share_(share) {}

  int size() const { return size_; }

  // As parallel, for a phase of `macs` multiply-adds: one too small to pay
  // for waking a worker (a few microseconds) runs as a single part on the
  // calling thread. The choice depends on the shapes only, so results stay
  // the same for a given team size.
  template <class F>
  void parallel(double macs, F&& f) const {
    if (macs < kMinSharedMacs)
      f(Part{0, 1});
    else
      parallel(std::forward<F>(f));
  }

  // Runs f(part) for every part of a phase split `size()` ways and returns
  // when all are done.
  template <class F>
  void parallel(F&& f) const {
    using Fn = std::remove_reference_t<F>;
    if (share_) {
      const auto run_part = [](void* ctx, int id, int parts) { (*static_cast<Fn*>(ctx))(Part{id, parts}); };
      void* ctx = const_cast<void*>(static_cast<const void*>(&f));
      WorkerPool::for_this_thread().run(size_, size_ - 1, run_part, ctx);
    } else {
      for (int id = 0; id < size_; ++id) f(Part{id, size_});
    }
  }

 private:
  int size_;
  bool share_;
};

// The thread limit set by set_num_threads (0: none). Global, so it holds for
// every Python thread that trains.
inline std::atomic<int>& thread_limit() {
  static std::atomic<int> limit{0};
  return limit;
}

// The largest team the core may use: OpenMP's limit for the calling thread
// (OMP_NUM_THREADS, threadpoolctl, else the number of CPUs), lowered by
// thread_limit(). Eigen itself is kept single-threaded (see bindings.cpp):
// all parallelism is the core's own, so nothing nests. A team larger than
// the usable CPUs keeps its split (and so its results) but runs on at most
// that many threads.
inline int max_team_size() {
  int n = 1;
#ifdef _OPENMP
  n = omp_get_max_threads();
#endif
  const int limit = thread_limit().load();
  return limit > 0 && limit < n ? limit : n;
}

// Team size, at most `cap`, for `macs` multiply-adds per step: about one
// thread per million, so that small networks do not pay for synchronisation
// they cannot amortise. Callers read `cap` once per call, so buffers sized by
// it stay large enough if another thread changes the limit meanwhile.
inline int team_size_for(double macs, int cap) {
  const int wanted = static_cast<int>(macs / 1.0e6);
  return wanted < 1 ? 1 : (wanted > cap ? cap : wanted);
}

// Runs f(team), one step of `macs` multiply-adds, on the calling thread with
// a team sized for it (at most `cap`) for its phases.
template <class F>
void run_team(double macs, int cap, F&& f) {
  const int size = team_size_for(macs, cap);
  if (size == 1 || WorkerPool::for_this_thread().max_threads() == 1) {
    f(Team(size, false));
    return;
  }
  const int forced = sharing_override().load(std::memory_order_relaxed);
  if (forced >= 0) {  // a forced mode's steps would mislead the monitor's next decisions
    f(Team(size, forced == 1));
    return;
  }
  LoadMonitor& monitor = LoadMonitor::for_this_thread();
  const bool share = monitor.share();
  const std::int64_t start = detail::now_ns();
  f(Team(size, share));
  monitor.record(detail::now_ns() - start, macs);
}

}  // namespace backprop
