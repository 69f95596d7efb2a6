// A team of threads that shares one mini-batch step.
//
// Each matrix product is split by output rows (units) between the team's
// members, each running a single-threaded Eigen product on its share; the
// members meet at a barrier between layers. Every output element is computed
// by exactly one thread, so there are no cross-thread reductions and results
// are deterministic for a given thread count. With one member there is no
// parallel region and barriers cost nothing.
#pragma once

#include <atomic>

#include "types.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace backprop {

struct Team {
  int id = 0;
  int size = 1;

  // This member's share [begin, end) of n items: contiguous and balanced.
  Index begin(Index n) const { return n * id / size; }
  Index end(Index n) const { return n * (id + 1) / size; }
  Index count(Index n) const { return end(n) - begin(n); }
  bool leader() const { return id == 0; }

  void barrier() const {
#ifdef _OPENMP
    if (size > 1) {
#pragma omp barrier
    }
#endif
  }
};

// The thread limit set by set_num_threads (0: none). Global, so it holds for
// every Python thread that trains.
inline std::atomic<int>& thread_limit() {
  static std::atomic<int> limit{0};
  return limit;
}

// Set in a child process after fork() when the parent had opened a parallel
// region: GNU OpenMP's thread pool does not survive a fork, and a child that
// opens a parallel region after its parent did can hang. Such children train
// on one thread; children of a process that never did (a forkserver that only
// imported the core) keep them all.
inline std::atomic<bool>& forked_child() {
  static std::atomic<bool> forked{false};
  return forked;
}

// Whether this process (or the parent it was forked from) has opened a
// parallel region, i.e. whether GNU OpenMP's thread pool may exist.
inline std::atomic<bool>& opened_parallel_region() {
  static std::atomic<bool> opened{false};
  return opened;
}

// The largest team the core may use: OpenMP's limit for the calling thread
// (OMP_NUM_THREADS, threadpoolctl, else the number of CPUs), lowered by
// thread_limit(). Eigen itself is kept single-threaded (see bindings.cpp):
// all parallelism is the core's own, so nothing nests or oversubscribes.
inline int max_team_size() {
  if (forked_child().load()) return 1;
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

// Runs f(team) on `size` threads (f must call team.barrier() the same number
// of times on every member).
template <class F>
void run_team(int size, F&& f) {
#ifdef _OPENMP
  if (size > 1) {
    opened_parallel_region().store(true, std::memory_order_relaxed);
#pragma omp parallel num_threads(size)
    {
      Team team{omp_get_thread_num(), omp_get_num_threads()};
      f(team);
    }
    return;
  }
#endif
  f(Team{});
}

}  // namespace backprop
