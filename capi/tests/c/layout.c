/* Sizes, offsets and values of the classic interface (LP64), checked at compile time.
 * Compiled as C and as C++ by the tests; generated once from the interface reference. */
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include <rvm/rvm_statistics.h>
#include <rvm/rds.h>
#include <stddef.h>
#include <string.h>
#ifdef __cplusplus
#define SA(c) static_assert(c, #c)
#else
#define SA(c) _Static_assert(c, #c)
#endif

SA(sizeof(rvm_offset_t) == 16);
SA(offsetof(rvm_offset_t, high) == 0);
SA(offsetof(rvm_offset_t, low) == 8);
SA(sizeof(rvm_tid_t) == 40);
SA(offsetof(rvm_tid_t, struct_id) == 0);
SA(offsetof(rvm_tid_t, from_heap) == 4);
SA(offsetof(rvm_tid_t, uname) == 8);
SA(offsetof(rvm_tid_t, tid) == 24);
SA(offsetof(rvm_tid_t, reserved) == 32);
SA(sizeof(rvm_options_t) == 120);
SA(offsetof(rvm_options_t, struct_id) == 0);
SA(offsetof(rvm_options_t, from_heap) == 4);
SA(offsetof(rvm_options_t, log_dev) == 8);
SA(offsetof(rvm_options_t, truncate) == 16);
SA(offsetof(rvm_options_t, recovery_buf_len) == 24);
SA(offsetof(rvm_options_t, flush_buf_len) == 32);
SA(offsetof(rvm_options_t, max_read_len) == 40);
SA(offsetof(rvm_options_t, log_empty) == 48);
SA(offsetof(rvm_options_t, pager) == 56);
SA(offsetof(rvm_options_t, n_uncommit) == 64);
SA(offsetof(rvm_options_t, tid_array) == 72);
SA(offsetof(rvm_options_t, flags) == 80);
SA(offsetof(rvm_options_t, create_log_file) == 88);
SA(offsetof(rvm_options_t, create_log_size) == 96);
SA(offsetof(rvm_options_t, create_log_mode) == 112);
SA(sizeof(rvm_region_t) == 72);
SA(offsetof(rvm_region_t, struct_id) == 0);
SA(offsetof(rvm_region_t, from_heap) == 4);
SA(offsetof(rvm_region_t, data_dev) == 8);
SA(offsetof(rvm_region_t, dev_length) == 16);
SA(offsetof(rvm_region_t, offset) == 32);
SA(offsetof(rvm_region_t, vmaddr) == 48);
SA(offsetof(rvm_region_t, length) == 56);
SA(offsetof(rvm_region_t, no_copy) == 64);
SA(sizeof(rvm_region_def_t) == 32);
SA(offsetof(rvm_region_def_t, offset) == 0);
SA(offsetof(rvm_region_def_t, length) == 16);
SA(offsetof(rvm_region_def_t, vmaddr) == 24);
SA(sizeof(rds_stats_t) == 52);
SA(offsetof(rds_stats_t, malloc) == 0);
SA(offsetof(rds_stats_t, prealloc) == 4);
SA(offsetof(rds_stats_t, free) == 8);
SA(offsetof(rds_stats_t, coalesce) == 12);
SA(offsetof(rds_stats_t, hits) == 16);
SA(offsetof(rds_stats_t, misses) == 20);
SA(offsetof(rds_stats_t, large_list) == 24);
SA(offsetof(rds_stats_t, large_hits) == 28);
SA(offsetof(rds_stats_t, large_misses) == 32);
SA(offsetof(rds_stats_t, merged) == 36);
SA(offsetof(rds_stats_t, unmerged) == 40);
SA(offsetof(rds_stats_t, freebytes) == 44);
SA(offsetof(rds_stats_t, mallocbytes) == 48);
SA(sizeof(intentionList_t) == 24);
SA(offsetof(intentionList_t, size) == 0);
SA(offsetof(intentionList_t, count) == 8);
SA(offsetof(intentionList_t, table) == 16);
SA(sizeof(rvm_statistics_t) == 1600);
SA(offsetof(rvm_statistics_t, struct_id) == 0);
SA(offsetof(rvm_statistics_t, from_heap) == 4);
SA(offsetof(rvm_statistics_t, n_abort) == 8);
SA(offsetof(rvm_statistics_t, n_flush_commit) == 16);
SA(offsetof(rvm_statistics_t, n_no_flush_commit) == 24);
SA(offsetof(rvm_statistics_t, n_uncommit) == 32);
SA(offsetof(rvm_statistics_t, n_no_flush) == 40);
SA(offsetof(rvm_statistics_t, n_truncation_wait) == 48);
SA(offsetof(rvm_statistics_t, no_flush_length) == 56);
SA(offsetof(rvm_statistics_t, n_split) == 72);
SA(offsetof(rvm_statistics_t, n_flush) == 80);
SA(offsetof(rvm_statistics_t, n_rvm_flush) == 88);
SA(offsetof(rvm_statistics_t, n_special) == 96);
SA(offsetof(rvm_statistics_t, n_wrap) == 104);
SA(offsetof(rvm_statistics_t, log_dev_cur) == 112);
SA(offsetof(rvm_statistics_t, log_written) == 120);
SA(offsetof(rvm_statistics_t, range_overlap) == 136);
SA(offsetof(rvm_statistics_t, trans_overlap) == 152);
SA(offsetof(rvm_statistics_t, n_range_elim) == 168);
SA(offsetof(rvm_statistics_t, n_trans_elim) == 176);
SA(offsetof(rvm_statistics_t, n_trans_coalesced) == 184);
SA(offsetof(rvm_statistics_t, flush_time) == 192);
SA(offsetof(rvm_statistics_t, last_flush_time) == 208);
SA(offsetof(rvm_statistics_t, last_truncation_time) == 216);
SA(offsetof(rvm_statistics_t, last_tree_build_time) == 224);
SA(offsetof(rvm_statistics_t, last_tree_apply_time) == 232);
SA(offsetof(rvm_statistics_t, flush_times) == 240);
SA(offsetof(rvm_statistics_t, range_lengths) == 320);
SA(offsetof(rvm_statistics_t, range_elims) == 424);
SA(offsetof(rvm_statistics_t, trans_elims) == 472);
SA(offsetof(rvm_statistics_t, range_overlaps) == 520);
SA(offsetof(rvm_statistics_t, trans_overlaps) == 624);
SA(offsetof(rvm_statistics_t, tot_abort) == 728);
SA(offsetof(rvm_statistics_t, tot_flush_commit) == 736);
SA(offsetof(rvm_statistics_t, tot_no_flush_commit) == 744);
SA(offsetof(rvm_statistics_t, tot_split) == 752);
SA(offsetof(rvm_statistics_t, tot_flush) == 760);
SA(offsetof(rvm_statistics_t, tot_rvm_flush) == 768);
SA(offsetof(rvm_statistics_t, tot_special) == 776);
SA(offsetof(rvm_statistics_t, tot_wrap) == 784);
SA(offsetof(rvm_statistics_t, log_dev_max) == 792);
SA(offsetof(rvm_statistics_t, tot_log_written) == 800);
SA(offsetof(rvm_statistics_t, tot_range_overlap) == 816);
SA(offsetof(rvm_statistics_t, tot_trans_overlap) == 832);
SA(offsetof(rvm_statistics_t, tot_range_elim) == 848);
SA(offsetof(rvm_statistics_t, tot_trans_elim) == 856);
SA(offsetof(rvm_statistics_t, tot_trans_coalesced) == 864);
SA(offsetof(rvm_statistics_t, tot_rvm_truncate) == 872);
SA(offsetof(rvm_statistics_t, tot_async_truncation) == 880);
SA(offsetof(rvm_statistics_t, tot_sync_truncation) == 888);
SA(offsetof(rvm_statistics_t, tot_truncation_wait) == 896);
SA(offsetof(rvm_statistics_t, tot_recovery) == 904);
SA(offsetof(rvm_statistics_t, tot_flush_time) == 912);
SA(offsetof(rvm_statistics_t, tot_truncation_time) == 928);
SA(offsetof(rvm_statistics_t, tot_tree_build_times) == 944);
SA(offsetof(rvm_statistics_t, tot_tree_apply_times) == 984);
SA(offsetof(rvm_statistics_t, tot_truncation_times) == 1024);
SA(offsetof(rvm_statistics_t, tot_flush_times) == 1064);
SA(offsetof(rvm_statistics_t, tot_range_lengths) == 1144);
SA(offsetof(rvm_statistics_t, tot_range_elims) == 1248);
SA(offsetof(rvm_statistics_t, tot_trans_elims) == 1296);
SA(offsetof(rvm_statistics_t, tot_range_overlaps) == 1344);
SA(offsetof(rvm_statistics_t, tot_trans_overlaps) == 1448);
SA(offsetof(rvm_statistics_t, tot_trans_coalesces) == 1552);
SA(sizeof(rvm_bool_t) == 4 && sizeof(rvm_struct_id_t) == 4 && sizeof(rvm_mode_t) == 4);
SA(sizeof(rvm_return_t) == 4 && sizeof(rvm_length_t) == 8);
SA(sizeof(((rvm_tid_t *)0)->uname) == 16);
SA(rvm_false == 0 && rvm_true == 1);
SA(rvm_first_struct_id == 39 && rvm_region_id == 40 && rvm_options_id == 41 && rvm_tid_id == 42);
SA(rvm_statistics_id == 43 && rvm_last_struct_id == 44);
SA(rvm_first_mode == 139 && restore == 140 && no_restore == 141 && flush == 142);
SA(no_flush == 143 && rvm_last_mode == 144);
SA(RVM_SUCCESS == 0 && rvm_first_code == 199 && RVM_EINIT == 200 && RVM_EINTERNAL == 201);
SA(RVM_EIO == 202 && RVM_ELOG == 204 && RVM_ELOG_VERSION_SKEW == 205 && RVM_EMODE == 206);
SA(RVM_ENAME_TOO_LONG == 207 && RVM_ENO_MEMORY == 208 && RVM_ENOT_MAPPED == 209);
SA(RVM_EOFFSET == 210 && RVM_EOPTIONS == 211 && RVM_EOVERLAP == 212 && RVM_EPAGER == 213);
SA(RVM_ERANGE == 214 && RVM_EREGION == 215 && RVM_EREGION_DEF == 216 && RVM_ESRC == 217);
SA(RVM_ESTATISTICS == 218 && RVM_ESTAT_VERSION_SKEW == 219 && RVM_ETERMINATED == 220);
SA(RVM_ETHREADS == 221 && RVM_ETID == 222 && RVM_ETOO_BIG == 223 && RVM_EUNCOMMIT == 224);
SA(RVM_EVERSION_SKEW == 225 && RVM_EVM_OVERLAP == 226 && rvm_last_code == 227);
SA(RVM_ESEGMENT_HDR == 2000 && TRUE == 1 && FALSE == 0 && SUCCESS == 0);
SA(RVM_VERSION_MAX == 128);
SA(RVM_COALESCE_RANGES == 1 && RVM_COALESCE_TRANS == 2 && RVM_ALL_OPTIMIZATIONS == 3);
SA(RVM_MAP_PRIVATE == 8 && TRUNCATE == 50);
SA(RECOVERY_BUF_LEN == 256 * 1024 && MIN_RECOVERY_BUF_LEN == 64 * 1024);
SA(FLUSH_BUF_LEN == 256 * 1024 && MIN_FLUSH_BUF_LEN == 64 * 1024 && MAX_READ_LEN == 512 * 1024);
SA(ERVM_FAILED == -1 && EBAD_LIST == -2 && EBAD_SEGMENT_HDR == -3 && EHEAP_VERSION_SKEW == -4);
SA(EHEAP_INIT == -5 && EBAD_ARGS == -6 && ECORRUPT == -7 && EFREED_TWICE == -8);
SA(ENO_ROOM == -9);
SA(sizeof(RVM_VERSION) == sizeof("RVM Interface Version 1.3  7 Mar 1994"));

int main(void) {
    /* The strings themselves, and C++ callers' qualified enumerators. */
    if (strcmp(RVM_VERSION, "RVM Interface Version 1.3  7 Mar 1994") != 0) return 1;
    if (strcmp(RVM_STATISTICS_VERSION, "RVM Statistics Version 1.1 8 Dec 1992") != 0) return 1;
#ifdef __cplusplus
    rvm_mode_t mode = rvm_mode_t::restore;
    if (mode != restore) return 1;
#endif
    rvm_offset_t o = RVM_OFFSET_INITIALIZER(1, 2);
    if (RVM_OFFSET_HIGH_BITS_TO_LENGTH(o) != 1 || RVM_OFFSET_TO_LENGTH(o) != 2) return 1;
    rvm_region_t region;
    rvm_init_region(&region);
    RVM_INIT_REGION(region, o, 4096, (char *)0);
    if (region.length != 4096 || region.offset.low != 2) return 1;
    RDS_LOG("%s", "not traced\n");
    if (MIN(1, 2) != 1 || MAX(1, 2) != 2) return 1;
    return 0;
}
