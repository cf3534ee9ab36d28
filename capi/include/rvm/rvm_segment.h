/*
 * rvm_segment.h: the classic segment loader interface, implemented by rvm-rs over its own
 * segment format (see README.md, "C programs").
 */
#ifndef RVM_RS_RVM_SEGMENT_H
#define RVM_RS_RVM_SEGMENT_H

#include <rvm/rvm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The segment header occupies the first page of a segment. */
#define RVM_SEGMENT_HDR_SIZE rvm_page_size()

/* The segment header is not an rvm-rs segment header. */
#define RVM_ESEGMENT_HDR 2000

/* One region of a segment: where it lies in the segment and where it is mapped. */
typedef struct rvm_region_def_t {
    rvm_offset_t offset;
    rvm_length_t length;
    char *vmaddr;
} rvm_region_def_t;

rvm_return_t rvm_create_segment(char *dev, rvm_offset_t dev_length, rvm_options_t *options,
                                rvm_length_t nregions, rvm_region_def_t *defs);
rvm_return_t rvm_load_segment(char *dev, rvm_offset_t dev_length, rvm_options_t *options,
                              unsigned long *nregions, rvm_region_def_t **defs);
rvm_return_t rvm_release_segment(unsigned long nregions, rvm_region_def_t **defs);

#ifdef __cplusplus
}
#endif

#endif /* RVM_RS_RVM_SEGMENT_H */
