// The shape of a network and where its parameters sit in the flat buffer.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#include "activations.hpp"
#include "losses.hpp"
#include "types.hpp"

namespace backprop {

// Layer sizes n_0..n_L, one activation per layer (the last is the output's),
// the loss, and where each layer's W and b sit in the flat parameter buffer.
// A hidden layer is the block z = W a + b → [LayerNorm: u = γ ⊙ ẑ + β] →
// a = σ(u) → [dropout: ã = a ⊙ m/(1 − p)]: `norms` and `dropout` hold one
// entry per hidden layer (empty: none), and the layout of the flat buffer is
// [W^(1), b^(1), (γ^(1), β^(1)), W^(2), b^(2), ...], γ and β only for the
// normalised layers (python/backprop/_layout.py lays it out the same way).
class Architecture {
 public:
  Architecture(std::vector<Index> sizes, std::vector<Activation> activations, Loss loss,
               std::vector<bool> norms = {}, std::vector<double> dropout = {}, std::uint64_t dropout_seed = 0)
      : sizes_(std::move(sizes)), activations_(std::move(activations)), loss_(loss),
        norms_(std::move(norms)), dropout_(std::move(dropout)), dropout_seed_(dropout_seed) {
    if (sizes_.size() < 2) throw std::invalid_argument("a network needs at least two layer sizes");
    if (activations_.size() != sizes_.size() - 1)
      throw std::invalid_argument("need one activation per layer");
    for (Index n : sizes_)
      if (n <= 0) throw std::invalid_argument("layer sizes must be positive");
    for (std::size_t l = 0; l + 1 < activations_.size(); ++l)
      if (output_only(activations_[l]))
        throw std::invalid_argument("softmax and exp can only be output activations");
    const Activation out = activations_.back();
    if ((out == Activation::softmax) != (loss_ == Loss::cross_entropy))
      throw std::invalid_argument("cross_entropy needs a softmax output and softmax needs cross_entropy");
    if ((out == Activation::exp) != (loss_ == Loss::poisson))
      throw std::invalid_argument("poisson needs an exp output and exp needs poisson");
    if (loss_ == Loss::binary_cross_entropy && out != Activation::sigmoid)
      throw std::invalid_argument("binary_cross_entropy needs a sigmoid output");
    const std::size_t n_hidden = activations_.size() - 1;
    if (norms_.empty()) norms_.assign(n_hidden, false);
    if (dropout_.empty()) dropout_.assign(n_hidden, 0.0);
    if (norms_.size() != n_hidden || dropout_.size() != n_hidden)
      throw std::invalid_argument("need one norm flag and one dropout rate per hidden layer");
    for (double p : dropout_)
      if (!(p >= 0.0 && p < 1.0)) throw std::invalid_argument("dropout rates must be in [0, 1)");
    norms_.push_back(false);  // never after the output layer
    dropout_.push_back(0.0);
    Index offset = 0;
    for (Index l = 0; l < n_layers(); ++l) {
      Index weights, grown;
      if (__builtin_mul_overflow(n_out(l), n_in(l), &weights) || __builtin_add_overflow(offset, weights, &grown) ||
          __builtin_add_overflow(grown, n_out(l), &grown))
        throw std::invalid_argument("layer sizes too large: the parameter count overflows");
      weight_offsets_.push_back(offset);
      bias_offsets_.push_back(offset + weights);
      gamma_offsets_.push_back(norms_[l] ? grown : -1);
      if (norms_[l] && __builtin_add_overflow(grown, 2 * n_out(l), &grown))
        throw std::invalid_argument("layer sizes too large: the parameter count overflows");
      offset = grown;
    }
    n_params_ = offset;
  }

  // Layers are numbered 0..L-1 here; layer l maps n_in(l) = sizes[l] inputs
  // to n_out(l) = sizes[l+1] outputs.
  Index n_layers() const { return static_cast<Index>(activations_.size()); }
  Index n_in(Index l) const { return sizes_[l]; }
  Index n_out(Index l) const { return sizes_[l + 1]; }
  Index n_inputs() const { return sizes_.front(); }
  Index n_outputs() const { return sizes_.back(); }
  Index max_width() const {
    Index m = 0;
    for (Index n : sizes_) m = n > m ? n : m;
    return m;
  }
  Activation activation(Index l) const { return activations_[l]; }
  // LayerNorm after layer l's affine map (hidden layers only).
  bool has_norm(Index l) const { return norms_[l]; }
  // Layer l's dropout rate p (0 for none, and for the output layer).
  double dropout(Index l) const { return dropout_[l]; }
  std::uint64_t dropout_seed() const { return dropout_seed_; }
  // Whether a training pass must keep u^(l), the activation's input.
  bool keeps_input(Index l) const { return needs_input(activations_[l]); }
  Loss loss() const { return loss_; }
  Index n_params() const { return n_params_; }
  // Multiply-adds of one sample's forward pass: Σ_l n_in(l) · n_out(l).
  double macs_per_sample() const {
    double n = 0;
    for (Index l = 0; l < n_layers(); ++l) n += double(n_in(l)) * double(n_out(l));
    return n;
  }
  Index weight_offset(Index l) const { return weight_offsets_[l]; }
  Index bias_offset(Index l) const { return bias_offsets_[l]; }

  template <class T>
  WeightMap<T> W(T* flat, Index l) const {
    return WeightMap<T>(flat + weight_offsets_[l], n_out(l), n_in(l));
  }
  template <class T>
  ConstWeightMap<T> W(const T* flat, Index l) const {
    return ConstWeightMap<T>(flat + weight_offsets_[l], n_out(l), n_in(l));
  }
  template <class T>
  VectorMap<T> b(T* flat, Index l) const {
    return VectorMap<T>(flat + bias_offsets_[l], n_out(l));
  }
  template <class T>
  ConstVectorMap<T> b(const T* flat, Index l) const {
    return ConstVectorMap<T>(flat + bias_offsets_[l], n_out(l));
  }
  // LayerNorm's γ^(l) and β^(l) (has_norm(l) only), β right after γ.
  Index gamma_offset(Index l) const { return gamma_offsets_[l]; }
  template <class T>
  T* gamma(T* flat, Index l) const {
    return flat + gamma_offsets_[l];
  }
  template <class T>
  const T* gamma(const T* flat, Index l) const {
    return flat + gamma_offsets_[l];
  }
  template <class T>
  T* beta(T* flat, Index l) const {
    return flat + gamma_offsets_[l] + n_out(l);
  }
  template <class T>
  const T* beta(const T* flat, Index l) const {
    return flat + gamma_offsets_[l] + n_out(l);
  }

 private:
  std::vector<Index> sizes_;
  std::vector<Activation> activations_;
  Loss loss_;
  std::vector<bool> norms_;
  std::vector<double> dropout_;
  std::uint64_t dropout_seed_;
  std::vector<Index> weight_offsets_, bias_offsets_, gamma_offsets_;
  Index n_params_ = 0;
};

}  // namespace backprop
