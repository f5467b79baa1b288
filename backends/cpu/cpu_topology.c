/* backends/cpu/cpu_topology.c — physical cores, caches and thread pinning.
 *
 * Uses hwloc when built with SX_HAVE_HWLOC (libhwloc-dev); otherwise falls
 * back to sched_getaffinity/sysconf (one "core" per logical CPU) and
 * sched_setaffinity. hwloc's NUMA memory sizes are wrong in some VMs, so
 * nothing here reports memory; size memory from sysconf. The topology is
 * loaded once and only read afterwards (hwloc allows concurrent readers).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "backends/cpu/cpu_fast.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#ifdef SX_HAVE_HWLOC
#include <hwloc.h>
static hwloc_topology_t g_topo;
static bool g_topo_ok;
#endif

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int logical_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void load_once(void) {
#ifdef SX_HAVE_HWLOC
    if (hwloc_topology_init(&g_topo) != 0) return;
    if (hwloc_topology_load(g_topo) != 0) {
        hwloc_topology_destroy(g_topo);
        return;
    }
    g_topo_ok = hwloc_get_nbobjs_by_type(g_topo, HWLOC_OBJ_CORE) > 0;
    if (!g_topo_ok) hwloc_topology_destroy(g_topo);
#endif
}

int sx_cpu_physical_cores(void) {
    pthread_once(&g_once, load_once);
#ifdef SX_HAVE_HWLOC
    if (g_topo_ok) {
        int n = hwloc_get_nbobjs_by_type(g_topo, HWLOC_OBJ_CORE);
        if (n > 0) return n;
    }
#endif
    return logical_cpus();
}

bool sx_cpu_pin_current_thread(int core) {
    pthread_once(&g_once, load_once);
    if (core < 0) return false;
#ifdef SX_HAVE_HWLOC
    if (g_topo_ok) {
        int n = hwloc_get_nbobjs_by_type(g_topo, HWLOC_OBJ_CORE);
        hwloc_obj_t obj = hwloc_get_obj_by_type(g_topo, HWLOC_OBJ_CORE, (unsigned)(core % n));
        if (!obj || !obj->cpuset) return false;
        return hwloc_set_cpubind(g_topo, obj->cpuset, HWLOC_CPUBIND_THREAD) == 0;
    }
#endif
#if defined(__linux__)
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return false;
    int n = CPU_COUNT(&allowed);
    if (n <= 0) return false;
    int want = core % n, seen = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed)) continue;
        if (seen++ == want) {
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
        }
    }
#endif
    return false;
}

#ifdef SX_HAVE_HWLOC
/* Size in KiB of the first cache object of a type; 0 if none. */
static unsigned long cache_kib(hwloc_obj_type_t t) {
    hwloc_obj_t o = hwloc_get_obj_by_type(g_topo, t, 0);
    return o && o->attr ? (unsigned long)(o->attr->cache.size / 1024) : 0;
}
#endif

const char *sx_cpu_topology_summary(char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    pthread_once(&g_once, load_once);
#ifdef SX_HAVE_HWLOC
    if (g_topo_ok) {
        int pk = hwloc_get_nbobjs_by_type(g_topo, HWLOC_OBJ_PACKAGE);
        int co = hwloc_get_nbobjs_by_type(g_topo, HWLOC_OBJ_CORE);
        int pu = hwloc_get_nbobjs_by_type(g_topo, HWLOC_OBJ_PU);
        snprintf(buf, n, "%d package%s, %d cores, %d PUs, L1d %lu KiB, L2 %lu KiB, L3 %lu KiB (hwloc)",
                 pk, pk == 1 ? "" : "s", co, pu, cache_kib(HWLOC_OBJ_L1CACHE),
                 cache_kib(HWLOC_OBJ_L2CACHE), cache_kib(HWLOC_OBJ_L3CACHE));
        return buf;
    }
#endif
    int c = logical_cpus();
    snprintf(buf, n, "%d logical CPUs (no hwloc; cores assumed = CPUs)", c);
    return buf;
}
