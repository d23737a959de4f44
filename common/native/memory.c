// trim(): malloc_trim(0), which hands the free memory inside every malloc arena back to the kernel.
// glibc keeps what a thread freed in that thread's arena (compiler zones of V8's background
// threads, the DNS thread's, libuv's pool): ~10 MB of the idle agent's RSS after its start
// (common/malloc-trim.ts). Returns 1 when memory was released.
#define NAPI_VERSION 8
#include <malloc.h>
#include <node_api.h>

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int32(env, malloc_trim(0), &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
