/* tests/check.h itself: check_report() fails a suite that ran no check (issue 10, item 9), passes
 * one whose checks all passed, and fails one with a failed check. */
#include "check.h"

int main(void) {
    const int none = check_report(); /* nothing checked yet: must fail */
    CHECK_EQ_INT(none, 1);
    const int failures_before = check_failures_;
    CHECK_EQ_INT(check_report(), 0); /* one passed check so far */
    ++check_count_;
    ++check_failures_; /* a failed check, recorded by hand so that this suite can still pass */
    const int with_failure = check_report();
    --check_failures_;
    CHECK_EQ_INT(with_failure, 1);
    CHECK_EQ_INT(check_failures_, failures_before);
    return check_report();
}
