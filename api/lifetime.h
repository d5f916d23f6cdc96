/* Internal: how plans and adapters keep their context alive (mora.h, mora_context_destroy). Each
 * holds its context from creation to destruction; the context is closed (its kernels cache, then
 * the runtime's context) when the last holder lets go, be it the caller (mora_context_destroy) or an
 * object. */
#ifndef MORA_API_LIFETIME_H
#define MORA_API_LIFETIME_H

#include "context.h"

/* One more holder of ctx. */
void mora_context_retain(mora_context *ctx);
/* One holder fewer; the last one closes the context. */
void mora_context_release(mora_context *ctx);

#endif
