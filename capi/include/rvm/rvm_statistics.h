/*
 * rvm_statistics.h: the classic RVM statistics record, filled by rvm-rs from its own counters
 * (README.md, "C programs", says which fields have a counterpart). Include <rvm/rvm.h> first.
 */
#ifndef RVM_RS_RVM_STATISTICS_H
#define RVM_RS_RVM_STATISTICS_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RVM_STATISTICS_VERSION "RVM Statistics Version 1.1 8 Dec 1992"

typedef struct rvm_statistics_t {
    rvm_struct_id_t struct_id;
    rvm_bool_t from_heap;

    /* This truncation epoch. */
    rvm_length_t n_abort;
    rvm_length_t n_flush_commit;
    rvm_length_t n_no_flush_commit;
    rvm_length_t n_uncommit;
    rvm_length_t n_no_flush;
    rvm_length_t n_truncation_wait;
    rvm_offset_t no_flush_length;
    rvm_length_t n_split;
    rvm_length_t n_flush;
    rvm_length_t n_rvm_flush;
    rvm_length_t n_special;
    rvm_length_t n_wrap;
    rvm_length_t log_dev_cur;
    rvm_offset_t log_written;
    rvm_offset_t range_overlap;
    rvm_offset_t trans_overlap;
    rvm_length_t n_range_elim;
    rvm_length_t n_trans_elim;
    rvm_length_t n_trans_coalesced;
    struct timeval flush_time;
    rvm_length_t last_flush_time;
    rvm_length_t last_truncation_time;
    rvm_length_t last_tree_build_time;
    rvm_length_t last_tree_apply_time;
    rvm_length_t flush_times[10];
    rvm_length_t range_lengths[13];
    rvm_length_t range_elims[6];
    rvm_length_t trans_elims[6];
    rvm_length_t range_overlaps[13];
    rvm_length_t trans_overlaps[13];

    /* Over the life of the log. */
    rvm_length_t tot_abort;
    rvm_length_t tot_flush_commit;
    rvm_length_t tot_no_flush_commit;
    rvm_length_t tot_split;
    rvm_length_t tot_flush;
    rvm_length_t tot_rvm_flush;
    rvm_length_t tot_special;
    rvm_length_t tot_wrap;
    rvm_length_t log_dev_max;
    rvm_offset_t tot_log_written;
    rvm_offset_t tot_range_overlap;
    rvm_offset_t tot_trans_overlap;
    rvm_length_t tot_range_elim;
    rvm_length_t tot_trans_elim;
    rvm_length_t tot_trans_coalesced;
    rvm_length_t tot_rvm_truncate;
    rvm_length_t tot_async_truncation;
    rvm_length_t tot_sync_truncation;
    rvm_length_t tot_truncation_wait;
    rvm_length_t tot_recovery;
    struct timeval tot_flush_time;
    struct timeval tot_truncation_time;
    rvm_length_t tot_tree_build_times[5];
    rvm_length_t tot_tree_apply_times[5];
    rvm_length_t tot_truncation_times[5];
    rvm_length_t tot_flush_times[10];
    rvm_length_t tot_range_lengths[13];
    rvm_length_t tot_range_elims[6];
    rvm_length_t tot_trans_elims[6];
    rvm_length_t tot_range_overlaps[13];
    rvm_length_t tot_trans_overlaps[13];
    rvm_length_t tot_trans_coalesces[6];
} rvm_statistics_t;

rvm_return_t rvm_statistics(const char *version, rvm_statistics_t *statistics);
#define RVM_STATISTICS(statistics) rvm_statistics(RVM_STATISTICS_VERSION, (statistics))
rvm_return_t rvm_print_statistics(rvm_statistics_t *statistics, FILE *out);

rvm_statistics_t *rvm_malloc_statistics(void);
void rvm_init_statistics(rvm_statistics_t *statistics);
rvm_statistics_t *rvm_copy_statistics(rvm_statistics_t *statistics);
void rvm_free_statistics(rvm_statistics_t *statistics);

#ifdef __cplusplus
}
#endif

#endif /* RVM_RS_RVM_STATISTICS_H */
