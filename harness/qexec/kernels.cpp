#include "kernels.h"

#include <dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

char *dup(const std::string &s) {
  char *p = static_cast<char *>(malloc(s.size() + 1));
  memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

dnnl::engine &cpu() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// quantize rounds x to u8 codes u = clamp(nearbyint(x * inv) + zp, lo, hi) + off.
// Compiled for AVX-512 and AVX2 as well as the baseline; the loader picks.
__attribute__((target_clones("avx512f", "avx2", "default")))
void quantize(const float *x, int64_t n, float inv, float zp, float lo, float hi, float off, uint8_t *u) {
  for (int64_t i = 0; i < n; i++) {
    float q = std::nearbyint(x[i] * inv) + zp;
    q = std::min(std::max(q, lo), hi) + off;
    u[i] = static_cast<uint8_t>(static_cast<int32_t>(q));
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
float absmax(const float *x, int64_t n) {
  float a = 0;
  for (int64_t i = 0; i < n; i++) a = std::max(a, std::fabs(x[i]));
  return a;
}

// scale_rows sets y = y * s + b (b may be NULL).
__attribute__((target_clones("avx512f", "avx2", "default")))
void scale_rows(float *y, int64_t n, float s, const float *b) {
  if (b) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] * s + b[i];
  } else {
    for (int64_t i = 0; i < n; i++) y[i] *= s;
  }
}

}  // namespace

struct vb_qlinear {
  int64_t out, in;
  bool gelu, dynamic;
  std::vector<int8_t> w;  // [out, in]: the "ba" layout of a [in, out] matrix
  std::vector<float> wscale, bias;
  std::mutex mu;  // guards prims: the threads of a split pass share the layer
  std::map<int64_t, std::shared_ptr<dnnl::matmul>> prims;
  std::string impl;
};

static std::shared_ptr<dnnl::matmul> primitive(vb_qlinear *l, int64_t rows) {
  std::lock_guard<std::mutex> g(l->mu);
  auto it = l->prims.find(rows);
  if (it != l->prims.end()) return it->second;
  memory::desc src({rows, l->in}, dt::u8, tag::ab);
  memory::desc wei({l->in, l->out}, dt::s8, tag::ba);
  memory::desc dst({rows, l->out}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_output_scales(1 << 1, {DNNL_RUNTIME_F32_VAL});
  attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  if (l->gelu && !l->dynamic) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  std::unique_ptr<dnnl::matmul::desc> d;
  if (l->bias.empty() || l->dynamic) {
    d.reset(new dnnl::matmul::desc(src, wei, dst));
  } else {
    memory::desc bias({1, l->out}, dt::f32, tag::ab);
    d.reset(new dnnl::matmul::desc(src, wei, bias, dst));
  }
  dnnl::matmul::primitive_desc pd(*d, attr, cpu());
  l->impl = pd.impl_info_str();
  // Row counts are few (batch sizes times tokens, per thread share); a
  // caller that varies them without end still keeps memory bounded.
  if (l->prims.size() >= 64) l->prims.clear();
  auto p = std::make_shared<dnnl::matmul>(pd);
  l->prims[rows] = p;
  return p;
}

extern "C" {

vb_qlinear *vb_qlinear_new(const int8_t *w, int64_t out, int64_t in, const float *wscale,
                           const float *bias, int gelu, int dynamic, char **err) {
  try {
    auto l = new vb_qlinear;
    l->out = out;
    l->in = in;
    l->gelu = gelu != 0;
    l->dynamic = dynamic != 0;
    l->w.assign(w, w + out * in);
    l->wscale.assign(wscale, wscale + out);
    if (bias) l->bias.assign(bias, bias + out);
    return l;
  } catch (std::exception &e) {
    *err = dup(e.what());
    return nullptr;
  }
}

void vb_qlinear_free(vb_qlinear *l) { delete l; }

int vb_qlinear_forward(vb_qlinear *l, const float *x, int64_t rows, float scale, int32_t zp,
                       int32_t qmin, int32_t qmax, float *y, char **err) {
  try {
    thread_local std::vector<uint8_t> u;
    thread_local std::vector<float> oscale, bias, rowscale;
    u.resize(rows * l->in);
    oscale.resize(l->out);
    int32_t szp;
    if (l->dynamic) {
      // Each row on its own symmetric grid [-127, 127], stored shifted by
      // 128; the row's scale multiplies the output after the product.
      rowscale.resize(rows);
      for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * l->in;
        float a = absmax(xr, l->in);
        float s = a > 0 && std::isfinite(a) ? a / 127.f : 1.f;
        rowscale[r] = s;
        quantize(xr, l->in, 1.0f / s, 0.f, -127.f, 127.f, 128.f, u.data() + r * l->in);
      }
      for (int64_t i = 0; i < l->out; i++) oscale[i] = l->wscale[i];
      szp = 128;
    } else {
      // Grids below zero are stored shifted into u8, their zero point with them.
      int32_t off = qmin < 0 ? -qmin : 0;
      if (qmax + off > 255) {
        *err = dup("activation grid wider than 8 bits");
        return -1;
      }
      quantize(x, rows * l->in, 1.0f / scale, float(zp), float(qmin), float(qmax), float(off), u.data());
      for (int64_t i = 0; i < l->out; i++) oscale[i] = scale * l->wscale[i];
      szp = zp + off;
      // oneDNN 2.x adds the bias to the int32 sums before the output scale.
      if (!l->bias.empty()) {
        bias.resize(l->out);
        for (int64_t i = 0; i < l->out; i++) bias[i] = l->bias[i] / oscale[i];
      }
    }

    auto p = primitive(l, rows);
    auto &eng = cpu();
    thread_local dnnl::stream s(cpu());
    memory src({{rows, l->in}, dt::u8, tag::ab}, eng, u.data());
    memory wei({{l->in, l->out}, dt::s8, tag::ba}, eng, l->w.data());
    memory dst({{rows, l->out}, dt::f32, tag::ab}, eng, y);
    memory sc({{l->out}, dt::f32, tag::a}, eng, oscale.data());
    memory zpm({{1}, dt::s32, tag::a}, eng, &szp);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst},
        {DNNL_ARG_ATTR_OUTPUT_SCALES, sc}, {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zpm}};
    if (!l->dynamic && !l->bias.empty()) {
      args[DNNL_ARG_BIAS] = memory({{1, l->out}, dt::f32, tag::ab}, eng, bias.data());
    }
    p->execute(s, args);
    s.wait();
    if (l->dynamic) {
      const float *b = l->bias.empty() ? nullptr : l->bias.data();
      for (int64_t r = 0; r < rows; r++) scale_rows(y + r * l->out, l->out, rowscale[r], b);
    }
    return 0;
  } catch (std::exception &e) {
    *err = dup(e.what());
    return -1;
  }
}

char *vb_qlinear_impl(vb_qlinear *l) {
  std::lock_guard<std::mutex> g(l->mu);
  return l->impl.empty() ? nullptr : dup(l->impl);
}

char *vb_onednn_version(void) {
  const dnnl_version_t *v = dnnl_version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: isa = "isa " + std::to_string(int(dnnl::get_effective_cpu_isa()));
  }
  return dup(std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
             std::to_string(v->patch) + " " + isa);
}

int vb_onednn_int8_fast(void) {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx2_vnni:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx:
      return 2;
    case dnnl::cpu_isa::avx2:
    case dnnl::cpu_isa::avx512_core:
      return 1;
    default:
      return 0;
  }
}

}  // extern "C"
