/*
 * rds.h: the classic RDS (recoverable dynamic storage) interface, implemented by rvm-rs over
 * its own heap (rvm::rds). See README.md, "C programs".
 */
#ifndef RVM_RS_RDS_H
#define RVM_RS_RDS_H

#include <stdio.h>
#include "rvm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative; positive values in an error result are RVM return codes). */
#ifndef SUCCESS
#define SUCCESS 0
#endif
#define ERVM_FAILED -1
#define EBAD_LIST -2
#define EBAD_SEGMENT_HDR -3
#define EHEAP_VERSION_SKEW -4
#define EHEAP_INIT -5
#define EBAD_ARGS -6
#define ECORRUPT -7
#define EFREED_TWICE -8
#define ENO_ROOM -9

/* Heap counters (32-bit; rvm-rs saturates them instead of wrapping). */
typedef struct {
    unsigned int malloc;
    unsigned int prealloc;
    unsigned int free;
    unsigned int coalesce;
    unsigned int hits;
    unsigned int misses;
    unsigned int large_list;
    unsigned int large_hits;
    unsigned int large_misses;
    unsigned int merged;
    unsigned int unmerged;
    unsigned int freebytes;
    unsigned int mallocbytes;
} rds_stats_t;

/* Frees recorded by rds_fake_free and performed by rds_do_free. `size` is the byte size of
 * `table`, which is allocated with malloc/realloc and released with free. */
typedef struct intlist {
    unsigned long size;
    unsigned long count;
    char **table;
} intentionList_t;

/* Tracing. */
extern int rds_tracing;
extern FILE *rds_tracing_file;
#define RDS_LOG(...)                                     \
    do {                                                 \
        if (rds_tracing && rds_tracing_file) {           \
            fprintf(rds_tracing_file, __VA_ARGS__);      \
            fflush(rds_tracing_file);                    \
        }                                                \
    } while (0)

int rds_zap_heap(char *dev, rvm_offset_t dev_length, char *start_addr, rvm_length_t static_length,
                 rvm_length_t heap_length, unsigned long nlists, unsigned long chunk_size,
                 int *err);
int rds_init_heap(char *base, rvm_length_t length, unsigned long chunk_size,
                  unsigned long nlists, rvm_tid_t *tid, int *err);
int rds_load_heap(char *dev, rvm_offset_t dev_length, char **static_addr, int *err);
int rds_start_heap(char *start_addr, int *err);
int rds_stop_heap(int *err);
int rds_unload_heap(int *err);

char *rds_malloc(unsigned long size, rvm_tid_t *tid, int *err);
int rds_free(char *addr, rvm_tid_t *tid, int *err);
int rds_prealloc(unsigned long size, unsigned long nblocks, rvm_tid_t *tid, int *err);
int rds_maxblock(unsigned long size);
int rds_fake_free(char *addr, intentionList_t *list);
int rds_do_free(intentionList_t *list, rvm_mode_t mode);

int rds_get_stats(rds_stats_t *stats);
int rds_clear_stats(int *err);
int rds_print_stats(void);

int rds_trace_on(FILE *file);
int rds_trace_off(void);
int rds_trace_dump_heap(void);

#ifdef __cplusplus
}
#endif

#endif /* RVM_RS_RDS_H */
