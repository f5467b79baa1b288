/* tests/test_cli_errors.c — bad input through the `specexit` command, as a
 * user would meet it: each case must end with exit status 1 (not a signal,
 * not 0) and a clear message naming the problem.
 *
 *   test_cli_errors SPECEXIT TINY_MODEL.gguf TMPDIR
 * The corrupt files are derived from the valid tiny model in TMPDIR. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int g_failed, g_passed;
static const char *g_exe;

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* Runs `specexit ARGS`, expects exit status `want` and `needle` in its output. */
static void expect(const char *name, const char *args, int want, const char *needle) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", g_exe, args);
    FILE *p = popen(cmd, "r");
    char out[16384] = "";
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    int status = p ? pclose(p) : -1;
    const bool exited = status != -1 && WIFEXITED(status);
    const int code = exited ? WEXITSTATUS(status) : -1;
    if (!exited || code != want || !strstr(out, needle)) {
        printf("FAIL %s: `specexit %s` -> %s %d, wanted exit %d and \"%s\"; output:\n%s\n", name, args,
               exited ? "exit" : "signal", exited ? code : (WIFSIGNALED(status) ? WTERMSIG(status) : -1), want, needle, out);
        g_failed++;
    } else {
        printf("ok   %s: %s", name, strstr(out, "error:") ? strstr(out, "error:") : "\n");
        if (out[strlen(out) - 1] != '\n') printf("\n");
        g_passed++;
    }
}

/* `specexit run -m MODEL -p hi -n 2 EXTRA` must fail (status 1) with `needle` in its output. */
static void expect_run(const char *name, const char *model, const char *extra, const char *needle) {
    char args[8192];
    snprintf(args, sizeof args, "run -m %s -p hi -n 2 %s", model, extra);
    expect(name, args, 1, needle);
}

/* finds a tensor-info record by name and returns the offset of its type field */
static long type_field(const char *data, size_t n, const char *tname) {
    const size_t len = strlen(tname);
    for (size_t i = 8; i + len + 4 < n; i++) {
        uint64_t l;
        memcpy(&l, data + i - 8, 8);
        if (l == len && memcmp(data + i, tname, len) == 0) {
            uint32_t nd;
            memcpy(&nd, data + i + len, 4);
            return (long)(i + len + 4 + 8 * nd);
        }
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_cli_errors SPECEXIT TINY_MODEL.gguf TMPDIR\n");
        return 2;
    }
    g_exe = argv[1];
    const char *model = argv[2], *tmp = argv[3];
    size_t n;
    char *data = slurp(model, &n);
    if (!data) {
        printf("FAIL: cannot read %s\n", model);
        return 1;
    }
    char path[4096], args[8192];

    /* sanity: the valid model works */
    snprintf(args, sizeof args, "run -m %s -p hello -n 4 --temp 0", model);
    expect("valid model runs", args, 0, "generated");

    /* KV cache types: unknown, K and V apart, q8_0 / q4_0 on a head dim of 16 (the tiny model's) */
    expect_run("unknown cache type", model, "-ctk q4_9", "unknown KV cache type 'q4_9'");
    expect_run("K and V cache types differ", model, "-ctk q8_0 -ctv f32", "one type");
    expect_run("negative layer count", model, "-ngl -2", "-ngl expects an integer in [-1,");
    expect_run("layer count not a number", model, "--n-gpu-layers many", "--n-gpu-layers expects an integer");
    expect_run("negative expert layer count", model, "--n-cpu-moe -3", "--n-cpu-moe expects an integer in [0,");
    expect_run("q8_0 cache on head dim 16", model, "--cache-type-k q8_0", "head dim multiple of 32");
    expect_run("q4_0 cache on head dim 16", model, "-ctk q4_0", "a q4_0 KV cache needs a head dim multiple of 32");
    snprintf(args, sizeof args, "bench -m %s -np 2 -ctk f16,q8_0", model);
    expect("cache type list outside the speed bench", args, 1, "speed bench only");

    /* perplexity: no text, a text shorter than a chunk, a chunk too small, a bad cache type list */
    snprintf(args, sizeof args, "perplexity -m %s", model);
    expect("perplexity without a text", args, 1, "needs a text file (-f FILE)");
    snprintf(path, sizeof path, "%s/short.txt", tmp);
    spit(path, "only a few words", 16);
    snprintf(args, sizeof args, "perplexity -m %s -f %s -c 64", model, path);
    expect("perplexity of a text shorter than a chunk", args, 1, "a chunk takes 64 (-c)");
    snprintf(args, sizeof args, "perplexity -m %s -f %s -c 4", model, path);
    expect("perplexity with a 4-token chunk", args, 1, "at least 8 tokens");
    snprintf(args, sizeof args, "perplexity -m %s -f %s -ctk f16,q9_9", model, path);
    expect("perplexity with an unknown cache type", args, 1, "unknown KV cache type 'q9_9'");
    snprintf(args, sizeof args, "perplexity -m %s -f %s --backend cpu,cpu,cpu -ctk f16,f32,f16", model, path);
    expect("perplexity with nine configurations", args, 1, "at most 8 configurations");
    snprintf(args, sizeof args, "perplexity -m %s -f %s/does-not-exist.txt", model, tmp);
    expect("perplexity of a missing file", args, 1, "cannot read");

    snprintf(args, sizeof args, "run -m %s/does-not-exist.gguf -p hi", tmp);
    expect("missing file", args, 1, "does-not-exist.gguf");

    snprintf(path, sizeof path, "%s/empty.gguf", tmp);
    spit(path, "", 0);
    snprintf(args, sizeof args, "run -m %s -p hi", path);
    expect("empty file", args, 1, "empty.gguf");

    snprintf(path, sizeof path, "%s/notgguf.gguf", tmp);
    spit(path, "this is not a gguf file at all, just some text\n", 47);
    snprintf(args, sizeof args, "run -m %s -p hi", path);
    expect("bad magic", args, 1, "magic");

    for (int k = 0; k < 4; k++) { /* truncated at several points */
        const size_t cut[4] = {16, 200, n / 2, n - 1};
        snprintf(path, sizeof path, "%s/trunc%d.gguf", tmp, k);
        spit(path, data, cut[k]);
        snprintf(args, sizeof args, "run -m %s -p hi", path);
        char name[64];
        snprintf(name, sizeof name, "truncated at %zu of %zu bytes", cut[k], n);
        expect(name, args, 1, "error:");
    }

    { /* absurd tensor count in the header */
        char *d = malloc(n);
        memcpy(d, data, n);
        const uint64_t huge = 0x7fffffffffffull;
        memcpy(d + 8, &huge, 8);
        snprintf(path, sizeof path, "%s/count.gguf", tmp);
        spit(path, d, n);
        free(d);
        snprintf(args, sizeof args, "run -m %s -p hi", path);
        expect("corrupt tensor count", args, 1, "error:");
    }
    { /* unknown architecture: every "llama" renamed (same length) */
        char *d = malloc(n);
        memcpy(d, data, n);
        for (size_t i = 0; i + 5 <= n; i++)
            if (!memcmp(d + i, "llama", 5)) d[i + 4] = 'x';
        snprintf(path, sizeof path, "%s/arch.gguf", tmp);
        spit(path, d, n);
        free(d);
        snprintf(args, sizeof args, "run -m %s -p hi", path);
        expect("unknown architecture", args, 1, "unknown architecture 'llamx'");
    }
    { /* missing tensor: blk.0.ffn_up.weight renamed */
        char *d = malloc(n);
        memcpy(d, data, n);
        for (size_t i = 0; i + 19 <= n; i++)
            if (!memcmp(d + i, "blk.0.ffn_up.weight", 19)) d[i + 18] = 'x';
        snprintf(path, sizeof path, "%s/missing.gguf", tmp);
        spit(path, d, n);
        free(d);
        snprintf(args, sizeof args, "run -m %s -p hi", path);
        expect("missing tensor", args, 1, "missing tensor 'blk.0.ffn_up.weight'");
    }
    { /* unknown quant type: q8_0 (34 B/32) relabelled iq2_xxs (66 B/256), which we do not compute */
        char *d = malloc(n);
        memcpy(d, data, n);
        const long at = type_field(d, n, "blk.0.attn_q.weight");
        uint32_t t = 0;
        if (at > 0) memcpy(&t, d + at, 4);
        if (at < 0 || t != 8) {
            printf("FAIL: unexpected layout of the tiny model (type field of blk.0.attn_q.weight)\n");
            g_failed++;
        } else {
            t = 16; /* GGML_TYPE_IQ2_XXS */
            memcpy(d + at, &t, 4);
            snprintf(path, sizeof path, "%s/quant.gguf", tmp);
            spit(path, d, n);
            snprintf(args, sizeof args, "run -m %s -p hi", path);
            expect("unsupported quant type", args, 1, "iq2_xxs");
        }
        free(d);
    }
    /* a prompt longer than the context */
    snprintf(args, sizeof args, "run -m %s -p \"%s\" -c 16 --raw", model,
             "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen");
    expect("prompt longer than the context", args, 1, "context");
    /* bad flags and backends */
    expect_run("bad -n value", model, "-n abc", "-n expects an integer");
    expect_run("unknown option", model, "--bogus", "unknown option '--bogus'");
    expect_run("unknown backend", model, "--backend nosuch", "backend 'nosuch' is unknown");
    expect_run("device index out of range", model, "--backend cpu:3", "device 3 does not exist");
    /* constrained output, splits, speculation and sampling flags */
    expect_run("undefined grammar rule", model, "--grammar 'root ::= item'", "undefined rule 'item'");
    expect_run("left-recursive grammar", model, "--grammar 'root ::= root \"a\" | \"b\"'", "left-recursive");
    expect_run("grammar file missing", model, "--grammar-file /nonexistent.gbnf", "cannot read");
    expect_run("bad JSON schema", model, "-j '{\"type\": \"object\"'", "not valid JSON");
    expect_run("unenforceable schema keyword", model, "-j '{\"type\": \"string\", \"pattern\": \"a+\"}'", "pattern");
    expect_run("two grammars", model, "--grammar 'root ::= \"a\"' -j '{}'", "give one of");
    expect_run("CPU in a split", model, "--backend cpu,cpu", "a split lists GPU devices");
    expect_run("bad tensor split", model, "-ts 1,x", "non-negative shares");
    expect_run("row split mode", model, "-sm row", "splits by layer");
    expect_run("unknown spec kind", model, "--spec medusa", "unknown --spec 'medusa'");
    expect_run("prompt lookup bounds", model, "--spec ngram --prompt-lookup-min 5 --prompt-lookup-max 3", "prompt-lookup");
    expect_run("bad logit bias", model, "-l 12*3", "TOKEN_ID+BIAS");
    expect_run("logit bias outside the vocabulary", model, "-l 99999999+1", "not in the vocabulary");
    expect("unknown command", "frobnicate", 1, "unknown command 'frobnicate'");
    expect("option without its value", "run -p hi -m", 1, "-m needs a value");
    free(data);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
