/* tools/train/tokcheck.c — prints the engine's token ids for texts, to check
 * the trainer's tokenizer against core/tokenizer (not built by meson).
 *
 *   cc -O1 -I. tools/train/tokcheck.c -L BUILD -lspecexit -Wl,-rpath,BUILD -o /tmp/tokcheck
 *   /tmp/tokcheck MODEL.gguf < texts
 *
 * stdin: texts separated by the byte 0x1e; stdout: one line of
 * space-separated ids per text (control tokens parsed, no BOS added). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/specexit.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tokcheck MODEL.gguf < texts\n");
        return 2;
    }
    sx_engine_options o;
    sx_engine_options_init(&o);
    o.model_path = argv[1];
    o.n_threads = 1;
    sx_engine *e;
    if (sx_engine_create(&o, &e) != SX_OK) {
        fprintf(stderr, "tokcheck: %s\n", sx_last_error());
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int c;
    for (;;) {
        c = getchar();
        if (c == EOF || c == 0x1e) {
            buf[n] = 0;
            int32_t *ids;
            int n_ids;
            if (sx_tokenize(e, buf, false, true, &ids, &n_ids) != SX_OK) {
                fprintf(stderr, "tokcheck: %s\n", sx_last_error());
                return 1;
            }
            for (int i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
            free(ids);
            n = 0;
            if (c == EOF) break;
            continue;
        }
        if (n + 2 > cap) buf = realloc(buf, cap *= 2);
        buf[n++] = (char)c;
    }
    free(buf);
    sx_engine_destroy(e);
    return 0;
}
