// A register-blocked kernel for small matrix products.
//
// Eigen's general product packs both operands into cache-sized panels and
// picks its blocking at run time: a few microseconds per call, which is all
// of the cost when a layer is 64 × 32 and the batch is 16 (W3). This
// kernel does no packing and no allocation: C's columns are computed in
// blocks of up to 4, rows in SIMD packets (Eigen's packet type for the
// build's instruction set, then its half and quarter packets, then
// scalars), with a multiply-add per element of A and B:
//
//   C (M × N, column-major, leading dimension ldc)  =  or  +=
//   A (M × K, column-major, leading dimension lda) · B (K × N, element
//   (k, j) at b[k·b_row + j·b_col], any layout).
//
// Every element is summed over k in order with the same fused (or, without
// FMA, unfused) multiply-add whichever packet width computes it, so a result
// does not depend on how the rows are split between threads.
#pragma once

#include <Eigen/Core>

#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "types.hpp"

// Eigen's packet types are vector types whose alignment attributes GCC
// reports as ignored when they are template arguments; nothing depends on them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif

namespace backprop {

// Products of at most this many multiply-adds run on small_gemm; larger
// ones on Eigen's blocked product, which reuses caches better.
constexpr double kSmallProductMacs = 1 << 17;

inline bool small_product(Index rows, Index inner, Index cols) {
  return double(rows) * double(inner) * double(cols) <= kSmallProductMacs;
}

// The forward product W·A_prev needs W column-major for this kernel: a copy
// of W that only pays when enough columns (samples) share it. Fewer take
// Eigen's matrix-vector path.
constexpr Index kMinColumnsForTransposed = 4;

inline bool small_forward(Index n_out, Index n_in, Index B) {
  return B >= kMinColumnsForTransposed && small_product(n_out, n_in, B);
}

namespace detail {

template <class T>
struct GemmOperands {
  const T* a;
  Index lda;
  const T* b;
  Index b_row, b_col;
  T* c;
  Index ldc;
  Index K;
  bool accumulate;
};

// C[i0 : i0 + MR·size, j0 : j0 + NR] in packets of type Packet.
template <class Packet, int MR, int NR, class T>
void gemm_block(const GemmOperands<T>& o, Index i0, Index j0) {
  namespace ei = Eigen::internal;
  constexpr Index S = ei::unpacket_traits<Packet>::size;
  Packet acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = ei::pset1<Packet>(T(0));
  const T* a = o.a + i0;
  const T* b = o.b + j0 * o.b_col;
  for (Index k = 0; k < o.K; ++k, a += o.lda, b += o.b_row) {
    Packet av[MR];
    for (int r = 0; r < MR; ++r) av[r] = ei::ploadu<Packet>(a + r * S);
    for (int c = 0; c < NR; ++c) {
      const Packet bv = ei::pset1<Packet>(b[c * o.b_col]);
      for (int r = 0; r < MR; ++r) acc[r][c] = ei::pmadd(av[r], bv, acc[r][c]);
    }
  }
  for (int c = 0; c < NR; ++c)
    for (int r = 0; r < MR; ++r) {
      T* dst = o.c + (j0 + c) * o.ldc + i0 + r * S;
      ei::pstoreu(dst, o.accumulate ? ei::padd(ei::ploadu<Packet>(dst), acc[r][c]) : acc[r][c]);
    }
}

// Rows [i0, i1) one at a time, for what no packet covers.
template <int NR, class T>
void gemm_scalar_block(const GemmOperands<T>& o, Index i0, Index i1, Index j0) {
  for (Index i = i0; i < i1; ++i) {
    T acc[NR] = {};
    const T* a = o.a + i;
    const T* b = o.b + j0 * o.b_col;
    for (Index k = 0; k < o.K; ++k, a += o.lda, b += o.b_row)
      for (int c = 0; c < NR; ++c) acc[c] = Eigen::internal::pmadd(*a, b[c * o.b_col], acc[c]);
    for (int c = 0; c < NR; ++c) {
      T& dst = o.c[(j0 + c) * o.ldc + i];
      dst = o.accumulate ? dst + acc[c] : acc[c];
    }
  }
}

constexpr int kBlockCols = 4;

// Calls block(integral_constant<int, NR>, j0) for column blocks covering
// [0, N): of kBlockCols columns, then one of 3, 2 or 1.
template <class Block>
void for_column_blocks(Index N, Block&& block) {
  Index j = 0;
  for (; j + kBlockCols <= N; j += kBlockCols) block(std::integral_constant<int, kBlockCols>{}, j);
  switch (N - j) {
    case 3: block(std::integral_constant<int, 3>{}, j); break;
    case 2: block(std::integral_constant<int, 2>{}, j); break;
    case 1: block(std::integral_constant<int, 1>{}, j); break;
    default: break;
  }
}

// Every column of C for the row block at i0 (MR packets, or scalar rows
// [i0, i1) when MR is 0).
template <class Packet, int MR, class T>
void gemm_row_panel(const GemmOperands<T>& o, Index i0, Index i1, Index N) {
  for_column_blocks(N, [&](auto cols, Index j) {
    constexpr int NR = decltype(cols)::value;
    if constexpr (MR == 0)
      gemm_scalar_block<NR>(o, i0, i1, j);
    else
      gemm_block<Packet, MR, NR>(o, i0, j);
  });
}

#if defined(__AVX512F__)
// AVX-512 loads and stores under a mask, so the last rows [i0, i0 + rows)
// (fewer than a packet) take one packet instead of half packets and scalars:
// a 10-unit output layer is one masked packet. Lanes beyond the rows are
// neither read nor written; each element still gets one fused multiply-add
// per k, in order, as everywhere else in this file.
inline __m512 masked_load(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512d masked_load(__mmask8 m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
inline void masked_store(float* p, __mmask16 m, __m512 v) { _mm512_mask_storeu_ps(p, m, v); }
inline void masked_store(double* p, __mmask8 m, __m512d v) { _mm512_mask_storeu_pd(p, m, v); }

template <int NR, class T>
void gemm_masked_block(const GemmOperands<T>& o, Index i0, Index rows, Index j0) {
  namespace ei = Eigen::internal;
  using Packet = typename ei::packet_traits<T>::type;  // the 512-bit packet
  using Mask = std::conditional_t<std::is_same_v<T, float>, __mmask16, __mmask8>;
  const Mask mask = static_cast<Mask>((1u << rows) - 1);
  Packet acc[NR];
  for (int c = 0; c < NR; ++c) acc[c] = ei::pset1<Packet>(T(0));
  const T* a = o.a + i0;
  const T* b = o.b + j0 * o.b_col;
  for (Index k = 0; k < o.K; ++k, a += o.lda, b += o.b_row) {
    const Packet av = masked_load(mask, a);
    for (int c = 0; c < NR; ++c) acc[c] = ei::pmadd(av, ei::pset1<Packet>(b[c * o.b_col]), acc[c]);
  }
  for (int c = 0; c < NR; ++c) {
    T* dst = o.c + (j0 + c) * o.ldc + i0;
    masked_store(dst, mask, o.accumulate ? ei::padd(masked_load(mask, dst), acc[c]) : acc[c]);
  }
}

// Every column of C for the last rows [i0, i0 + rows).
template <class T>
void gemm_masked_panel(const GemmOperands<T>& o, Index i0, Index rows, Index N) {
  for_column_blocks(N, [&](auto cols, Index j) { gemm_masked_block<decltype(cols)::value>(o, i0, rows, j); });
}
#endif

// Rows from i on with packets of type Packet, one at a time, then with its
// half packet, down to scalars (with AVX-512: one masked packet).
template <class Packet, class T>
void gemm_tail_rows(const GemmOperands<T>& o, Index i, Index M, Index N) {
  using Half = typename Eigen::internal::unpacket_traits<Packet>::half;
  constexpr Index S = Eigen::internal::unpacket_traits<Packet>::size;
  for (; i + S <= M; i += S) gemm_row_panel<Packet, 1>(o, i, i + S, N);
#if defined(__AVX512F__)
  if constexpr (S * sizeof(T) == 64) {
    if (i < M) gemm_masked_panel(o, i, M - i, N);
    return;
  }
#endif
  if constexpr (Eigen::internal::unpacket_traits<Half>::size < S)
    gemm_tail_rows<Half>(o, i, M, N);
  else if (i < M)
    gemm_row_panel<Packet, 0>(o, i, M, N);
}

}  // namespace detail

// C ← A·B, or C ← C + A·B with `accumulate`; see the top of this file.
template <class T>
void small_gemm(Index M, Index N, Index K, const T* a, Index lda, const T* b, Index b_row, Index b_col, T* c,
                Index ldc, bool accumulate) {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  constexpr Index S = Eigen::internal::unpacket_traits<Packet>::size;
  const detail::GemmOperands<T> o{a, lda, b, b_row, b_col, c, ldc, K, accumulate};
  Index i = 0;
  for (; i + 2 * S <= M; i += 2 * S) detail::gemm_row_panel<Packet, 2>(o, i, i + 2 * S, N);
  detail::gemm_tail_rows<Packet>(o, i, M, N);
}

// dst (rows × cols, column-major, leading dimension rows) ← src (rows × cols,
// row-major, row stride src_stride): the A operand of small_gemm from a
// row-major matrix. Square blocks of one SIMD packet per row are transposed
// in registers, the edges one element at a time.
template <class T>
void transpose_to_column_major(const T* src, Index src_stride, Index rows, Index cols, T* dst) {
  namespace ei = Eigen::internal;
  using Packet = typename ei::packet_traits<T>::type;
  constexpr int S = ei::unpacket_traits<Packet>::size;
  Index i = 0;
  if constexpr (S > 1) {
    for (; i + S <= rows; i += S) {
      Index k = 0;
      for (; k + S <= cols; k += S) {
        ei::PacketBlock<Packet, S> block;
        for (int r = 0; r < S; ++r) block.packet[r] = ei::ploadu<Packet>(src + (i + r) * src_stride + k);
        ei::ptranspose(block);
        for (int r = 0; r < S; ++r) ei::pstoreu(dst + (k + r) * rows + i, block.packet[r]);
      }
      for (; k < cols; ++k)
        for (Index r = i; r < i + S; ++r) dst[k * rows + r] = src[r * src_stride + k];
    }
  }
  for (; i < rows; ++i)
    for (Index k = 0; k < cols; ++k) dst[k * rows + i] = src[i * src_stride + k];
}

}  // namespace backprop

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
