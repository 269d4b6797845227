#include "actors/stage_runtime_module.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace troupe {

std::string find_stage_runtime_module(const std::string& exe_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const fs::path& p : {fs::path(exe_dir) / kStageRuntimeModule,
                            fs::path(exe_dir) / ".." / "lib" / "troupe" / kStageRuntimeModule})
    if (fs::is_regular_file(p, ec)) return fs::weakly_canonical(p, ec).string();
  return "";
}

std::string stage_runtime_layout() {
  return "StageRuntime " + std::to_string(sizeof(StageRuntime)) + ", StageConfig " +
         std::to_string(sizeof(StageConfig)) + ", StageSpec " + std::to_string(sizeof(StageSpec)) +
         ", MachineSpeed " + std::to_string(sizeof(MachineSpeed));
}

StageRuntime open_stage_runtime_module(const std::string& path, int threads) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw std::runtime_error("cannot open the stage runtime " + path + ": " + dlerror());
  auto entry = reinterpret_cast<StageRuntimeEntry>(dlsym(handle, kStageRuntimeEntry));
  if (!entry)
    throw std::runtime_error("the stage runtime " + path + " has no " + kStageRuntimeEntry +
                             " (not troupe's, or from another version)");
  StageRuntime runtime;
  if (!entry(&runtime, threads, stage_runtime_layout().c_str()))
    throw std::runtime_error("the stage runtime " + path + " was built from other sources than this caf-node (" +
                             stage_runtime_layout() + "): rebuild or reinstall troupe");
  return runtime;
}

namespace {

// Opened once, by whichever call comes first, and never closed (LibTorch cannot be unloaded).
class ModuleRuntime {
 public:
  ModuleRuntime(std::string path, int threads) : path_(std::move(path)), threads_(threads) {}

  const StageRuntime& get() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!runtime_) {
      const auto start = std::chrono::steady_clock::now();
      runtime_ = open_stage_runtime_module(path_, threads_);
      spdlog::info("opened the stage runtime {} in {} ms (LibTorch and the model code; kept from now on)", path_,
                   std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
    }
    return *runtime_;
  }

 private:
  const std::string path_;
  const int threads_;
  std::mutex mutex_;
  std::optional<StageRuntime> runtime_;
};

}  // namespace

StageRuntime stage_runtime_module(const std::string& path, int threads,
                                  std::function<MachineSpeed(int, const std::function<bool()>&)> probe_speed) {
  auto module = std::make_shared<ModuleRuntime>(path, threads);
  StageRuntime r;
  r.stage_bytes = [module](const StageConfig& cfg) { return module->get().stage_bytes(cfg); };
  r.spawn_stage = [module](caf::actor_system& sys, const StageConfig& cfg, const caf::actor& owner) {
    return module->get().spawn_stage(sys, cfg, owner);
  };
  r.probe_speed = std::move(probe_speed);
  return r;
}

}  // namespace troupe
