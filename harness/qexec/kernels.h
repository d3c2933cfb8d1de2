// Integer linear layers executed by oneDNN's matmul: activations quantized
// to u8 on the way in, s8 weights, int32 accumulation, float32 out with the
// scales, bias and an optional GELU applied by the same primitive.
#ifndef VITBENCH_QEXEC_KERNELS_H
#define VITBENCH_QEXEC_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vb_qlinear vb_qlinear;

// vb_qlinear_new prepares a layer y = x W^T + b from integer weights
// w [out, in] (the grid values less their zero point), their scale per
// output channel, a float32 bias (NULL for none), gelu (nonzero:
// y = GELU(x W^T + b), erf form; not with dynamic) and dynamic (nonzero:
// each input row is quantized on its own symmetric 8-bit grid). It copies
// what it keeps. On error it returns NULL and sets *err (free it with free).
vb_qlinear *vb_qlinear_new(const int8_t *w, int64_t out, int64_t in, const float *wscale,
                           const float *bias, int gelu, int dynamic, char **err);

void vb_qlinear_free(vb_qlinear *l);

// vb_qlinear_forward computes y [rows, out] from x [rows, in], both
// row-major float32. A static layer rounds x to
// clamp(nearbyint(x / scale) + zp, qmin, qmax), as PyTorch's
// fake_quantize_per_tensor_affine does (qmax - qmin < 256); a dynamic one
// ignores scale, zp, qmin and qmax and rounds each row r to
// nearbyint(x / s_r), s_r = max|x_r| / 127. Returns 0, or -1 with *err set.
int vb_qlinear_forward(vb_qlinear *l, const float *x, int64_t rows, float scale, int32_t zp,
                       int32_t qmin, int32_t qmax, float *y, char **err);

// vb_qlinear_impl is the oneDNN implementation the layer ran last (e.g.
// "gemm:jit"), as a malloc'ed string; NULL before its first run.
char *vb_qlinear_impl(vb_qlinear *l);

// vb_onednn_version is oneDNN's version and the CPU instruction set its
// kernels use, e.g. "2.6.3 avx2_vnni", as a malloc'ed string.
char *vb_onednn_version(void);

// vb_onednn_int8_fast reports whether the CPU has instructions for fast
// int8 products: 2 for VNNI (AVX512_VNNI or AVX_VNNI) or AMX, 1 for AVX2
// without VNNI, 0 otherwise.
int vb_onednn_int8_fast(void);

#ifdef __cplusplus
}
#endif

#endif
