/* tools/specexit.c — the specexit command: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "specexit %s — speculative-exit inference for reasoning models\n\n"
            "usage: specexit COMMAND [options]\n\n"
            "commands:\n"
            "  run       generate text from a prompt (streams to stdout)\n"
            "  chat      a conversation in the terminal (one line per turn)\n"
            "  serve     OpenAI-compatible HTTP server (chat/completions, streaming, SpecExit per request)\n"
            "  bench     measure prefill/decode speed and memory (JSON)\n"
            "  perplexity  score a text file: perplexity per backend and KV cache type (llama-perplexity)\n"
            "  devices   list backends, devices and the CPU topology\n"
            "  convert   convert an EAGLE-3 draft checkpoint to GGUF (convert eagle3 DIR -o DRAFT.gguf)\n"
            "\n`specexit COMMAND --help` shows a command's options.\n",
            SPECEXIT_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return sx_cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "chat")) return sx_cmd_chat(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve")) return sx_cmd_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return sx_cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "perplexity")) return sx_cmd_perplexity(argc - 2, argv + 2);
    if (!strcmp(cmd, "devices")) return sx_cmd_devices(argc - 2, argv + 2);
    if (!strcmp(cmd, "convert")) return sx_cmd_convert(argc - 2, argv + 2);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("specexit %s\n", SPECEXIT_VERSION);
        return 0;
    }
    fprintf(stderr, "error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 1;
}
