// Activation functions σ and their derivatives σ'.
//
// Derivatives are taken from the stored activation A = σ(Z), never from Z, so
// the forward pass can overwrite Z with A:
//   sigmoid' = A(1 − A), tanh' = 1 − A², relu' = [A > 0] (0 at 0),
//   leaky_relu' = 1 if A > 0 else 0.01 (A > 0 exactly when Z > 0), identity' = 1.
// softmax and exp are output activations only, each differentiated together
// with its loss (softmax with cross_entropy, exp with poisson; see losses.hpp).
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "types.hpp"

namespace backprop {

enum class Activation { identity, sigmoid, tanh, relu, leaky_relu, softmax, exp };

// True for the activations only an output layer may have.
inline bool output_only(Activation act) { return act == Activation::softmax || act == Activation::exp; }

constexpr double kLeakyReluSlope = 0.01;

inline Activation activation_from_name(const std::string& name) {
  if (name == "identity") return Activation::identity;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "softmax") return Activation::softmax;
  if (name == "exp") return Activation::exp;
  throw std::invalid_argument("unknown activation '" + name + "'");
}

namespace detail {

// x ← σ(x) elementwise, for a contiguous run of values (softmax excluded).
template <class X>
void activate_in_place(Activation act, X&& x) {
  using T = typename std::decay_t<X>::Scalar;
  switch (act) {
    case Activation::identity:
    case Activation::softmax:
      break;
    case Activation::sigmoid:
      x = T(1) / (T(1) + (-x).exp());
      break;
    case Activation::tanh:
      x = x.tanh();
      break;
    case Activation::relu:
      x = x.max(T(0));
      break;
    case Activation::leaky_relu:
      x = (x > T(0)).select(x, T(kLeakyReluSlope) * x);
      break;
    case Activation::exp:
      x = x.exp();
      break;
  }
}

}  // namespace detail

// Z ← σ(Z + b 1ᵀ). Z: n × B (a matrix or a block of rows of one), b: n.
// softmax normalises each column, so for it Z must hold whole columns.
template <class ZType, class BiasType>
void add_bias_and_activate(Activation act, ZType&& Z, const BiasType& b) {
  using T = typename std::decay_t<ZType>::Scalar;
  const Index n = Z.rows(), B = Z.cols();
  const T* bias = b.data();
  for (Index j = 0; j < B; ++j) {  // plain loops: cheaper than an expression per column
    T* z = Z.data() + j * Z.outerStride();
#pragma omp simd
    for (Index i = 0; i < n; ++i) z[i] += bias[i];
  }
  if (act == Activation::softmax) {
    for (Index j = 0; j < B; ++j) {  // shift by the column maximum so exp never overflows
      auto column = Z.col(j).array();
      column = (column - column.maxCoeff()).exp();
      column /= column.sum();
    }
  } else if (Z.outerStride() == n) {  // whole columns: one vectorised pass over all of Z
    detail::activate_in_place(act, Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(Z.data(), n * B));
  } else {
    for (Index j = 0; j < B; ++j) detail::activate_in_place(act, Z.col(j).array());
  }
}

// D ← D ⊙ σ'(Z), with σ' computed from A = σ(Z). A, D: n × B (or blocks).
template <class AType, class DType>
void multiply_by_derivative(Activation act, const AType& A, DType&& D) {
  using T = typename std::decay_t<DType>::Scalar;
  auto a = A.array();
  auto d = D.array();
  switch (act) {
    case Activation::identity:
      break;
    case Activation::sigmoid:
      d *= a * (T(1) - a);
      break;
    case Activation::tanh:
      d *= T(1) - a.square();
      break;
    case Activation::relu:
      d = (a > T(0)).select(d, T(0));
      break;
    case Activation::leaky_relu:
      d = (a > T(0)).select(d, T(kLeakyReluSlope) * d);
      break;
    case Activation::softmax:
      throw std::logic_error("softmax is differentiated only together with cross_entropy");
    case Activation::exp:
      throw std::logic_error("exp is differentiated only together with poisson");
  }
}

}  // namespace backprop
