/* Internal: layer access for tests and the tuner — replacing a kind's kernel parameters. */
#ifndef MORA_RUNTIME_LAYER_H
#define MORA_RUNTIME_LAYER_H

#include "kernels.h"

/* The spec the layer launches for `kind` (merge: for W of the layer's dtype). */
mora_kernel_spec mora_layer_spec(const mora_layer *l, mora_kind kind);
/* Uses `spec`'s parameters for its kind from now on (shape and dtype must match the layer's; for
 * merge the dtype is ignored). The program is built on next use. */
mora_status mora_layer_set_spec(mora_layer *l, const mora_kernel_spec *spec);

#endif
