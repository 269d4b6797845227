#include "models/convert/quantize_model.h"

#include <ATen/Parallel.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "models/arch/architecture.h"
#include "models/arch/open_checkpoint.h"
#include "models/format/gguf_file.h"
#include "models/format/model_metadata.h"
#include "models/quant/quant_formats.h"
#include "models/quant/quantizers.h"
#include "models/quant/type_traits.h"

namespace troupe {
namespace {

// Drops this process's pages of a finished input tensor (they stay in the page cache), so
// reading a 14 GB model does not leave 14 GB resident.
void release_pages(const uint8_t* data, size_t n) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + n) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::string type_name(uint32_t t) { return dtype_name(t); }

}  // namespace

RecipeModelShape recipe_model_shape(const Checkpoint& ckpt) {
  RecipeModelShape s;
  const auto& c = ckpt.config();
  s.n_layer = c.n_layer;
  s.n_gqa = c.n_head_kv > 0 ? c.n_head / c.n_head_kv : 1;
  s.has_output_weight = ckpt.has_tensor("output.weight");
  return s;
}

uint32_t add_converted_tensor(GgufWriter& w, const Checkpoint& ckpt, const std::string& name, const QuantRecipe* recipe,
                              const RecipeModelShape& shape, std::function<void(uint64_t)> done) {
  // The directory entry only: the bytes are read when the writer asks for them.
  TensorView info = ckpt.tensor(name);
  const auto source_type = static_cast<uint32_t>(info.dtype);
  const std::vector<int64_t> dims = info.shape;
  const uint64_t in_bytes = info.nbytes;
  info = {};
  const uint32_t type = recipe ? recipe_tensor_type(*recipe, name, dims, source_type, shape) : source_type;
  if (type == source_type) {
    w.add_tensor(name, static_cast<DType>(type), dims, in_bytes, [&ckpt, name, done](uint8_t* out, size_t n) {
      const TensorView t = ckpt.tensor(name);
      std::memcpy(out, t.data, n);
      release_pages(t.data, t.nbytes);
      if (done) done(t.nbytes);
    });
    return type;
  }
  const TypeTraits* q = find_type_traits(type);
  if (!q || !q->quantize_row) throw std::invalid_argument(name + ": no quantizer for type " + type_name(type));
  const int64_t cols = dims.empty() ? 1 : dims.back();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < dims.size(); ++i) rows *= dims[i];
  const size_t out_row = dtype_row_bytes(q->type, cols);
  w.add_tensor(name, static_cast<DType>(type), dims, out_row * static_cast<size_t>(rows),
               [&ckpt, name, q, cols, rows, out_row, done](uint8_t* out, size_t) {
                 const TensorView t = ckpt.tensor(name);
                 const size_t in_row = t.nbytes / static_cast<size_t>(rows);
                 at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
                   std::vector<float> row(static_cast<size_t>(cols));
                   for (int64_t r = begin; r < end; ++r) {
                     dequantize(t.dtype, t.data + static_cast<size_t>(r) * in_row, row.data(), cols);
                     q->quantize_row(row.data(), out + static_cast<size_t>(r) * out_row, cols);
                   }
                 });
                 release_pages(t.data, t.nbytes);
                 if (done) done(t.nbytes);
               });
  return type;
}

QuantizeSummary quantize_model(const std::string& model_path, const QuantRecipe& recipe, const std::string& out_path,
                               const QuantizeProgressFn& progress) {
  const auto ckpt = open_checkpoint(model_path);
  if (ckpt->shard_info().is_shard)
    throw CheckpointError(model_path + ": is a stage shard; quantize the whole model (or use split --type)");
  GgufWriter w;
  struct stat st {};
  if (::stat(model_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    w.copy_metadata(GgufFile(model_path));  // keeps chat templates and all
  } else {
    write_config_metadata(w, ckpt->config(), architecture(ckpt->config().arch).format);
    if (ckpt->has_vocab()) write_vocab_metadata(w, ckpt->vocab());
  }
  w.set_u32("general.file_type", recipe.file_type);
  w.set_u32("general.quantization_version", 2);

  const RecipeModelShape shape = recipe_model_shape(*ckpt);
  const auto names = ckpt->tensor_names();
  QuantizeSummary summary;
  auto state = std::make_shared<QuantizeProgress>();
  state->tensors_total = static_cast<int64_t>(names.size());
  for (const auto& name : names) state->bytes_total += ckpt->tensor_nbytes(name);
  for (const auto& name : names) {
    summary.tensor_types[name] = add_converted_tensor(w, *ckpt, name, &recipe, shape, [state, name, progress](uint64_t b) {
      ++state->tensors_done;
      state->bytes_done += b;
      state->tensor = name;
      if (progress) progress(*state);
    });
  }
  w.write(out_path);
  summary.bytes_in = state->bytes_total;
  if (::stat(out_path.c_str(), &st) == 0) summary.bytes_out = static_cast<uint64_t>(st.st_size);
  return summary;
}

}  // namespace troupe
