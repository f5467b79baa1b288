/* tests/dump_logits.c — writes the last-position logits of token sequences,
 * for comparison with the independent numpy reference (tests/ref/).
 *
 *   dump_logits BACKEND MODEL.gguf OUTDIR IDS [IDS...]
 * IDS is a comma-separated token list; prompt i goes to OUTDIR/prompt{i}.f32
 * as n_vocab little-endian float32 values. Exit 77 when BACKEND has no device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/specexit.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: dump_logits BACKEND MODEL.gguf OUTDIR IDS [IDS...]\n");
        return 2;
    }
    sx_engine_options eo;
    sx_engine_options_init(&eo);
    eo.backend = argv[1];
    eo.model_path = argv[2];
    sx_engine *e;
    sx_status st = sx_engine_create(&eo, &e);
    if (st == SX_ERR_NO_DEVICE || (st == SX_ERR_UNSUPPORTED && strstr(sx_last_error(), "backend"))) {
        printf("SKIP: %s\n", sx_last_error());
        return 77;
    }
    if (st != SX_OK) {
        fprintf(stderr, "error: %s\n", sx_last_error());
        return 1;
    }
    sx_engine_info info;
    sx_engine_get_info(e, &info);
    float *logits = malloc(sizeof(float) * (size_t)info.n_vocab);
    int rc = 0;
    for (int p = 4; p < argc && rc == 0; p++) {
        int32_t ids[4096];
        int n = 0;
        for (char *save = NULL, *tok = strtok_r(argv[p], ",", &save); tok && n < 4096; tok = strtok_r(NULL, ",", &save)) ids[n++] = atoi(tok);
        sx_session *s;
        st = sx_session_create(e, NULL, &s);
        if (st == SX_OK) st = sx_session_eval(s, ids, n, logits);
        sx_session_destroy(s);
        char path[4096];
        snprintf(path, sizeof path, "%s/prompt%d.f32", argv[3], p - 4);
        FILE *f = st == SX_OK ? fopen(path, "wb") : NULL;
        if (st != SX_OK || !f || fwrite(logits, sizeof(float), (size_t)info.n_vocab, f) != (size_t)info.n_vocab) {
            fprintf(stderr, "error: prompt %d: %s\n", p - 4, st != SX_OK ? sx_last_error() : "cannot write output");
            rc = 1;
        }
        if (f) fclose(f);
    }
    free(logits);
    sx_engine_destroy(e);
    return rc;
}
