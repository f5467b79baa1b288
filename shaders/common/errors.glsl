/* shaders/common/errors.glsl — the kernel error word.
 *
 * A kernel that must skip work it cannot do (an id out of range) cannot fail
 * its dispatch; it ORs a code (SX_KERR_* in common/params.h) into a 32-bit
 * word bound at binding ERR_BINDING instead. The host binds a fresh word per
 * dispatch (vk_command.c: sx_vk_arg_error), reads and clears the words of a
 * command buffer after waiting for its fence, and turns a non-zero code into
 * an error at the next buffer_read / synchronize. */
#ifndef SX_ERRORS_GLSL
#define SX_ERRORS_GLSL

layout(binding = ERR_BINDING, std430) buffer KernelErr { uint kernel_err; };

void raise_error(uint code) { atomicOr(kernel_err, code); }

#endif
