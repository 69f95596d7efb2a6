// The float32 core (see backprop/instances.hpp).
#include "backprop/instances.hpp"

namespace backprop {
BACKPROP_ENTRY_POINTS(template, float)
}  // namespace backprop
