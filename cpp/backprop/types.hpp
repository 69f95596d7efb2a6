// The core's layout convention and its matrix types.
//
// Layout, used everywhere in cpp/:
//   * Samples are COLUMNS. A batch of B samples with n features is an n × B
//     column-major matrix: byte for byte the (B, n) C-order NumPy array that the
//     Python API passes, so batches map without copies.
//   * W^(l) is n_out × n_in ROW-major: the same bytes as the (n_out, n_in)
//     C-order NumPy array, the layout of torch.nn.Linear.weight.
//   * All parameters of a network live in one flat buffer
//     [W^(1), b^(1), W^(2), b^(2), ...]; gradients and optimizer state use the
//     same layout, so an optimizer sees one array.
#pragma once

#include <Eigen/Core>

#include <vector>

namespace backprop {

using Index = Eigen::Index;

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;  // col-major
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// Workspace storage, aligned to Eigen's widest packet: Eigen's vectorised
// reductions peel a scalar prologue up to the first aligned element, so the
// summation order (and the last bits) would otherwise depend on where malloc
// put the buffer, and training would not be reproducible.
template <class T>
using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;

template <class T>
using MatrixMap = Eigen::Map<Matrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const Matrix<T>>;
template <class T>
using WeightMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstWeightMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using VectorMap = Eigen::Map<Vector<T>>;
template <class T>
using ConstVectorMap = Eigen::Map<const Vector<T>>;

}  // namespace backprop
