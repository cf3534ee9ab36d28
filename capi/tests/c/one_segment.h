/* Setup shared by the threaded C test programs (our own, for rvm-rs's tests). */
#ifndef ONE_SEGMENT_H
#define ONE_SEGMENT_H
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include "check.h"

/* Start RVM on a new log of `log_size` bytes at `log`, create a segment at `segment` holding
 * one region of `length` bytes mapped at `vmaddr`, load it, and return the region's address. */
static inline char *start_one_segment(char *log, unsigned long log_size, char *segment,
                                      unsigned long length, char *vmaddr) {
    rvm_options_t opts;
    rvm_init_options(&opts);
    opts.log_dev = log;
    CHECK_RC(RVM_INIT(NULL), RVM_SUCCESS);
    rvm_offset_t size = RVM_MK_OFFSET(0, log_size);
    CHECK_RC(rvm_create_log(&opts, &size, 0), RVM_SUCCESS);
    CHECK_RC(rvm_set_options(&opts), RVM_SUCCESS);
    rvm_region_def_t def = {RVM_OFFSET_INITIALIZER(0, 0), length, vmaddr};
    CHECK_RC(rvm_create_segment(segment, RVM_MK_OFFSET(0, 0), NULL, 1, &def), RVM_SUCCESS);
    unsigned long n;
    rvm_region_def_t *defs;
    CHECK_RC(rvm_load_segment(segment, RVM_MK_OFFSET(0, 0), NULL, &n, &defs), RVM_SUCCESS);
    return defs[0].vmaddr;
}

#endif
