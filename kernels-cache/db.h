/* Internal: the database of tuned results shipped with the library (the .json files of
 * kernels-cache/db/, embedded at build time; format and matching in db/README.md;
 * scripts/db-from-tune.py writes the files from mora-tune's JSON). A plan asks it when the user's
 * own kernels cache has no record. */
#ifndef MORA_KERNELS_CACHE_DB_H
#define MORA_KERNELS_CACHE_DB_H

#include "kernels.h"

/* The shipped database (the .json files of kernels-cache/db/, embedded at build time): the
 * parameters for a kind, by the most specific match — device name, then arch, then vendor — for the
 * backend, op (or any op), dtype (or any dtype); among matches of one level an exact op, then an
 * exact dtype, wins over "*", and then the first in file order. Parameters the entry does not name
 * keep the spec's values. Fills spec->params and returns MORA_OK, or MORA_E_NOT_FOUND (spec
 * untouched) when nothing matches. `matched` (may be NULL) receives "device", "arch" or "vendor". */
mora_status mora_db_lookup(const char *backend, const char *device, const char *arch, const char *vendor,
                           mora_kernel_spec *spec, const char **matched);
/* The same lookup over one database given as JSON text (the format of kernels-cache/db/README.md)
 * instead of the embedded files: for tests and for checking a db file before it is shipped.
 * MORA_E_ARG when the text is not a valid database; invalid entries in it are skipped (warned once). */
mora_status mora_db_lookup_in(const char *json, const char *backend, const char *device, const char *arch,
                              const char *vendor, mora_kernel_spec *spec, const char **matched);

#endif
