/* The version of the library as built (the header a caller compiled against may differ). */
#include "mora.h"

const char *mora_version(void) { return MORA_VERSION_STRING; }

int mora_version_number(void) { return MORA_VERSION_MAJOR * 10000 + MORA_VERSION_MINOR * 100 + MORA_VERSION_PATCH; }
