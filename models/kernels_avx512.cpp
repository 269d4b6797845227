#include "models/quant_kernels.h"

namespace troupe::kernels {
const KernelTable& avx512vnni_kernels() { return avx2_kernels(); }
}  // namespace troupe::kernels
