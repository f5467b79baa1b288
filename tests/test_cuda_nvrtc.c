/* tests/test_cuda_nvrtc.c — compiles every CUDA kernel source through NVRTC,
 * for every target architecture, to real GPU code (cubin). No GPU needed:
 * this is the CPU-only check that the kernels of backends/cuda/ (and their
 * explicit template instantiations) are valid CUDA, so a syntax or template
 * error fails CI even on machines that cannot run them.
 *
 *   test_cuda_nvrtc --cuda-home DIR -I INCDIR [--arch sm_NN]... FILE.cu...
 *
 * libnvrtc is loaded with dlopen (DIR/lib64, DIR/lib, then the loader's
 * path), so the binary has no link-time dependency on it; exit 77 (skip)
 * when it cannot be found. A compile error or any warning in NVRTC's log
 * fails the test; the log is printed. Files x archs compile in parallel. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* the few NVRTC entry points used (ABI of nvrtc.h: enum result, opaque handle) */
typedef int nvrtc_result;
typedef void *nvrtc_program;
static struct {
    nvrtc_result (*create)(nvrtc_program *, const char *, const char *, int, const char *const *, const char *const *);
    nvrtc_result (*compile)(nvrtc_program, int, const char *const *);
    nvrtc_result (*log_size)(nvrtc_program, size_t *);
    nvrtc_result (*log)(nvrtc_program, char *);
    nvrtc_result (*cubin_size)(nvrtc_program, size_t *);
    nvrtc_result (*destroy)(nvrtc_program *);
    const char *(*error_string)(nvrtc_result);
    nvrtc_result (*version)(int *, int *);
} nv;

#define MAX_ARCHS 16
#define MAX_FILES 64

static const char *g_cuda_home = "/usr/local/cuda", *g_inc = ".";
static const char *g_archs[MAX_ARCHS];
static int g_n_archs;
static const char *g_files[MAX_FILES];
static int g_n_files;

typedef struct {
    const char *file, *arch;
    int ok;
    double seconds;
    size_t cubin;
    char *log;
    char err[256];
} job;

static job g_jobs[MAX_FILES * MAX_ARCHS];
static int g_n_jobs, g_next;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void *load_nvrtc(void) {
    const char *subdirs[] = {"lib64", "lib", "targets/x86_64-linux/lib"};
    const char *names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"};
    char path[1024];
    for (size_t s = 0; s < sizeof subdirs / sizeof subdirs[0]; s++)
        for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
            snprintf(path, sizeof path, "%s/%s/%s", g_cuda_home, subdirs[s], names[n]);
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (h) return h;
        }
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        void *h = dlopen(names[n], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
    }
    return NULL;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_job(job *j) {
    const double t0 = now();
    char *src = read_file(j->file);
    if (!src) {
        snprintf(j->err, sizeof j->err, "cannot read %s", j->file);
        return;
    }
    char opt_arch[64], opt_inc[1100], opt_cuda_inc[1100];
    snprintf(opt_arch, sizeof opt_arch, "--gpu-architecture=%s", j->arch);
    snprintf(opt_inc, sizeof opt_inc, "-I%s", g_inc);
    snprintf(opt_cuda_inc, sizeof opt_cuda_inc, "-I%s/include", g_cuda_home);
    const char *opts[] = {opt_arch, opt_inc, opt_cuda_inc, "-std=c++17", "-default-device", "-DSX_NVRTC_CHECK=1"};
    nvrtc_program prog = NULL;
    const char *base = strrchr(j->file, '/') ? strrchr(j->file, '/') + 1 : j->file;
    nvrtc_result r = nv.create(&prog, src, base, 0, NULL, NULL);
    if (r != 0) {
        snprintf(j->err, sizeof j->err, "nvrtcCreateProgram: %s", nv.error_string(r));
        free(src);
        return;
    }
    r = nv.compile(prog, (int)(sizeof opts / sizeof opts[0]), opts);
    size_t ls = 0;
    if (nv.log_size(prog, &ls) == 0 && ls > 1) {
        j->log = malloc(ls + 1);
        if (j->log && nv.log(prog, j->log) != 0) j->log[0] = 0;
    }
    if (r != 0) {
        snprintf(j->err, sizeof j->err, "nvrtcCompileProgram: %s", nv.error_string(r));
    } else if (nv.cubin_size(prog, &j->cubin) != 0 || j->cubin == 0) {
        snprintf(j->err, sizeof j->err, "no cubin produced for %s", j->arch);
    } else if (j->log && strstr(j->log, "warning")) {
        snprintf(j->err, sizeof j->err, "compiled with warnings (kernels must compile clean)");
    } else {
        j->ok = 1;
    }
    nv.destroy(&prog);
    free(src);
    j->seconds = now() - t0;
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_lock);
        const int i = g_next < g_n_jobs ? g_next++ : -1;
        pthread_mutex_unlock(&g_lock);
        if (i < 0) return NULL;
        run_job(&g_jobs[i]);
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cuda-home") && i + 1 < argc) g_cuda_home = argv[++i];
        else if (!strcmp(argv[i], "-I") && i + 1 < argc) g_inc = argv[++i];
        else if (!strcmp(argv[i], "--arch") && i + 1 < argc && g_n_archs < MAX_ARCHS) g_archs[g_n_archs++] = argv[++i];
        else if (argv[i][0] != '-' && g_n_files < MAX_FILES) g_files[g_n_files++] = argv[i];
        else {
            fprintf(stderr, "usage: test_cuda_nvrtc --cuda-home DIR -I INCDIR [--arch sm_NN]... FILE.cu...\n");
            return 2;
        }
    }
    if (g_n_files == 0) {
        fprintf(stderr, "test_cuda_nvrtc: no kernel sources given\n");
        return 2;
    }
    if (g_n_archs == 0) g_archs[g_n_archs++] = "sm_80";
    void *h = load_nvrtc();
    if (!h) {
        printf("SKIP: libnvrtc not found under %s or on the loader path: %s\n", g_cuda_home, dlerror());
        return 77;
    }
#define SYM(field, name)                                                   \
    do {                                                                   \
        *(void **)&nv.field = dlsym(h, name);                              \
        if (!nv.field) {                                                   \
            fprintf(stderr, "test_cuda_nvrtc: libnvrtc lacks %s\n", name); \
            return 1;                                                      \
        }                                                                  \
    } while (0)
    SYM(create, "nvrtcCreateProgram");
    SYM(compile, "nvrtcCompileProgram");
    SYM(log_size, "nvrtcGetProgramLogSize");
    SYM(log, "nvrtcGetProgramLog");
    SYM(cubin_size, "nvrtcGetCUBINSize");
    SYM(destroy, "nvrtcDestroyProgram");
    SYM(error_string, "nvrtcGetErrorString");
    SYM(version, "nvrtcVersion");
    int vmaj = 0, vmin = 0;
    nv.version(&vmaj, &vmin);
    printf("NVRTC %d.%d: %d kernel sources x %d archs\n", vmaj, vmin, g_n_files, g_n_archs);
    fflush(stdout);

    for (int f = 0; f < g_n_files; f++)
        for (int a = 0; a < g_n_archs; a++) g_jobs[g_n_jobs++] = (job){.file = g_files[f], .arch = g_archs[a]};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = ncpu > 0 ? (int)ncpu : 1;
    if (n_threads > g_n_jobs) n_threads = g_n_jobs;
    if (n_threads > 16) n_threads = 16;
    pthread_t th[16];
    int started = 0;
    for (int i = 0; i < n_threads; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) == 0) started++;
    if (started == 0) worker(NULL);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);

    int passed = 0, failed = 0;
    for (int i = 0; i < g_n_jobs; i++) {
        const job *j = &g_jobs[i];
        if (j->ok) {
            passed++;
            printf("ok   %s %s (cubin %zu bytes, %.1f s)\n", j->file, j->arch, j->cubin, j->seconds);
        } else {
            failed++;
            printf("FAIL %s %s: %s\n", j->file, j->arch, j->err);
        }
        if (j->log && j->log[0] && !j->ok) printf("%s\n", j->log);
        free(j->log);
    }
    printf("nvrtc: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
