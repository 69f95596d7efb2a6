// The core's entry points for each scalar type, declared here and compiled
// once each in their own translation unit (cpp/instances_float.cpp,
// cpp/instances_double.cpp): the bindings do not instantiate them, so the
// three translation units of a core compile in parallel and an edit to the
// bindings does not recompile the math.
#pragma once

#include <cstdint>
#include <functional>

#include "architecture.hpp"
#include "data_source.hpp"
#include "optimizers.hpp"
#include "scratch.hpp"
#include "trainer.hpp"

// DECLARE is `extern template` (a declaration) or `template` (the definition).
// The signatures must match the templates': a changed one fails to compile here.
#define BACKPROP_ENTRY_POINTS(DECLARE, T)                                                                      \
  DECLARE bool predict<T>(const Architecture&, const T*, const DataSource<T>&, T*,                            \
                          const std::function<bool()>&, Scratch<T>&);                                         \
  DECLARE bool evaluate<T>(const Architecture&, const T*, const DataSource<T>&, const TargetSource<T>&,        \
                           const std::function<bool()>&, Scratch<T>&, LossStats&);                            \
  DECLARE bool gradient<T>(const Architecture&, const T*, const DataSource<T>&, const TargetSource<T>&,        \
                           const std::int64_t*, Index, bool, T*, const std::function<bool()>&, Scratch<T>&,   \
                           LossStats&, std::uint64_t);                                                        \
  DECLARE EpochResult train_epoch<T>(const Architecture&, T*, const OptimizerConfig&, OptimizerState<T>&,      \
                                     const DataSource<T>&, const TargetSource<T>&, const std::int64_t*, Index, \
                                     Index, bool, const std::function<bool()>&, Scratch<T>&);                 \
  DECLARE bool optimizer_step<T>(const Architecture&, const OptimizerConfig&, OptimizerState<T>&,             \
                                 const StepBackup<T>&, T*, T*, const Team&, T*);

namespace backprop {
BACKPROP_ENTRY_POINTS(extern template, float)
BACKPROP_ENTRY_POINTS(extern template, double)
}  // namespace backprop
