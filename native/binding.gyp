{
  "includes": ["libtorch.gypi"],
  "targets": [
    {
      "target_name": "embtune_torch",
      "sources": ["src/addon.cc", "src/tensor_table.cc", "src/ops.cc", "src/search_ops.cc", "src/lora_ops.cc", "src/fused_ops.cc", "src/attention_inference.cc", "src/cpu_allocator.cc", "src/distributed_ops.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "_GLIBCXX_USE_CXX11_ABI=1"],
      "cflags!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-fopenmp", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
