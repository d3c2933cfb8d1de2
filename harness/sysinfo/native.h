// Run-time probes of the libtorch and BLAS this process loaded. The
// functions look symbols up with dlsym, so they need no libtorch headers
// and work with Debian's libtorch and official libtorch trees alike.
#ifndef VITBENCH_SYSINFO_NATIVE_H
#define VITBENCH_SYSINFO_NATIVE_H

#ifdef __cplusplus
extern "C" {
#endif

// (free it with free).


// vb_show_config returns at::show_config() as a malloc'ed string, or NULL
// when the symbol is not found (or *err is set when it threw).
char *vb_show_config(char **err);

// vb_symbol_library returns the path of the loaded object that defines
// symbol as the global lookup resolves it, or NULL.
char *vb_symbol_library(const char *symbol);

// vb_openblas_config returns openblas_get_config() copied, or NULL when no
// OpenBLAS is loaded.
char *vb_openblas_config(void);

// vb_openblas_parallel returns openblas_get_parallel(): 0 sequential,
// 1 pthreads, 2 OpenMP; -1 when no OpenBLAS is loaded.
int vb_openblas_parallel(void);

// vb_mkl_version returns MKL's version string, or NULL when no MKL symbol
// is visible.
char *vb_mkl_version(void);

#ifdef __cplusplus
}
#endif

#endif
