// The float64 core (see backprop/instances.hpp).
#include "backprop/instances.hpp"

namespace backprop {
BACKPROP_ENTRY_POINTS(template, double)
}  // namespace backprop
