// See native.h. Every call into libtorch is wrapped in try/catch: a C++
// exception must never unwind into Go.

#include "native.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace {

// Itanium-mangled names of the libtorch functions used here. They are
// stable across libtorch releases (at:: free functions, unchanged
// signatures since 1.x).
// std::string at::show_config(), new (C++11) string ABI. Pre-C++11-ABI
// builds export it without the B5cxx11 tag; its std::string layout differs
// from the one compiled here, so that variant is deliberately not used.
const char kShowConfig[] = "_ZN2at11show_configB5cxx11Ev";

template <typename F>
F lookup(const char *name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

void setErr(char **err, const char *msg) {
  if (err != nullptr) *err = strdup(msg);
}

void setErr(char **err, const std::string &msg) { setErr(err, msg.c_str()); }

}  // namespace

extern "C" {


char *vb_show_config(char **err) {
  auto f = lookup<std::string (*)()>(kShowConfig);
  if (f == nullptr) return nullptr;
  try {
    return strdup(f().c_str());
  } catch (const std::exception &e) {
    setErr(err, std::string("at::show_config: ") + e.what());
  } catch (...) {
    setErr(err, "at::show_config: unknown C++ exception");
  }
  return nullptr;
}

char *vb_symbol_library(const char *symbol) {
  void *p = dlsym(RTLD_DEFAULT, symbol);
  if (p == nullptr) return nullptr;
  Dl_info info;
  if (dladdr(p, &info) == 0 || info.dli_fname == nullptr) return nullptr;
  return strdup(info.dli_fname);
}

char *vb_openblas_config(void) {
  auto f = lookup<char *(*)()>("openblas_get_config");
  if (f == nullptr) return nullptr;
  const char *s = f();
  return s == nullptr ? nullptr : strdup(s);
}

int vb_openblas_parallel(void) {
  auto f = lookup<int (*)()>("openblas_get_parallel");
  return f == nullptr ? -1 : f();
}

char *vb_mkl_version(void) {
  auto f = lookup<void (*)(char *, int)>("mkl_get_version_string");
  if (f == nullptr) return nullptr;
  char buf[256] = {0};
  f(buf, sizeof buf - 1);
  return strdup(buf);
}

}  // extern "C"
