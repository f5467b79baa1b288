/* core/weights.h — shared by the model loaders (target and draft). */
#ifndef SX_WEIGHTS_H
#define SX_WEIGHTS_H

#include "backends/backend.h"
#include "core/gguf.h"

typedef struct sx_weight_loader {
    const sx_gguf *g;
    const char *path;     /* for messages */
    const char *arch;     /* for messages */
    uint64_t data_offset; /* of the GGUF data section */
    sx_tensor *tensors;   /* [cap] slots filled by bind */
    int n_tensors, cap;
    sx_device **tensor_dev; /* optional [cap]: each slot's device (split placement), set by the caller after bind */
} sx_weight_loader;

/* Finds `name`, checks its shape [ne0, ne1] (ne1 = 0: 1-D) and type (f32
 * only for norms and biases) and fills the next slot. A missing optional
 * tensor leaves *out NULL. */
SX_MUST_USE sx_status sx_weights_bind(sx_weight_loader *L, const char *name, int64_t ne0, int64_t ne1, bool optional, bool must_be_f32,
                                      sx_tensor **out);
/* The same for a 3-D tensor [ne0, ne1, ne2] (expert stacks). */
SX_MUST_USE sx_status sx_weights_bind3(sx_weight_loader *L, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, sx_tensor **out);
/* Puts the file's data section on dev (wrapping the mapping when the device
 * reads host memory) and points every bound tensor at it. */
SX_MUST_USE sx_status sx_weights_place(sx_weight_loader *L, sx_device *dev, sx_buffer **out_buf);
/* Split placement: the slots whose tensor_dev is dev go to dev, wrapped in
 * place when dev reads host memory, else uploaded into one buffer of just
 * their bytes (*out_bytes). The same file bytes may back slots on two
 * devices (a tied output matrix, rope_freqs). No slot of dev: *out_buf NULL. */
SX_MUST_USE sx_status sx_weights_place_some(sx_weight_loader *L, sx_device *dev, sx_buffer **out_buf, size_t *out_bytes);

#endif
