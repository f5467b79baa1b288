/* tests/test_models.c — model golden test: greedy decoding of a model on
 * BACKEND and the CPU reference run in lockstep on the backend's greedy
 * choices; at every step the logits must agree within a relative tolerance
 * (1e-3 for f32/f16/bf16 weights, 5e-2 for quantised ones, whose fast paths
 * use 8-bit activations), and the argmax must be the same unless the
 * reference sees a near tie there that the measured logit error explains
 * (gap <= 2 x error and <= --tie; reported). The generation loop must pick
 * the same tokens, and chunked prefill (n_batch 3) must equal one-shot.
 *
 * With --ngl LIST (e.g. 0,1,2,3) every model runs once per value with only
 * the last N blocks on BACKEND (llama.cpp's -ngl), the rest on the CPU: the
 * same agreement must hold, the weights must sit where -ngl says, and a
 * decode step must cross devices only at the split (3 device segments).
 *
 * With --fit: -ngl auto under device budgets (SPECEXIT_FIT_MEMORY) instead.
 * With --cpu-moe N: the experts of the first N blocks on the CPU (MoE models).
 *
 *   test_models BACKEND MODEL.gguf... [--steps N] [--tie GAP] [--kv f16|f32|q8_0|q4_0] [--ngl LIST] [--fit] [--cpu-moe N]
 * Exit 77 when BACKEND has no device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "core/specexit.h"
#include "tests/check.h"


static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static sx_kv_type g_kv; /* --kv TYPE: both sides' KV cache (q8_0: the quantized cache, exact across backends) */
static float g_ts[SX_MAX_DEVICES]; /* --ts A,B: a split's shares */
static int g_ngl = -1;  /* the backend side's -ngl */
static int g_cpu_moe;   /* the backend side's --n-cpu-moe */

/* --n-cpu-moe placed the expert stacks of exactly the first N blocks on the
 * CPU, each block's router and attention where the block is (-ngl) */
static void engine_internal_check_cpu_moe(const char *path, const sx_engine *e, const sx_engine_info *info) {
    const sx_model *m = e->model;
    const int want = m->hp.n_expert ? (g_cpu_moe < m->hp.n_layer ? g_cpu_moe : m->hp.n_layer) : 0;
    CHECK(info->n_cpu_moe == want, "%s: --n-cpu-moe %d placed %d blocks' experts on the CPU, expected %d", path, g_cpu_moe, info->n_cpu_moe, want);
    for (int il = 0; il < m->hp.n_layer && m->hp.n_expert; il++) {
        const sx_layer *ly = &m->layers[il];
        const bool on_cpu = ly->gate_exps->buffer->dev == e->cpu && ly->up_exps->buffer->dev == e->cpu && ly->down_exps->buffer->dev == e->cpu;
        CHECK(on_cpu == (il < want || ly->dev == e->cpu) && ly->gate_inp->buffer->dev == ly->dev && ly->wq->buffer->dev == ly->dev,
              "%s: --n-cpu-moe %d: block %d's experts on %s, router and attention on %s", path, g_cpu_moe, il,
              ly->gate_exps->buffer->dev->info.name, ly->gate_inp->buffer->dev->info.name);
    }
    if (want) printf("%s: --n-cpu-moe %d: %.1f of %.1f KiB of weights on the device\n", path, g_cpu_moe, info->device_weight_bytes / 1024.0,
                     info->weight_bytes / 1024.0);
}

static sx_status open_engine(const char *backend, const char *path, sx_engine **e, sx_session **s, int n_batch) {
    sx_engine_options eo;
    sx_engine_options_init(&eo);
    eo.model_path = path;
    eo.backend = backend;
    if (strcmp(backend, "cpu-ref") != 0) eo.n_gpu_layers = g_ngl, eo.n_cpu_moe = g_cpu_moe;
    memcpy(eo.tensor_split, g_ts, sizeof g_ts);
    eo.n_threads = 2;
    SX_RETURN_IF_ERROR(sx_engine_create(&eo, e));
    sx_session_options so;
    sx_session_options_init(&so);
    so.n_ctx = 256;
    so.n_batch = n_batch;
    so.kv_type = g_kv;
    return sx_session_create(*e, &so, s);
}

static bool collect(int32_t tok, const char *piece, size_t len, void *user) {
    (void)piece, (void)len;
    int32_t **out = user;
    *(*out)++ = tok;
    return true;
}

static void test_model(const char *backend, const char *path, int steps, float tie) {
    sx_engine *e = NULL, *eref = NULL;
    sx_session *s = NULL, *sref = NULL;
    sx_status st = open_engine(backend, path, &e, &s, 0);
    if (st == SX_OK) st = open_engine("cpu-ref", path, &eref, &sref, 0);
    CHECK(st == SX_OK, "%s: open: %s", path, sx_last_error());
    if (st != SX_OK) goto done;
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    const int V = info.n_vocab;
    const bool split = g_ngl >= 0 && g_ngl <= info.n_layer && e->cpu; /* e->cpu: a device that is not the CPU */
    if (g_cpu_moe && e->cpu) { /* --n-cpu-moe: the experts of the first blocks stay on the CPU (MoE models only) */
        engine_internal_check_cpu_moe(path, e, &info);
    }
    if (g_ngl >= 0 && e->cpu) {
        printf("%s on %s: -ngl %d: %d of %d blocks and %.1f of %.1f KiB of weights on the device, output layer on the %s\n", path, backend,
               g_ngl, info.n_gpu_layers, info.n_layer, info.device_weight_bytes / 1024.0, info.weight_bytes / 1024.0,
               info.output_on_device ? "device" : "CPU");
        CHECK(info.n_gpu_layers == (split ? g_ngl : info.n_layer) && info.output_on_device == !split, "%s: -ngl %d placed %d blocks (output %d)",
              path, g_ngl, info.n_gpu_layers, info.output_on_device);
        /* a split over several devices binds rope_freqs (bytes) on each */
        CHECK(split ? info.device_weight_bytes < info.weight_bytes && (g_ngl > 0) == (info.device_weight_bytes > 0)
                    : info.device_weight_bytes >= info.weight_bytes && info.device_weight_bytes <= info.weight_bytes + (info.n_devices - 1) * 4096ull,
              "%s: -ngl %d: %llu of %llu weight bytes on the device", path, g_ngl, (unsigned long long)info.device_weight_bytes,
              (unsigned long long)info.weight_bytes);
    }
    /* a split over several GPUs (--backend A,B): consecutive blocks per device, as many as the shares say */
    int n_listed = 1, runs = 0;
    for (const char *p = backend; *p; p++) n_listed += *p == ',' || *p == '/';
    if (n_listed > 1) {
        int sum = 0, with = 0;
        float tot = 0;
        for (int d = 0; d < info.n_devices; d++) sum += info.device_layers[d], with += info.device_layers[d] > 0, tot += g_ts[d];
        CHECK(info.n_devices == n_listed && sum == info.n_gpu_layers, "%s on %s: %d devices hold %d blocks, %d offloaded", path, backend,
              info.n_devices, sum, info.n_gpu_layers);
        for (int d = 0; d < info.n_devices && tot > 0; d++) { /* the shares, rounded at the run boundaries */
            const int want_lo = (int)(info.n_gpu_layers * g_ts[d] / tot) - 1, want_hi = (int)(info.n_gpu_layers * g_ts[d] / tot) + 1;
            CHECK(info.device_layers[d] >= want_lo && info.device_layers[d] <= want_hi, "%s on %s: device %d holds %d blocks for a share %.2f of %d",
                  path, backend, d, info.device_layers[d], g_ts[d] / tot, info.n_gpu_layers);
        }
        if (tot == 0 && info.n_gpu_layers >= info.n_devices) /* equal devices, no shares: every one gets blocks */
            CHECK(with == info.n_devices, "%s on %s: only %d of %d devices hold blocks", path, backend, with, info.n_devices);
        runs = with;
        printf("%s on %s: split", path, backend);
        for (int d = 0; d < info.n_devices; d++) printf(" %d", info.device_layers[d]);
        printf(" blocks over %s\n", info.device);
    }
    int32_t prompt[12];
    for (int i = 0; i < 12; i++) prompt[i] = (int32_t)((i * 7919 + 13) % (V - 8)); /* fixed, varied ids */

    /* lockstep: both models see the backend's greedy choices */
    const bool plain = !strcmp(info.quant, "f32") || !strcmp(info.quant, "f16") || !strcmp(info.quant, "bf16");
    /* quantised types: 8-bit activations in the fast paths; a q4_0 cache: where
     * the two sides' K or V differ in the last bits, a value near a code
     * boundary moves by a whole code, 1/8 of its block's max (worst seen on
     * cpu 6.9%, so twice that and a little more) */
    const double rel_tol = g_kv == SX_KV_Q4_0 ? 0.15 : plain ? 1e-3 : 0.05;
    float *lb = malloc(sizeof(float) * (size_t)V), *lr = malloc(sizeof(float) * (size_t)V);
    int32_t *chosen = calloc((size_t)steps + 1, sizeof(int32_t));
    st = sx_session_eval(s, prompt, 12, lb);
    if (st == SX_OK) st = sx_session_eval(sref, prompt, 12, lr);
    int ties = 0;
    double worst_rel = 0;
    for (int i = 0; i < steps && st == SX_OK; i++) {
        double maxd = 0, maxv = 0;
        for (int k = 0; k < V; k++) {
            maxd = fmax(maxd, fabs((double)lb[k] - lr[k]));
            maxv = fmax(maxv, fabs((double)lr[k]));
        }
        worst_rel = fmax(worst_rel, maxd / (maxv + 1e-9));
        CHECK(maxd <= rel_tol * maxv, "%s on %s: step %d: logits differ by %.4g (max |logit| %.4g, tolerance %.3g relative)", path, backend, i,
              maxd, maxv, rel_tol);
        const int tb = argmax(lb, V), tr = argmax(lr, V);
        if (tb != tr) {
            const double gap = (double)lr[tr] - lr[tb];
            /* a different choice is only acceptable where the numeric difference explains it */
            CHECK(gap <= 2 * maxd && gap <= tie, "%s on %s: step %d: token %d, reference %d (reference gap %.5f, logit error %.5f)", path,
                  backend, i, tb, tr, gap, maxd);
            ties++;
            printf("note: %s step %d: near tie, reference prefers %d over %d by %.5f (logit error %.5f)\n", path, i, tr, tb, gap, maxd);
        }
        chosen[i] = tb;
        st = sx_session_eval(s, &chosen[i], 1, lb);
        if (st == SX_OK && i == 0 && (g_ngl >= 0 || runs > 1) && e->cpu) {
            /* the residual crosses at the splits only: CPU, device, CPU (output) with -ngl; one segment per device of a split */
            int segments, copies;
            sx_sched_last_stats(s->sched, &segments, &copies);
            /* a split: one per device, the CPU's two with -ngl, and one more where tied embeddings start on the last device */
            const int want = runs > 1 ? runs + (split ? 2 : 0) : !split || g_ngl == 0 ? 1 : 3;
            CHECK(segments == want || (runs > 1 && !split && segments == want + 1), "%s on %s -ngl %d: a decode step ran in %d device segments (%d copies), expected %d", path, backend, g_ngl,
                  segments, copies, want);
        }
        if (st == SX_OK) st = sx_session_eval(sref, &chosen[i], 1, lr);
    }
    CHECK(st == SX_OK, "%s: eval: %s", path, sx_last_error());
    printf("%s on %s: %d steps, %d near ties, worst relative logit error %.2e\n", path, backend, steps, ties, worst_rel);

    /* the generation loop (argmax read back from the device) picks the same tokens */
    int32_t *gen = calloc((size_t)steps + 1, sizeof(int32_t)), *w = gen;
    sx_generate_params gp;
    sx_generate_params_init(&gp);
    gp.n_predict = steps;
    gp.sampling.temp = 0;
    gp.ignore_eos = true;
    sx_generate_stats gs;
    sx_session_reset(s);
    st = sx_generate(s, prompt, 12, &gp, collect, &w, &gs);
    CHECK(st == SX_OK && gs.n_generated_tokens == steps, "%s on %s: generate: %s", path, backend, sx_last_error());
    CHECK(st != SX_OK || memcmp(gen, chosen, sizeof(int32_t) * (size_t)steps) == 0, "%s on %s: sx_generate differs from step-wise argmax", path, backend);
    free(lb), free(lr), free(chosen);

    /* chunked prefill == one-shot prefill (same backend) */
    sx_session *s3 = NULL;
    sx_session_options so;
    sx_session_options_init(&so);
    so.n_ctx = 256;
    so.n_batch = 3;
    so.kv_type = g_kv;
    float *l1 = malloc(sizeof(float) * (size_t)V), *l2 = malloc(sizeof(float) * (size_t)V);
    sx_session_reset(s);
    st = sx_session_create(e, &so, &s3);
    if (st == SX_OK) st = sx_session_eval(s, prompt, 12, l1);
    if (st == SX_OK) st = sx_session_eval(s3, prompt, 12, l2);
    CHECK(st == SX_OK, "%s: chunked prefill: %s", path, sx_last_error());
    double maxd = 0, maxv = 0;
    for (int i = 0; i < V && st == SX_OK; i++) {
        maxd = fmax(maxd, fabs(l1[i] - l2[i]));
        maxv = fmax(maxv, fabs(l1[i]));
    }
    CHECK(maxd <= 1e-3 * (maxv + 1), "%s: chunked prefill logits differ by %.3g (max |logit| %.3g)", path, maxd, maxv);
    sx_session_destroy(s3);
    free(l1), free(l2), free(gen);
done:
    sx_session_destroy(s), sx_session_destroy(sref);
    sx_engine_destroy(e), sx_engine_destroy(eref);
}

/* -ngl auto with a device budget (SPECEXIT_FIT_MEMORY): the chosen block
 * count must fit the budget, one more must not, and a budget for the whole
 * model must put the whole model (output layer too) on the device. The
 * sizes are measured on engines placed with explicit -ngl counts. */
static bool fit_engine(const char *backend, const char *path, int ngl, long long budget, sx_engine_info *info, size_t *kv_per_layer) {
    char b[32];
    snprintf(b, sizeof b, "%lld", budget);
    setenv("SPECEXIT_FIT_MEMORY", b, 1);
    sx_engine_options eo;
    sx_engine_options_init(&eo);
    eo.model_path = path;
    eo.backend = backend;
    eo.n_threads = 2;
    eo.n_gpu_layers = ngl;
    eo.fit_ctx = 256;
    eo.fit_kv_type = (int)g_kv;
    sx_engine *e = NULL;
    sx_session *s = NULL;
    sx_session_options so;
    sx_session_options_init(&so);
    so.n_ctx = 256;
    so.kv_type = g_kv;
    sx_status st = sx_engine_create(&eo, &e);
    if (st == SX_OK) st = sx_session_create(e, &so, &s);
    if (st == SX_OK) {
        sx_engine_get_info(e, info);
        *kv_per_layer = sx_session_kv_bytes(s) / (size_t)info->n_layer;
    }
    CHECK(st == SX_OK, "%s: -ngl %d with a %lld-byte budget: %s", path, ngl, budget, sx_last_error());
    sx_session_destroy(s);
    sx_engine_destroy(e);
    unsetenv("SPECEXIT_FIT_MEMORY");
    return st == SX_OK;
}

static void test_fit(const char *backend, const char *path) {
    sx_engine_info all;
    size_t kvl;
    if (!fit_engine(backend, path, -1, 0, &all, &kvl)) return;
    const long long need = (long long)(all.weight_bytes + kvl * (size_t)all.n_layer);
    const double fractions[] = {0, 0.2, 0.5, 0.8, 0.99, 1.0};
    for (size_t i = 0; i < sizeof fractions / sizeof *fractions; i++) {
        const long long budget = (long long)(fractions[i] * (double)need);
        sx_engine_info got, more;
        size_t k2;
        if (!fit_engine(backend, path, SX_NGL_AUTO, budget, &got, &k2)) return;
        const int n = got.n_gpu_layers;
        printf("%s on %s: -ngl auto, budget %lld of %lld bytes: %d of %d blocks%s on the device (%llu weight bytes)\n", path, backend, budget,
               need, n, got.n_layer, got.output_on_device ? " and the output layer" : "", (unsigned long long)got.device_weight_bytes);
        if (budget >= need) {
            CHECK(n == got.n_layer && got.output_on_device, "%s: a budget for the whole model placed %d blocks (output %d)", path, n,
                  got.output_on_device);
            continue;
        }
        CHECK(!got.output_on_device && got.device_weight_bytes + kvl * (size_t)n <= (size_t)budget,
              "%s: -ngl auto put %d blocks (%llu weight bytes + cache) past a %lld-byte budget", path, n,
              (unsigned long long)got.device_weight_bytes, budget);
        if (n < got.n_layer && fit_engine(backend, path, n + 1, 0, &more, &k2))
            CHECK(more.device_weight_bytes + kvl * (size_t)(n + 1) > (size_t)budget, "%s: -ngl auto chose %d blocks, but %d fit a %lld-byte budget",
                  path, n, n + 1, budget);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_models BACKEND MODEL.gguf... [--steps N] [--tie GAP]\n");
        return 2;
    }
    const char *backend = argv[1];
    int steps = 24;
    float tie = 0.1f;
    const char *ngl_list = NULL;
    bool fit = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tie") && i + 1 < argc) tie = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc && sx_kv_type_from_name(argv[++i], &g_kv) != SX_OK)
            return printf("FAIL: %s\n", sx_last_error()), 2;
        else if (!strcmp(argv[i], "--ngl") && i + 1 < argc) ngl_list = argv[++i];
        else if (!strcmp(argv[i], "--fit")) fit = true;
        else if (!strcmp(argv[i], "--cpu-moe") && i + 1 < argc) g_cpu_moe = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ts") && i + 1 < argc) {
            int n = 0;
            for (char *p = argv[++i]; *p && n < SX_MAX_DEVICES; p += *p == ',') {
                char *end;
                g_ts[n++] = strtof(p, &end);
                if (end == p) return printf("FAIL: --ts %s: comma-separated shares\n", argv[i]), 2;
                p = end;
            }
        }
    }
    int ngls[16], n_ngl = 0;
    ngls[n_ngl++] = -1;
    if (ngl_list) {
        n_ngl = 0;
        for (const char *p = ngl_list; *p && n_ngl < 16; p += *p == ',') {
            char *end;
            ngls[n_ngl++] = (int)strtol(p, &end, 10);
            if (end == p) return printf("FAIL: --ngl %s: a comma-separated list of integers\n", ngl_list), 2;
            p = end;
        }
    }
    /* skip when the backend cannot open a device */
    sx_engine_options eo;
    sx_engine_options_init(&eo);
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-') {
            i += strcmp(argv[i], "--fit") != 0;
            continue;
        }
        if (!eo.model_path) eo.model_path = argv[i];
    }
    eo.backend = backend;
    sx_engine *probe;
    sx_status st = sx_engine_create(&eo, &probe);
    if (st == SX_ERR_NO_DEVICE || st == SX_ERR_UNSUPPORTED || st == SX_ERR_BACKEND) {
        printf("SKIP: backend %s: %s\n", backend, sx_last_error());
        return 77;
    }
    sx_engine_destroy(probe);
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-') {
            i += strcmp(argv[i], "--fit") != 0;
            continue;
        }
        if (fit) {
            test_fit(backend, argv[i]);
            continue;
        }
        for (int k = 0; k < n_ngl; k++) {
            g_ngl = ngls[k];
            test_model(backend, argv[i], steps, tie);
        }
    }
    printf("%s\n", g_failed ? "FAILED" : "all model checks passed");
    return g_failed ? 1 : 0;
}
