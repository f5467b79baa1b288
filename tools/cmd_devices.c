/* tools/cmd_devices.c — `specexit devices`: backends, devices, CPU topology. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "tools/cli.h"

int sx_cmd_devices(int argc, char **argv) {
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: specexit devices [--json]\n\nLists the compiled-in backends and their devices.\n");
            return 0;
        } else {
            fprintf(stderr, "error: unknown option '%s' for 'specexit devices'\n", argv[i]);
            return 1;
        }
    }
    cJSON *root = cJSON_CreateArray();
    for (int b = 0; b < sx_backend_count(); b++) {
        const sx_backend_vtbl *vt = sx_backend_get(b);
        int n = 0;
        sx_status s = vt->device_count(&n);
        cJSON *jb = cJSON_CreateObject();
        cJSON_AddStringToObject(jb, "backend", vt->name);
        cJSON_AddStringToObject(jb, "description", vt->description);
        cJSON *jd = cJSON_AddArrayToObject(jb, "devices");
        if (!json) printf("%s: %s\n", vt->name, vt->description);
        if (s != SX_OK) {
            cJSON_AddStringToObject(jb, "error", sx_last_error());
            if (!json) printf("  (unavailable: %s)\n", sx_last_error());
        } else if (n == 0 && !json) {
            printf("  (no devices)\n");
        }
        for (int i = 0; s == SX_OK && i < n; i++) {
            sx_device_info info;
            if (vt->device_info(i, &info) != SX_OK) continue;
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "id", "");
            char id[64];
            snprintf(id, sizeof id, "%s:%d", vt->name, i);
            cJSON_ReplaceItemInObject(d, "id", cJSON_CreateString(id));
            cJSON_AddStringToObject(d, "name", info.name);
            cJSON_AddStringToObject(d, "vendor", info.vendor);
            cJSON_AddStringToObject(d, "driver", info.driver);
            cJSON_AddStringToObject(d, "arch", info.arch);
            cJSON_AddStringToObject(d, "features", info.features);
            cJSON_AddNumberToObject(d, "memory_total", (double)info.memory_total);
            cJSON_AddNumberToObject(d, "memory_free", (double)info.memory_free);
            cJSON_AddItemToArray(jd, d);
            if (!json)
                printf("  %-10s %s | vendor %s | driver %s | arch %s | memory %.1f GiB (%.1f free)\n             %s\n", id, info.name,
                       info.vendor, info.driver, info.arch, info.memory_total / 1073741824.0, info.memory_free / 1073741824.0,
                       info.features);
        }
        cJSON_AddItemToArray(root, jb);
    }
    if (json) {
        char *str = cJSON_Print(root);
        printf("%s\n", str);
        free(str);
    }
    cJSON_Delete(root);
    return 0;
}
