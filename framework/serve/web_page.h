#pragma once
// The chat and cluster page `troupe serve` shows at /: framework/serve/web/index.html,
// compiled into the binary by CMake (no files to install, no CDN: works offline).
#include <string>

namespace troupe {

const std::string& web_page_html();

}  // namespace troupe
