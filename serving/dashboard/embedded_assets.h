// The dashboard's files (index.html, dashboard.js, dashboard.css), compiled into the binary so
// that `freshet serve` needs nothing on disk and the page fetches nothing from elsewhere. The
// definition, embedded_assets.cc, is generated at build time from the files in this folder by
// embed_assets.cmake (serving/dashboard/CMakeLists.txt lists them).
//
// Thread-safe: immutable data.
#ifndef FRESHET_SERVING_DASHBOARD_EMBEDDED_ASSETS_H_
#define FRESHET_SERVING_DASHBOARD_EMBEDDED_ASSETS_H_

#include <cstddef>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace freshet::serving {

struct EmbeddedAsset {
  const char* name;  // the file name, "dashboard.js"
  const unsigned char* data;
  size_t size;

  absl::string_view bytes() const {
    return absl::string_view(reinterpret_cast<const char*>(data), size);
  }
};

// Every embedded file, byte for byte as it was in the source folder, in the order the build lists
// them.
absl::Span<const EmbeddedAsset> EmbeddedDashboardAssets();

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_DASHBOARD_EMBEDDED_ASSETS_H_
