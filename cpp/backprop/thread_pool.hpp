// The core's own worker threads: a small persistent pool per calling thread
// that runs "phases", each a fixed number of parts claimed by whichever
// thread is free first.
//
// Why not OpenMP teams: libgomp's barriers spin. On a machine where other
// processes hold the cores, a member that spins while its partner is
// descheduled burns the time the partner needs, and a 2-thread epoch took
// 4-25 × as long as a 1-thread one (W9). Here
//   * the calling thread (the leader) publishes a phase and works on it too;
//     parts nobody has started when it is free it runs itself, so a
//     descheduled worker never stalls a phase it has not joined;
//   * waiting threads spin for a few tens of microseconds (with a pause
//     instruction), then sleep on a futex;
//   * the split of a phase into parts is fixed by the caller, whoever runs
//     them, so results do not depend on which thread ran which part.
// Whether waking the workers pays at all is decided per step (LoadMonitor in
// team.hpp).
//
// Fork: worker threads do not exist in a child process, and a child may
// inherit the pool's state mid-phase. A pthread_atfork handler drops (and
// deliberately leaks) the forking thread's pool in the child, which then
// builds a new one on first use.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace backprop {

namespace detail {

inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sleeps while *word == expected (a futex on Linux; a yield elsewhere).
// May return early (signals, spurious wake-ups): callers re-check.
inline void sleep_while_equal(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
#if defined(__linux__)
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "futex word");
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
  if (word.load() == expected) std::this_thread::yield();
#endif
}

inline void wake(std::atomic<std::uint32_t>& word, int count) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
#else
  (void)word;
  (void)count;
#endif
}

// Spins (with pause) until done() or `budget_ns` has passed; returns done().
template <class Done>
bool spin_until(Done&& done, std::int64_t budget_ns) {
  const std::int64_t start = now_ns();
  for (unsigned i = 1;; ++i) {
    if (done()) return true;
    cpu_pause();
    if (i % 16 == 0 && now_ns() - start > budget_ns) return done();
  }
}

// CPUs this process may run on.
inline int usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace detail

class WorkerPool {
 public:
  // How long a thread spins before it sleeps: long enough to bridge the
  // leader's serial work between two phases of a step (a loss, a few
  // microseconds), short enough not to hold a core someone else needs.
  static constexpr std::int64_t kSpinNs = 50'000;

  // The calling thread's pool, created on first use.
  static WorkerPool& for_this_thread() {
    std::unique_ptr<WorkerPool>& pool = this_thread_pool();
    if (!pool) {
      register_fork_handler();
      pool.reset(new WorkerPool());
    }
    return *pool;
  }

  ~WorkerPool() {
    stop_.store(true);
    generation_.fetch_add(1);
    detail::wake(generation_, INT_MAX);
    for (auto& thread : threads_) thread.join();
  }

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Threads that may run parts at the same time, the leader included: the
  // usable CPUs. More parts than that are claimed in turn.
  int max_threads() const { return cpus_; }

  // Runs part(ctx, id, parts) for id in [0, parts) on the leader and up to
  // `helpers` workers, and returns when all parts are done. The first
  // exception thrown by a part is rethrown here after the phase completes.
  // Must be called by the pool's own thread.
  void run(int parts, int helpers, void (*part)(void*, int, int), void* ctx) {
    helpers = std::min({helpers, parts - 1, cpus_ - 1});
    grow(helpers);
    const std::uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
    part_.store(part, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    parts_.store(parts, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    claim_.store(std::uint64_t(gen) << 32, std::memory_order_release);
    generation_.store(gen);  // seq_cst: pairs with a worker's sleepers_ increment
    if (sleepers_.load() > 0) detail::wake(generation_, helpers);

    while (true) {  // the leader's share: whatever nobody has claimed yet
      std::uint64_t claim = claim_.load(std::memory_order_relaxed);
      const int id = static_cast<int>(claim & 0xffffffffu);
      if (id >= parts) break;
      if (claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel)) run_part(part, ctx, id, parts);
    }
    const auto all_done = [&] { return done_.load(std::memory_order_acquire) == std::uint32_t(parts); };
    if (!detail::spin_until(all_done, kSpinNs)) {
      leader_waiting_.store(true);
      for (std::uint32_t d; (d = done_.load()) != std::uint32_t(parts);) detail::sleep_while_equal(done_, d);
      leader_waiting_.store(false);
    }
    if (error_) {
      std::exception_ptr error;
      std::swap(error, error_);
      std::rethrow_exception(error);
    }
  }

 private:
  WorkerPool() : cpus_(detail::usable_cpus()) {}

  static std::unique_ptr<WorkerPool>& this_thread_pool() {
    thread_local std::unique_ptr<WorkerPool> pool;
    return pool;
  }

  // In a forked child only the forking thread exists; its pool's workers do
  // not, and the pool's words may be mid-phase. Leak it; a new one is made
  // on first use. Other threads' pools are unreachable in the child anyway.
  static void register_fork_handler() {
#if defined(__linux__)
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, [] { (void)this_thread_pool().release(); }); });
#endif
  }

  void run_part(void (*part)(void*, int, int), void* ctx, int id, int parts) {
    try {
      part(ctx, id, parts);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    if (done_.fetch_add(1) + 1 == std::uint32_t(parts) && leader_waiting_.load()) detail::wake(done_, 1);
  }

  void grow(int helpers) {
    while (static_cast<int>(threads_.size()) < helpers) threads_.emplace_back([this] { work(); });
  }

  // A worker: wait for a new generation, claim parts of it until none is
  // left, repeat.
  void work() {
    std::uint32_t seen = generation_.load();
    while (true) {
      const auto published = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      if (!detail::spin_until(published, kSpinNs)) {
        sleepers_.fetch_add(1);
        while (generation_.load() == seen) detail::sleep_while_equal(generation_, seen);
        sleepers_.fetch_sub(1);
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      claim_parts(seen);
    }
  }

  // Claims and runs parts of generation `gen` while any is left. A worker
  // that comes late sees a newer generation (or none left) and claims nothing.
  void claim_parts(std::uint32_t gen) {
    std::uint64_t claim = claim_.load(std::memory_order_acquire);
    while (true) {
      if (std::uint32_t(claim >> 32) != gen) return;
      // Read before the claim; valid when the claim succeeds, because the
      // leader rewrites them only after every part of `gen` is done.
      auto* part = part_.load(std::memory_order_relaxed);
      void* ctx = ctx_.load(std::memory_order_relaxed);
      const int parts = parts_.load(std::memory_order_relaxed);
      const int id = static_cast<int>(claim & 0xffffffffu);
      if (id >= parts) return;
      if (claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel)) {
        run_part(part, ctx, id, parts);
        claim = claim_.load(std::memory_order_acquire);
      }
    }
  }

  const int cpus_;
  std::vector<std::thread> threads_;
  // The phase on offer: generation << 32 | next unclaimed part.
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::uint32_t> generation_{0};  // futex word: a new phase, or stop
  std::atomic<std::uint32_t> done_{0};        // futex word: parts finished
  std::atomic<void (*)(void*, int, int)> part_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int> parts_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> leader_waiting_{false};
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace backprop
