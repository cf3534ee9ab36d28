/* Lifecycle and error rules of the classic interface: EINIT before init, version skew,
 * running without a log, ETID/EMODE, byte copies of tids, rvm_query, EUNCOMMIT at terminate,
 * EINIT after terminate. Usage: lifecycle LOG SEGMENT (neither exists yet). */
#define _DEFAULT_SOURCE
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include <sys/mman.h>
#include <rvm/rvm_statistics.h>
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    CHECK(argc == 3);
    rvm_tid_t tid, copy;
    rvm_init_tid(&tid);
    char byte = 0;

    /* Before rvm_initialize. */
    CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_EINIT);
    CHECK_RC(rvm_set_range(&tid, &byte, 1), RVM_EINIT);
    CHECK_RC(rvm_end_transaction(&tid, flush), RVM_EINIT);
    CHECK_RC(rvm_abort_transaction(&tid), RVM_EINIT);
    CHECK_RC(rvm_modify_bytes(&tid, &byte, NULL, 1), RVM_EINIT);
    CHECK_RC(rvm_set_range(NULL, &byte, 1), RVM_EINIT);
    CHECK_RC(rvm_flush(), RVM_EINIT);
    CHECK_RC(rvm_truncate(), RVM_EINIT);
    CHECK_RC(rvm_terminate(), RVM_EINIT);
    rvm_options_t *opts = rvm_malloc_options();
    CHECK(opts != NULL && opts->struct_id == rvm_options_id && opts->from_heap == rvm_true);
    CHECK(opts->truncate == TRUNCATE && opts->max_read_len == MAX_READ_LEN);
    CHECK_RC(rvm_query(opts, NULL), RVM_EINIT);

    /* Version skew, then a start without a log. */
    CHECK_RC(rvm_initialize("RVM Interface Version 1.2", NULL), RVM_EVERSION_SKEW);
    CHECK_RC(rvm_initialize(NULL, NULL), RVM_EVERSION_SKEW);
    CHECK_RC(RVM_INIT(NULL), RVM_SUCCESS);
    CHECK_RC(RVM_INIT(NULL), RVM_SUCCESS); /* already running: nothing done */
    CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_ELOG);
    CHECK_RC(rvm_flush(), RVM_ELOG);

    /* A log: created (tiny sizes rounded up), then opened with rvm_set_options. */
    opts->log_dev = argv[1];
    rvm_offset_t size = RVM_MK_OFFSET(0, 4096);
    CHECK_RC(rvm_create_log(opts, &size, 0644), RVM_SUCCESS);
    CHECK_RC(rvm_create_log(opts, &size, 0644), RVM_ELOG); /* exists */
    CHECK_RC(rvm_set_options(NULL), RVM_EOPTIONS);
    opts->truncate = 30;
    CHECK_RC(rvm_set_options(opts), RVM_SUCCESS);

    /* A segment to write into. */
    rvm_region_def_t def;
    def.offset = RVM_MK_OFFSET(0, 0);
    def.length = 8192;
    def.vmaddr = (char *)0x210000000000UL;
    CHECK_RC(rvm_create_segment(argv[2], RVM_MK_OFFSET(0, 0), NULL, 1, &def), RVM_SUCCESS);
    CHECK(def.offset.low == 4096 && def.length == 8192);
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    CHECK_RC(rvm_load_segment(argv[2], RVM_MK_OFFSET(0, 0), NULL, &n, &defs), RVM_SUCCESS);
    CHECK(n == 1 && defs[0].vmaddr == def.vmaddr && defs[0].offset.low == 4096);
    /* Loading it again would map over the first copy. */
    unsigned long n2 = 0;
    rvm_region_def_t *defs2 = NULL;
    CHECK(rvm_load_segment(argv[2], RVM_MK_OFFSET(0, 0), NULL, &n2, &defs2) != RVM_SUCCESS);
    char *base = defs[0].vmaddr;

    /* A segment whose address is taken by another mapping: RVM_EVM_OVERLAP, nothing replaced. */
    char other_path[4200];
    snprintf(other_path, sizeof other_path, "%s.other", argv[2]);
    rvm_region_def_t other = {RVM_OFFSET_INITIALIZER(0, 0), 4096, (char *)0x218000000000UL};
    CHECK_RC(rvm_create_segment(other_path, RVM_MK_OFFSET(0, 0), NULL, 1, &other), RVM_SUCCESS);
    char *taken = (char *)mmap(other.vmaddr, 4096, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(taken == other.vmaddr);
    taken[0] = 'z';
    CHECK_RC(rvm_load_segment(other_path, RVM_MK_OFFSET(0, 0), NULL, &n2, &defs2), RVM_EVM_OVERLAP);
    CHECK(taken[0] == 'z');
    CHECK(munmap(taken, 4096) == 0);
    CHECK_RC(rvm_load_segment(other_path, RVM_MK_OFFSET(0, 0), NULL, &n2, &defs2), RVM_SUCCESS);
    CHECK(n2 == 1 && defs2[0].vmaddr == other.vmaddr);
    CHECK_RC(rvm_release_segment(n2, &defs2), RVM_SUCCESS);

    /* ETID: NULL, never begun, wrong struct id, ended. */
    CHECK_RC(rvm_abort_transaction(NULL), RVM_ETID);
    CHECK_RC(rvm_abort_transaction(&tid), RVM_ETID);
    CHECK_RC(rvm_end_transaction(&tid, flush), RVM_ETID);
    CHECK_RC(rvm_set_range(NULL, base, 1), RVM_ETID);
    rvm_tid_t junk;
    memset(&junk, 0x5a, sizeof junk);
    CHECK_RC(rvm_begin_transaction(&junk, restore), RVM_ETID);
    CHECK_RC(rvm_abort_transaction(&junk), RVM_ETID);

    /* EMODE at begin; EMODE at end leaves the tid usable. */
    CHECK_RC(rvm_begin_transaction(&tid, (rvm_mode_t)7), RVM_EMODE);
    CHECK_RC(rvm_begin_transaction(&tid, flush), RVM_EMODE);
    CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
    CHECK_RC(rvm_set_range(&tid, base, 16), RVM_SUCCESS);
    memset(base, 'a', 16);
    CHECK_RC(rvm_set_range(&tid, base + 8190, 4), RVM_ENOT_MAPPED);
    CHECK_RC(rvm_modify_bytes(&tid, base, NULL, 4), RVM_ESRC);
    CHECK_RC(rvm_end_transaction(&tid, restore), RVM_EMODE);
    CHECK_RC(rvm_end_transaction(&tid, flush), RVM_SUCCESS);
    CHECK_RC(rvm_end_transaction(&tid, flush), RVM_ETID);
    CHECK(base[0] == 'a' && base[15] == 'a');

    /* A byte copy of a begun tid ends it; the original is then stale. */
    CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
    CHECK_RC(rvm_modify_bytes(&tid, base, "bb", 2), RVM_SUCCESS);
    memcpy(&copy, &tid, sizeof copy);
    CHECK_RC(rvm_abort_transaction(&copy), RVM_SUCCESS);
    CHECK(base[0] == 'a' && base[1] == 'a');
    CHECK_RC(rvm_abort_transaction(&tid), RVM_ETID);

    /* rvm_query lists open tids; terminate refuses while they are open. */
    rvm_tid_t *t1 = rvm_malloc_tid();
    rvm_tid_t t2;
    rvm_init_tid(&t2);
    CHECK_RC(rvm_begin_transaction(t1, restore), RVM_SUCCESS);
    CHECK_RC(rvm_begin_transaction(&t2, no_restore), RVM_SUCCESS);
    CHECK_RC(rvm_modify_bytes(t1, base + 100, "x", 1), RVM_SUCCESS);
    rvm_options_t q;
    rvm_init_options(&q);
    char name[MAXPATHLEN];
    q.log_dev = name;
    CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
    CHECK(q.n_uncommit == 2 && q.tid_array != NULL && q.truncate == 30);
    CHECK(strstr(name, "/") != NULL);
    CHECK_RC(rvm_terminate(), RVM_EUNCOMMIT);
    for (long i = 0; i < q.n_uncommit; i++)
        CHECK_RC(rvm_abort_transaction(&q.tid_array[i]), RVM_SUCCESS);
    free(q.tid_array);
    CHECK(base[100] == 0);
    /* A stale count with a NULL array is not trusted. */
    CHECK_RC(rvm_begin_transaction(&t2, restore), RVM_SUCCESS);
    rvm_init_options(&q);
    q.n_uncommit = 1L << 60;
    CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
    CHECK(q.n_uncommit == 1 && q.tid_array != NULL);
    CHECK_RC(rvm_abort_transaction(&q.tid_array[0]), RVM_SUCCESS);
    free(q.tid_array);
    CHECK_RC(rvm_end_transaction(t1, flush), RVM_ETID);
    rvm_free_tid(t1);

    /* Records with the wrong id, and rvm_map of the file of the segment loaded now. */
    rvm_options_t bad_options;
    memset(&bad_options, 0, sizeof bad_options);
    CHECK_RC(rvm_set_options(&bad_options), RVM_EOPTIONS);
    CHECK_RC(rvm_query(&bad_options, NULL), RVM_EOPTIONS);
    rvm_region_t region;
    memset(&region, 0, sizeof region);
    CHECK_RC(rvm_map(NULL, NULL), RVM_EREGION);
    CHECK_RC(rvm_map(&region, NULL), RVM_EREGION);
    rvm_init_region(&region);
    region.data_dev = argv[2];
    CHECK_RC(rvm_map(&region, &bad_options), RVM_EOPTIONS);
    CHECK_RC(rvm_map(&region, NULL), RVM_EOVERLAP);
    CHECK_RC(rvm_unmap(&region), RVM_ENOT_MAPPED);
    rvm_statistics_t bad_stats;
    memset(&bad_stats, 0, sizeof bad_stats);
    CHECK_RC(RVM_STATISTICS(&bad_stats), RVM_ESTATISTICS);
    CHECK_RC(rvm_print_statistics(&bad_stats, stdout), RVM_ESTATISTICS);

    /* Statistics. */
    rvm_statistics_t stats;
    rvm_init_statistics(&stats);
    CHECK_RC(rvm_statistics("RVM Statistics Version 1.0", &stats), RVM_ESTAT_VERSION_SKEW);
    CHECK_RC(rvm_statistics(RVM_STATISTICS_VERSION, NULL), RVM_ESTATISTICS);
    CHECK_RC(RVM_STATISTICS(&stats), RVM_SUCCESS);
    CHECK(stats.n_flush_commit == 1 && stats.n_abort == 4 && stats.n_uncommit == 0);
    CHECK(stats.struct_id == rvm_statistics_id);
    CHECK_RC(rvm_print_statistics(&stats, stdout), RVM_SUCCESS);

    /* RVM_COALESCE_TRANS: the no_flush commits queued before a flush share one record. Off
     * (the flags so far are 0), each commit is a record of its own. */
    for (int on = 0; on < 2; on++) {
        opts->flags = on ? RVM_COALESCE_TRANS : 0;
        CHECK_RC(rvm_set_options(opts), RVM_SUCCESS);
        for (int i = 0; i < 3; i++) {
            rvm_init_tid(&t2);
            CHECK_RC(rvm_begin_transaction(&t2, no_restore), RVM_SUCCESS);
            CHECK_RC(rvm_modify_bytes(&t2, base + 200 + 8 * i, "ccc", 3), RVM_SUCCESS);
            CHECK_RC(rvm_modify_bytes(&t2, base + 300, "ddd", 3), RVM_SUCCESS);
            CHECK_RC(rvm_end_transaction(&t2, no_flush), RVM_SUCCESS);
        }
        CHECK_RC(rvm_flush(), RVM_SUCCESS);
        CHECK_RC(RVM_STATISTICS(&stats), RVM_SUCCESS);
        CHECK(stats.n_trans_coalesced == (on ? 2UL : 0UL));
        CHECK(stats.tot_trans_coalesced == stats.n_trans_coalesced);
        /* The shared record logs the 3 bytes every commit rewrote once: two ranges of a
         * 32-byte header and 8 bytes of data each fewer. */
        CHECK(stats.n_trans_elim == (on ? 2UL : 0UL));
        CHECK(stats.trans_overlap.low == (on ? 80UL : 0UL));
        CHECK(stats.tot_trans_elim == stats.n_trans_elim);
    }
    opts->flags = 0;
    CHECK_RC(rvm_set_options(opts), RVM_SUCCESS);

    /* Names, offsets, pages. */
    CHECK(strcmp(rvm_return(RVM_ETID), "RVM_ETID") == 0);
    CHECK(strcmp(rvm_return(203), "RVM_EPLACEHOLDER") == 0);
    CHECK(strcmp(rvm_return(-5), "Invalid RVM return code") == 0);
    CHECK(strcmp(rvm_mode(no_flush), "no_flush") == 0);
    CHECK(strcmp(rvm_type(rvm_tid_id), "rvm_tid_t") == 0);
    rvm_offset_t a = RVM_MK_OFFSET(0, ~0UL), b = RVM_LENGTH_TO_OFFSET(1);
    rvm_offset_t c = RVM_ADD_OFFSETS(a, b);
    CHECK(c.high == 1 && c.low == 0);
    rvm_offset_t d = RVM_SUB_LENGTH_FROM_OFFSET(c, 1);
    CHECK(RVM_OFFSET_EQL(d, a) && RVM_OFFSET_LSS(a, c) && RVM_OFFSET_GTR(c, a));
    CHECK(RVM_PAGE_SIZE == 4096 && RVM_SEGMENT_HDR_SIZE == 4096);
    rvm_offset_t e = RVM_MK_OFFSET(0, 4097);
    CHECK(RVM_ROUND_OFFSET_UP_TO_PAGE_SIZE(e).low == 8192);
    CHECK(RVM_ROUND_OFFSET_DOWN_TO_PAGE_SIZE(e).low == 4096);
    CHECK(RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(1) == 4096);

    /* Shut down: release, terminate, and no restart. */
    CHECK_RC(rvm_release_segment(n, &defs), RVM_SUCCESS);
    CHECK(defs == NULL);
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    CHECK_RC(rvm_terminate(), RVM_EINIT);
    CHECK_RC(RVM_INIT(NULL), RVM_EINIT);
    CHECK_RC(rvm_begin_transaction(&t2, restore), RVM_EINIT);
    /* Calls on a tid check it before the phase, but still answer RVM_EINIT. */
    CHECK_RC(rvm_set_range(&t2, &byte, 1), RVM_EINIT);
    CHECK_RC(rvm_modify_bytes(&t2, &byte, &byte, 1), RVM_EINIT);
    CHECK_RC(rvm_modify_bytes(&t2, &byte, NULL, 1), RVM_EINIT);
    CHECK_RC(rvm_end_transaction(&t2, flush), RVM_EINIT);
    CHECK_RC(rvm_end_transaction(&t2, 12345), RVM_EINIT);
    CHECK_RC(rvm_abort_transaction(&t2), RVM_EINIT);
    CHECK_RC(rvm_set_range(NULL, &byte, 1), RVM_EINIT);
    rvm_free_options(opts);
    puts("lifecycle ok");
    return 0;
}
