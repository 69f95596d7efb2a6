// Read-only access to a caller's 2-D array of samples (rows) with any strides,
// and gathering of rows into a batch (samples as columns).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "types.hpp"

namespace backprop {

template <class T>
struct DataSource {
  const T* data = nullptr;
  std::ptrdiff_t row_stride = 0;  // in elements; may be negative
  std::ptrdiff_t col_stride = 1;  // in elements
  Index rows = 0, cols = 0;

  bool c_contiguous() const { return col_stride == 1 && row_stride == cols; }
  const T* row(Index i) const { return data + i * row_stride; }
};

namespace detail {

// Σ x·0 over n values `step` apart: 0 exactly when every one is finite.
template <class T>
T nonfinite_probe(const T* x, Index n, std::ptrdiff_t step) {
  T probe = 0;
  if (step == 1) {  // contiguous: plain vector loads
#pragma omp simd reduction(+ : probe)
    for (Index k = 0; k < n; ++k) probe += x[k] * T(0);
  } else {
    for (Index k = 0; k < n; ++k) probe += x[k * step] * T(0);
  }
  return probe;
}

}  // namespace detail

// Whether every value of src is finite (no NaN, no ±inf): x·0 is 0 exactly
// for finite x, so one sum decides. Read along whichever dimension is
// contiguous.
template <class T>
bool all_finite(const DataSource<T>& src) {
  const bool by_columns = src.col_stride != 1 && src.row_stride == 1;
  const Index lines = by_columns ? src.cols : src.rows, length = by_columns ? src.rows : src.cols;
  for (Index i = 0; i < lines; ++i) {
    const T* first = by_columns ? src.data + i * src.col_stride : src.row(i);
    if (detail::nonfinite_probe(first, length, by_columns ? 1 : src.col_stride) != T(0)) return false;
  }
  return true;
}

// dst (cols, contiguous) ← row i of src.
template <class T>
void copy_row(const DataSource<T>& src, Index i, T* dst) {
  const T* row = src.row(i);
  if (src.col_stride == 1) {
    std::memcpy(dst, row, sizeof(T) * static_cast<std::size_t>(src.cols));
  } else {
    for (Index k = 0; k < src.cols; ++k) dst[k] = row[k * src.col_stride];
  }
}

// Asks the cache for row i of src: shuffled rows are scattered over the
// whole data set, and a batch of small rows otherwise waits on one memory
// access after another.
template <class T>
void prefetch_row(const DataSource<T>& src, Index i) {
#if defined(__GNUC__)
  const char* first = reinterpret_cast<const char*>(src.row(i));
  const std::ptrdiff_t bytes = static_cast<std::ptrdiff_t>(sizeof(T)) * src.col_stride * (src.cols - 1);
  const char* lo = bytes < 0 ? first + bytes : first;
  for (std::ptrdiff_t at = 0, span = bytes < 0 ? -bytes : bytes; at <= span; at += 64) __builtin_prefetch(lo + at);
#else
  (void)src;
  (void)i;
#endif
}

// Prefetches rows index[0..count) of src, the next batch's, while this
// batch is computed, when they fit a fraction of a core's cache (a small
// network's step is too short to hide the wait for them).
template <class T>
void prefetch_next_rows(const DataSource<T>& src, const std::int64_t* index, Index count) {
  if (double(count) * double(src.cols) * sizeof(T) > 65536.0) return;
  for (Index j = 0; j < count; ++j) prefetch_row(src, index[j]);
}

// dst (cols × count, col-major): column j ← row index[j] of src. Rows a few
// ahead are prefetched while one is copied.
template <class T>
void gather_rows(const DataSource<T>& src, const std::int64_t* index, Index count, T* dst) {
  constexpr Index kAhead = 8;
  for (Index j = 0; j < count && j < kAhead; ++j) prefetch_row(src, index[j]);
  for (Index j = 0; j < count; ++j) {
    if (j + kAhead < count) prefetch_row(src, index[j + kAhead]);
    copy_row(src, index[j], dst + j * src.cols);
  }
}

// dst (cols × count, col-major): column j ← row first + j of src.
template <class T>
void copy_rows(const DataSource<T>& src, Index first, Index count, T* dst) {
  for (Index j = 0; j < count; ++j) copy_row(src, first + j, dst + j * src.cols);
}

}  // namespace backprop
