/* backends/cuda/emu/q8_0_set_rows.c — emulation-only check that SET_ROWS
 * into a q8_0 destination (k_rows.cu, k_set_rows_quant<SXT_Q8_0>) writes the very bytes
 * of sx_dtype_quantize_row (ir/dtype.c) on rows built to hit its edges,
 * which random data almost never does: exact ties x * (1 / d) = k + 0.5
 * (round half to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2), amax on a negative
 * element, an all-zero block, a block whose scale is subnormal or zero in
 * f16 while d is not, a scale that overflows f16, and 1 / d inexact.
 * Rows not named by ids must keep their bytes.
 * The emulation runs it as `cuda`; the program takes any backend name.
 *   SX_EMU_TEST=backends/cuda/emu/q8_0_set_rows.c \
 *     bash backends/cuda/emu/run_emu_tests.sh
 * Exit 0 pass, 1 fail, 77 no device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "ir/dtype.h"

enum { NB = 8, K = NB * 32, R = 5 }; /* 8 blocks per row, 5 cache rows */

/* block b of a source row: the edge it exercises */
static void fill_block(int b, int row, float *x) {
    for (int j = 0; j < 32; j++) {
        const float s = (float)(j - 16) + 0.5f * (float)row; /* varies per row */
        switch (b) {
        case 0: x[j] = j == 0 ? 127.0f : (float)(j % 9) - 4.0f + 0.5f; break;        /* d = 1: ties k + 0.5 */
        case 1: x[j] = j == 5 ? -127.0f : -((float)(j % 7) + 0.5f); break;          /* amax negative, negative ties */
        case 2: x[j] = 0.0f; break;                                                   /* all zero: d = 0, id = 0 */
        case 3: x[j] = 1e-5f * s; break;                                              /* f16(d) subnormal */
        case 4: x[j] = 1e-9f * s; break;                                              /* f16(d) = 0, d > 0 */
        case 5: x[j] = 1e7f * s; break;                                               /* f16(d) = inf */
        case 6: x[j] = (float)(j == 3 ? 1.0 : sin(0.7 * j + row)); break;             /* 1 / d inexact */
        default: x[j] = j == 31 ? 254.0f : (float)(2 * j - 31); break;              /* d = 2: odd x, x / 2 ties */
        }
    }
}

static int run(const char *backend) {
    sx_device *dev = NULL;
    sx_sched *s = NULL;
    sx_graph *g = NULL;
    sx_device_options o;
    sx_device_options_init(&o);
    if (sx_device_open_by_name(backend, &o, &dev) != SX_OK) {
        printf("SKIP: %s\n", sx_last_error());
        return 77;
    }
    if (sx_sched_create(&dev, 1, &s) != SX_OK || sx_graph_create(16, &g) != SX_OK) {
        printf("FAIL setup: %s\n", sx_last_error());
        return 1;
    }
    const size_t rs = sx_dtype_row_size(SX_DTYPE_Q8_0, K);
    uint8_t init[R * 34 * NB], want[sizeof init], got[sizeof init];
    for (size_t i = 0; i < sizeof init; i++) init[i] = (uint8_t)(i * 37 + 11); /* distinct old bytes */
    float src[3 * K];
    for (int r = 0; r < 3; r++)
        for (int b = 0; b < NB; b++) fill_block(b, r, src + r * K + b * 32);
    const int32_t ids[3] = {3, 0, 4};
    memcpy(want, init, R * rs);
    for (int r = 0; r < 3; r++) sx_dtype_quantize_row(SX_DTYPE_Q8_0, src + r * K, want + (size_t)ids[r] * rs, K);

    sx_tensor *dst = sx_graph_input(g, SX_DTYPE_Q8_0, 2, (int64_t[]){K, R}, "cache");
    sx_status st = dst ? sx_graph_set_input(g, dst, init, R * rs) : sx_graph_status(g);
    sx_tensor *node = NULL;
    if (st == SX_OK) {
        node = sx_graph_add_set_rows(g, dst, sx_graph_input_f32(g, src, 2, (int64_t[]){K, 3}, "src"), sx_graph_input_i32(g, ids, 3, "ids"));
        st = sx_graph_status(g);
    }
    if (st == SX_OK) {
        sx_graph_set_output(g, node);
        st = sx_sched_compute(s, g);
    }
    if (st == SX_OK) st = sx_tensor_read(node, got, R * rs);
    int bad = 0;
    if (st != SX_OK) {
        printf("FAIL %s: %s\n", backend, sx_last_error());
        bad = 1;
    } else {
        for (int r = 0; r < R; r++)
            for (int b = 0; b < NB; b++) {
                const size_t off = (size_t)r * rs + (size_t)b * 34;
                if (memcmp(got + off, want + off, 34) != 0) {
                    int j = 0;
                    while (j < 34 && got[off + j] == want[off + j]) j++;
                    printf("FAIL %s: row %d block %d byte %d: got 0x%02x want 0x%02x\n", backend, r, b, j, got[off + j], want[off + j]);
                    bad++;
                }
            }
    }
    printf("%s: SET_ROWS q8_0 edge rows (ties, zero, f16 scale subnormal/zero/inf), bytes vs ir/dtype.c: %s (%d of %d blocks differ)\n", backend,
           bad ? "FAIL" : "ok", bad, R * NB);
    sx_graph_destroy(g);
    sx_sched_destroy(s);
    sx_device_close(dev);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    return run(argv[1]);
}
