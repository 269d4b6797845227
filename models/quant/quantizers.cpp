#include "models/quant/quantizers.h"


namespace troupe {
}  // namespace troupe
