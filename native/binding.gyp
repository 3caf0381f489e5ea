{
  "targets": [
    {
      "target_name": "objmount_fuse3",
      "sources": [
        "src/addon.cc",
        "src/session.cc",
        "src/ll_ops.cc",
        "src/replies.cc",
        "src/js_calls.cc",
        "src/nodes.cc",
        "src/page_store.cc",
        "src/block_pool.cc",
        "src/large_buffer.cc",
        "src/page_cache.cc",
        "src/sha256.cc"
      ],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "<!@(pkg-config --cflags fuse3)"],
      "cflags": ["<!@(pkg-config --cflags fuse3)"],
      "defines": ["NAPI_VERSION=8", "FUSE_USE_VERSION=314"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    }
  ]
}
