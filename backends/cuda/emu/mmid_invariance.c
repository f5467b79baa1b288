/* backends/cuda/emu/mmid_invariance.c — emulation-only check that the CUDA
 * MUL_MAT_ID kernel (k_matmul.cu, k_mul_mat_id) gives, for every pick, bit
 * for bit what MATMUL gives for that one column (M = 1): the batch
 * invariance a mixture-of-experts layer needs (a verify batch's rows equal
 * the same tokens decoded alone). In one graph: a MUL_MAT_ID node over
 * w [K, N, E], x [K, X, R], ids [k, R], and per pick (j, r) a MATMUL of the
 * expert's view of the same w (offset e * nb2) with the view of the same x
 * column; memcmp of each pick's N outputs. Also each output against a double
 * reference of the dequantised weights (|err| <= 1e-5 * sum |w x| + 1e-6),
 * so a kernel wrong in the same way on both paths fails too. And an id out
 * of range, for MUL_MAT_ID and GATHER: an error at the next sync, no fault.
 * Cases per weight dtype: x shared by the picks (X = 1) and one column per
 * pick (X = k), each with x aligned (the matvec path) and with x 4 bytes off
 * 16 (both ops fall back to the tiled kernel's order); f32 adds K % 8 != 0
 * (tiled order too). R = 1 and R = 3 both, so a decode step and a verify
 * batch are compared with the same columns alone.
 * Sized for the CPU emulation (one OS thread per GPU thread):
 *   SX_EMU_TEST=backends/cuda/emu/mmid_invariance.c \
 *     sh backends/cuda/emu/run_emu_tests.sh [--dtype NAME]
 * Exit 0 pass, 1 fail, 77 no device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/sampler.h"
#include "ir/dtype.h"

enum { N = 9, E = 4, KP = 3 };

typedef struct {
    sx_device *dev;
    sx_sched *s;
    sx_graph *g;
} ctx;

static float rnd(sx_rng *r) { return (float)sx_rng_uniform(r) * 2.0f - 1.0f; }

/* One case: returns NULL on pass, else why (st set on a runtime error). */
static const char *run_case(ctx *c, sx_rng *rng, sx_dtype dt, int K, int X, int R, size_t x_off, sx_status *st, double *worst) {
    const size_t rs = sx_dtype_row_size(dt, K), wbytes = rs * N * E;
    float *wf = malloc(sizeof(float) * (size_t)K * N * E), *wd = malloc(sizeof(float) * (size_t)K);
    char *wq = malloc(wbytes);
    for (int i = 0; i < K * N * E; i++) wf[i] = rnd(rng);
    for (int i = 0; i < N * E; i++) sx_dtype_quantize_row(dt, wf + (size_t)i * K, wq + (size_t)i * rs, K);
    /* x: x_off / 4 leading floats, then [K, X, R] contiguous */
    const int64_t xn = (int64_t)(x_off / 4) + (int64_t)K * X * R;
    float *xf = malloc(sizeof(float) * (size_t)xn);
    for (int64_t i = 0; i < xn; i++) xf[i] = rnd(rng);
    int32_t ids[KP * 3];
    for (int r = 0; r < R; r++) { /* distinct experts per row, as a router's top-k */
        int perm[E];
        for (int e = 0; e < E; e++) perm[e] = e;
        for (int j = 0; j < KP; j++) {
            const int t = j + (int)(sx_rng_uniform(rng) * (E - j));
            const int tmp = perm[j];
            perm[j] = perm[t], perm[t] = tmp;
            ids[r * KP + j] = perm[j];
        }
    }
    const char *why = NULL;
    sx_graph_reset(c->g);
    sx_tensor *w = sx_graph_input(c->g, dt, 3, (int64_t[]){K, N, E}, "w");
    sx_tensor *xin = sx_graph_input(c->g, SX_DTYPE_F32, 1, (int64_t[]){xn}, "x");
    sx_tensor *idt = sx_graph_input(c->g, SX_DTYPE_I32, 2, (int64_t[]){KP, R}, "ids");
    sx_tensor *mm[KP * 3] = {0}, *out = NULL;
    if (w && xin && idt) {
        *st = sx_graph_set_input(c->g, w, wq, wbytes);
        if (*st == SX_OK) *st = sx_graph_set_input(c->g, xin, xf, sizeof(float) * (size_t)xn);
        if (*st == SX_OK) *st = sx_graph_set_input(c->g, idt, ids, sizeof(int32_t) * (size_t)(KP * R));
        sx_tensor *x = sx_graph_view(c->g, xin, 3, (int64_t[]){K, X, R}, (size_t[]){sizeof(float) * (size_t)K, sizeof(float) * (size_t)K * X}, x_off);
        out = sx_graph_add_mul_mat_id(c->g, w, x, idt);
        sx_graph_set_output(c->g, out);
        for (int r = 0; r < R; r++)
            for (int j = 0; j < KP; j++) {
                const int e = ids[r * KP + j], col = X == 1 ? 0 : j;
                sx_tensor *we = sx_graph_view(c->g, w, 2, (int64_t[]){K, N}, (size_t[]){rs}, (size_t)e * rs * N);
                sx_tensor *xc = sx_graph_view(c->g, xin, 2, (int64_t[]){K, 1}, (size_t[]){sizeof(float) * (size_t)K},
                                              x_off + sizeof(float) * (size_t)K * (size_t)(r * X + col));
                mm[r * KP + j] = sx_graph_add_matmul(c->g, we, xc);
                sx_graph_set_output(c->g, mm[r * KP + j]);
            }
    }
    if (*st == SX_OK) *st = sx_graph_status(c->g);
    if (*st == SX_OK) *st = sx_sched_compute(c->s, c->g);
    float got[N * KP * 3], one[N];
    if (*st == SX_OK) *st = sx_tensor_read(out, got, sizeof(float) * (size_t)N * KP * R);
    for (int p = 0; p < KP * R && *st == SX_OK && !why; p++) {
        *st = sx_tensor_read(mm[p], one, sizeof one);
        if (*st != SX_OK) break;
        if (memcmp(one, got + (size_t)p * N, sizeof one) != 0) why = "a pick differs from MATMUL on its column";
        const int r = p / KP, j = p % KP, e = ids[p];
        const float *xc = xf + x_off / 4 + (size_t)K * (size_t)(r * X + (X == 1 ? 0 : j));
        for (int n = 0; n < N && !why; n++) {
            sx_dtype_dequantize_row(dt, wq + (size_t)(e * N + n) * rs, wd, K);
            double acc = 0, mag = 0;
            for (int i = 0; i < K; i++) acc += (double)wd[i] * xc[i], mag += fabs((double)wd[i] * xc[i]);
            const double err = fabs(acc - got[p * N + n]);
            if (err > *worst) *worst = err;
            if (err > 1e-5 * mag + 1e-6) why = "an output is off the double reference";
        }
    }
    free(wf), free(wd), free(wq), free(xf);
    return why;
}

/* An id out of range must not be read through: the kernels skip it and the
 * next sync reports the error word. want: a substring of the message. */
static const char *bad_id_case(ctx *c, bool gather, const char *want) {
    sx_graph_reset(c->g);
    const int K = 32;
    float xf[K * N * E];
    for (int i = 0; i < K * N * E; i++) xf[i] = (float)i;
    const int32_t ids[2] = {1, gather ? 9999 : E};
    sx_tensor *ti = sx_graph_input_i32(c->g, ids, 2, "ids"), *out;
    if (gather) {
        sx_tensor *x = sx_graph_input_f32(c->g, xf, 2, (int64_t[]){N * E * 32 / 2, 2}, "x");
        sx_tensor *idr = sx_graph_reshape(c->g, ti, 2, (int64_t[]){1, 2});
        out = sx_graph_add_gather(c->g, x, idr);
    } else {
        sx_tensor *w = sx_graph_input_f32(c->g, xf, 3, (int64_t[]){K, N, E}, "w");
        sx_tensor *x = sx_graph_input_f32(c->g, xf, 2, (int64_t[]){K, 1}, "x");
        out = sx_graph_add_mul_mat_id(c->g, w, x, ti);
    }
    sx_graph_set_output(c->g, out);
    sx_status st = sx_graph_status(c->g);
    if (st != SX_OK) return sx_last_error();
    st = sx_sched_compute(c->s, c->g);
    if (st == SX_OK) {
        float got[N * 2];
        st = sx_tensor_read(out, got, sizeof(float) * (size_t)sx_tensor_nelements(out));
    }
    if (st == SX_OK) return "no error reported";
    if (!strstr(sx_last_error(), want)) return sx_last_error();
    /* the device must be usable afterwards (the error word is cleared) */
    return c->dev->vt->synchronize(c->dev) == SX_OK ? NULL : "the error stayed after it was reported";
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *only = NULL;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) only = argv[++i];
    ctx c = {0};
    sx_device_options o;
    sx_device_options_init(&o);
    if (sx_device_open_by_name(argv[1], &o, &c.dev) != SX_OK) {
        printf("SKIP: %s\n", sx_last_error());
        return 77;
    }
    if (sx_sched_create(&c.dev, 1, &c.s) != SX_OK || sx_graph_create(64, &c.g) != SX_OK) {
        printf("FAIL: %s\n", sx_last_error());
        return 1;
    }
    const sx_dtype dts[] = {SX_DTYPE_F32, SX_DTYPE_F16,  SX_DTYPE_BF16, SX_DTYPE_Q8_0, SX_DTYPE_Q4_0, SX_DTYPE_Q4_1,
                            SX_DTYPE_Q5_0, SX_DTYPE_Q5_1, SX_DTYPE_Q4_K, SX_DTYPE_Q5_K, SX_DTYPE_Q6_K,
                            SX_DTYPE_Q2_K, SX_DTYPE_Q3_K, SX_DTYPE_IQ4_NL, SX_DTYPE_IQ4_XS};
    int passed = 0, failed = 0;
    for (int di = 0; di < (int)(sizeof dts / sizeof dts[0]); di++) {
        const sx_dtype dt = dts[di];
        if (only && strcmp(only, sx_dtype_name(dt)) != 0) continue;
        const int K = sx_dtype_get(dt)->block_size == 256 ? 256 : 64;
        for (int v = 0; v < (dt == SX_DTYPE_F32 ? 10 : 8); v++) {
            const int X = v & 1 ? KP : 1, R = v & 2 ? 3 : 1, kk = v >= 8 ? 36 : K;
            const size_t x_off = v & 4 ? 4 : 0;
            sx_rng rng;
            sx_rng_seed(&rng, 777 + 50 * (uint64_t)di + (uint64_t)v);
            sx_status st = SX_OK;
            double worst = 0;
            const char *why = run_case(&c, &rng, dt, kk, X, R, x_off, &st, &worst);
            if (st != SX_OK) why = sx_last_error();
            printf("%s %s K=%d X=%d R=%d x_off=%zu: max err %.2g%s%s\n", why ? "FAIL" : "ok  ", sx_dtype_name(dt), kk, X, R, x_off, worst,
                   why ? ": " : "", why ? why : "");
            fflush(stdout);
            why ? failed++ : passed++;
        }
    }
    if (!only)
        for (int gi = 0; gi < 2; gi++) {
            const char *why = bad_id_case(&c, gi == 1, gi ? "gather: an id was out of range" : "mul_mat_id: an expert id was out of range");
            printf("%s %s with an id out of range%s%s\n", why ? "FAIL" : "ok  ", gi ? "GATHER" : "MUL_MAT_ID", why ? ": " : "", why ? why : "");
            why ? failed++ : passed++;
        }
    printf("%s: MUL_MAT_ID == MATMUL per column (bit for bit): %d passed, %d failed\n", argv[1], passed, failed);
    sx_graph_destroy(c.g);
    sx_sched_destroy(c.s);
    sx_device_close(c.dev);
    return failed ? 1 : 0;
}
