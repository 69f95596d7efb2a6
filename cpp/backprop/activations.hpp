// Activation functions σ and their derivatives σ'.
//
// Derivatives are taken from the stored activation A = σ(Z) where that is
// exact, so the forward pass can overwrite Z with A:
//   sigmoid' = A(1 − A), tanh' = 1 − A², relu' = [A > 0] (0 at 0),
//   leaky_relu' = 1 if A > 0 else 0.01 (A > 0 exactly when Z > 0), identity' = 1.
// gelu, silu and elu (needs_input) are differentiated from Z, which the
// forward pass keeps for them:
//   gelu(z) = z Φ(z), Φ(z) = (1 + erf(z/√2))/2 (exact, torch.nn.GELU()),
//     gelu' = Φ(z) + z φ(z), φ(z) = e^(−z²/2)/√(2π);
//   silu(z) = z σ(z), silu' = σ(z)(1 + z(1 − σ(z)));
//   elu(z) = z if z > 0 else e^z − 1 (α = 1), elu' = 1 if z > 0 else e^z.
// softmax and exp are output activations only, each differentiated together
// with its loss (softmax with cross_entropy, exp with poisson; see losses.hpp).
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "types.hpp"

namespace backprop {

enum class Activation { identity, sigmoid, tanh, relu, leaky_relu, softmax, exp, gelu, silu, elu };

// True for the activations only an output layer may have.
inline bool output_only(Activation act) { return act == Activation::softmax || act == Activation::exp; }

// True for the activations whose derivative is taken from their input Z.
inline bool needs_input(Activation act) {
  return act == Activation::gelu || act == Activation::silu || act == Activation::elu;
}

constexpr double kLeakyReluSlope = 0.01;

inline Activation activation_from_name(const std::string& name) {
  if (name == "identity") return Activation::identity;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "softmax") return Activation::softmax;
  if (name == "exp") return Activation::exp;
  if (name == "gelu") return Activation::gelu;
  if (name == "silu") return Activation::silu;
  if (name == "elu") return Activation::elu;
  throw std::invalid_argument("unknown activation '" + name + "'");
}

namespace detail {

template <class T>
T normal_cdf(T z) {
  return T(0.5) * (T(1) + std::erf(z * T(1.0 / std::sqrt(2.0))));
}

// x ← gelu(x) for a contiguous run of values (erf has no Eigen packet here).
template <class X>
void gelu_in_place(X& x) {
  using T = typename std::decay_t<X>::Scalar;
  for (Index i = 0; i < x.size(); ++i) {
    const T z = x(i);
    x(i) = z * normal_cdf(z);
  }
}

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
    case Activation::gelu:
      gelu_in_place(x);
      break;
    case Activation::silu:
      x = x * (T(1) / (T(1) + (-x).exp()));
      break;
    case Activation::elu:
      x = (x > T(0)).select(x, x.min(T(0)).expm1());
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

// D ← D ⊙ σ'(Z), with σ' computed from A = σ(Z), or from Z (`U`) for the
// activations that need their input. A, U, D: n × B (or blocks); U is read
// only when needs_input(act).
template <class AType, class UType, class DType>
void multiply_by_derivative(Activation act, const AType& A, const UType& U, DType&& D) {
  using T = typename std::decay_t<DType>::Scalar;
  auto a = A.array();
  auto d = D.array();
  auto z = U.array();
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
    case Activation::gelu: {
      const T inv_sqrt_2pi = T(1.0 / std::sqrt(2.0 * 3.14159265358979323846));
      for (Index j = 0; j < D.cols(); ++j)
        for (Index i = 0; i < D.rows(); ++i) {
          const T u = z(i, j);
          d(i, j) *= detail::normal_cdf(u) + u * (std::exp(T(-0.5) * u * u) * inv_sqrt_2pi);
        }
      break;
    }
    case Activation::silu:
      for (Index j = 0; j < D.cols(); ++j)
        for (Index i = 0; i < D.rows(); ++i) {
          const T u = z(i, j), s = T(1) / (T(1) + std::exp(-u));
          d(i, j) *= s * (T(1) + u * (T(1) - s));
        }
      break;
    case Activation::elu:
      d *= (z > T(0)).select(T(1), z.min(T(0)).exp());
      break;
  }
}

}  // namespace backprop
