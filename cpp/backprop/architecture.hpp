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
class Architecture {
 public:
  Architecture(std::vector<Index> sizes, std::vector<Activation> activations, Loss loss)
      : sizes_(std::move(sizes)), activations_(std::move(activations)), loss_(loss) {
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
    Index offset = 0;
    for (Index l = 0; l < n_layers(); ++l) {
      Index weights, grown;
      if (__builtin_mul_overflow(n_out(l), n_in(l), &weights) || __builtin_add_overflow(offset, weights, &grown) ||
          __builtin_add_overflow(grown, n_out(l), &grown))
        throw std::invalid_argument("layer sizes too large: the parameter count overflows");
      weight_offsets_.push_back(offset);
      bias_offsets_.push_back(offset + weights);
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

 private:
  std::vector<Index> sizes_;
  std::vector<Activation> activations_;
  Loss loss_;
  std::vector<Index> weight_offsets_, bias_offsets_;
  Index n_params_ = 0;
};

}  // namespace backprop
