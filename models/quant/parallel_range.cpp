#include "models/quant/parallel_range.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>

namespace troupe {

// at::parallel_for is a header template whose OpenMP pragmas only take effect in code compiled
// with -fopenmp; without it (troupe's build today) it silently runs on one thread. So the split
// goes through ATen's own compiled loop, TensorIterator::for_each, over a byte per index: each
// task's data pointer minus the base is its first index.
void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
#ifdef _OPENMP
  at::parallel_for(0, n, grain, f);
#else
  if (n <= grain || at::get_num_threads() <= 1 || at::in_parallel_region()) return f(0, n);
  const at::Tensor index = at::empty({n}, at::kByte);
  const char* base = static_cast<const char*>(index.data_ptr());
  at::TensorIteratorConfig().add_input(index).check_all_same_dtype(false).build().for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        for (int64_t j = 0; j < size1; ++j) {  // one-dimensional: size1 is 1
          const int64_t begin = data[0] + j * strides[1] - base;
          f(begin, begin + size0);
        }
      },
      grain);
#endif
}

}  // namespace troupe
