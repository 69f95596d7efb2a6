// Inverted dropout with masks from a counter-based generator.
//
// A training pass drops unit i of sample j of hidden layer l with
// probability p: ã = a ⊙ m/(1 − p), m ∈ {0, 1}, and the gradient flowing back
// is multiplied by the same m/(1 − p). The mask is a pure function of
// (seed, step, layer, sample position, unit), never a stream shared by
// threads, so results do not depend on how a step is split, and a resumed fit
// draws the masks an uninterrupted one would. SplitMix64's finaliser `mix`
// turns counters into 64-bit words (G = 0x9E3779B97F4A7C15, arithmetic mod 2^64):
//   key  = mix(mix(mix(seed + G) ^ step + G) ^ layer + G)
//   word = mix(key + c·G),  c = j·n + i + 1  (sample position j, unit i of n)
//   m    = 1  ⇔  (word >> 11) ≥ ⌊p · 2^53⌋
// python/backprop/_dropout_mask.py computes the same masks in NumPy.
#pragma once

#include <cstdint>

#include "types.hpp"

namespace backprop {

constexpr std::uint64_t kSplitMixIncrement = 0x9E3779B97F4A7C15ull;

inline std::uint64_t splitmix_finalise(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The key of layer `layer`'s masks in training step `step`.
inline std::uint64_t dropout_key(std::uint64_t seed, std::uint64_t step, std::uint64_t layer) {
  std::uint64_t key = splitmix_finalise(seed + kSplitMixIncrement);
  key = splitmix_finalise((key ^ step) + kSplitMixIncrement);
  return splitmix_finalise((key ^ layer) + kSplitMixIncrement);
}

// ⌊p · 2^53⌋ (p · 2^53 is exact, the conversion truncates).
inline std::uint64_t dropout_threshold(double p) { return static_cast<std::uint64_t>(p * 9007199254740992.0); }

// Which masks a training pass uses: its step, and the position in the batch
// of the first sample it holds (full-data passes run in chunks).
struct DropoutPass {
  std::uint64_t step = 1;
  Index first_position = 0;
};

// Columns [c0, c0 + count) of a layer's n × B block (samples as columns):
// mask ← m/(1 − p), dropped ← a ⊙ mask, for samples at batch positions
// position0 + j.
template <class T>
void apply_dropout(std::uint64_t key, double p, const T* a, T* mask, T* dropped, Index n, Index c0, Index count,
                   Index position0) {
  const std::uint64_t threshold = dropout_threshold(p);
  const T scale = T(1.0 / (1.0 - p));
  for (Index j = c0; j < c0 + count; ++j) {
    const std::uint64_t base = static_cast<std::uint64_t>(position0 + j) * static_cast<std::uint64_t>(n) + 1;
    const Index at = j * n;
#pragma omp simd
    for (Index i = 0; i < n; ++i) {
      const std::uint64_t word = splitmix_finalise(key + (base + static_cast<std::uint64_t>(i)) * kSplitMixIncrement);
      const T m = (word >> 11) >= threshold ? scale : T(0);
      mask[at + i] = m;
      dropped[at + i] = a[at + i] * m;
    }
  }
}

}  // namespace backprop
