#include "check.h"
int main(void) {
    mora_shape s;
    REQUIRE_OK(mora_shape_make(&s, 4096, 4096, 8, MORA_OP_SHARE));
    CHECK_EQ_INT(s.rhat, 256);
    return check_report();
}
