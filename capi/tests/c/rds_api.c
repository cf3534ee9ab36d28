/* The RDS interface: zap, load, start/stop, malloc/free with a tid and with NULL, prealloc,
 * maxblock, intention lists, statistics, tracing and error codes.
 * Usage: rds_api LOG DATA TRACEFILE (LOG exists, DATA does not). */
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include <rvm/rds.h>
#include <string.h>
#include "check.h"

extern rvm_region_def_t *RegionDefs;
extern unsigned long NRegionDefs;
extern long rds_rvmsize;
extern char *rds_startaddr;

#define START ((char *)0x240000000000UL)
#define HEAP_LEN (1024 * 1024)
#define STATIC_LEN (64 * 1024)

int main(int argc, char **argv) {
    CHECK(argc == 4);
    int err = 12345;
    char *static_addr = NULL;
    /* Before initialisation: RVM_EINIT through err. */
    CHECK(rds_malloc(10, NULL, &err) == NULL && err == RVM_EINIT);

    rvm_options_t opts;
    rvm_init_options(&opts);
    opts.log_dev = argv[1];
    CHECK_RC(RVM_INIT(&opts), RVM_SUCCESS);
    CHECK(rds_malloc(10, NULL, &err) == NULL && err == EHEAP_INIT);

    /* Zap (create) a heap segment, then load it. */
    CHECK(rds_zap_heap(argv[2], RVM_MK_OFFSET(0, 0), START, STATIC_LEN, HEAP_LEN, 80, 64, &err)
          == SUCCESS);
    CHECK(err == SUCCESS);
    CHECK(rds_load_heap(argv[2], RVM_MK_OFFSET(0, 0), &static_addr, &err) == SUCCESS);
    CHECK(err == SUCCESS && static_addr == START + HEAP_LEN);
    CHECK(NRegionDefs == 2 && RegionDefs[0].vmaddr == START && RegionDefs[1].length == STATIC_LEN);
    CHECK(rds_startaddr == START && rds_rvmsize == HEAP_LEN + STATIC_LEN);

    /* Tracing to a file. */
    FILE *trace = fopen(argv[3], "w");
    CHECK(trace != NULL);
    CHECK(rds_trace_on(trace) == SUCCESS && rds_tracing && rds_tracing_file == trace);
    RDS_LOG("hello %d\n", 42);

    /* malloc/free in a caller transaction; abort gives the block back (freed again by a
       heap call of its own: the counters count that free). */
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    rds_stats_t before, during, after;
    CHECK(rds_get_stats(&before) == SUCCESS);
    CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
    char *a = rds_malloc(100, &tid, &err);
    CHECK(a != NULL && err == SUCCESS);
    CHECK(rds_get_stats(&during) == SUCCESS);
    CHECK(during.malloc == before.malloc + 1 && during.mallocbytes > before.mallocbytes);
    CHECK_RC(rvm_abort_transaction(&tid), RVM_SUCCESS);
    CHECK(rds_get_stats(&after) == SUCCESS);
    CHECK(after.mallocbytes == before.mallocbytes && after.free == during.free + 1);

    /* NULL tid: a transaction of its own (committed no_flush). */
    char *b = rds_malloc(100, NULL, &err);
    CHECK(b != NULL && err == SUCCESS);
    CHECK(rds_free(b, NULL, &err) == SUCCESS && err == SUCCESS);
    CHECK(rds_free(b, NULL, &err) == EFREED_TWICE && err == EFREED_TWICE);
    CHECK(rds_free(static_addr, NULL, &err) != SUCCESS && err == EBAD_ARGS);
    CHECK(rds_free(NULL, NULL, &err) == EBAD_ARGS);

    /* Heap changes in a no_restore transaction too (nothing in the heap depends on the
       caller's undo); the free is made at the commit. */
    CHECK_RC(rvm_begin_transaction(&tid, no_restore), RVM_SUCCESS);
    char *c = rds_malloc(10, &tid, &err);
    CHECK(c != NULL && err == SUCCESS);
    CHECK(rds_free(c, &tid, &err) == SUCCESS && err == SUCCESS);
    CHECK(rds_free(c, &tid, &err) == EFREED_TWICE);
    CHECK_RC(rvm_end_transaction(&tid, flush), RVM_SUCCESS);
    CHECK(rds_free(c, NULL, &err) == EFREED_TWICE);
    /* An ended tid. */
    CHECK(rds_malloc(10, &tid, &err) == NULL && err == RVM_ETID);

    /* Two tids of this thread use the heap at once (no "busy", no wait), and spec K11: tid
       A allocates, B allocates, writes and commits, A aborts; B's block stays intact and the
       byte accounting is B's block more than before. */
    rvm_tid_t ta, tb;
    rvm_init_tid(&ta);
    rvm_init_tid(&tb);
    rds_stats_t k11_before, k11_after;
    CHECK(rds_get_stats(&k11_before) == SUCCESS);
    CHECK_RC(rvm_begin_transaction(&ta, restore), RVM_SUCCESS);
    CHECK_RC(rvm_begin_transaction(&tb, restore), RVM_SUCCESS);
    char *ka = rds_malloc(200, &ta, &err);
    CHECK(ka != NULL && err == SUCCESS);
    CHECK_RC(rvm_set_range(&ta, ka, 200), RVM_SUCCESS);
    memset(ka, 0xaa, 200);
    char *kb = rds_malloc(200, &tb, &err);
    CHECK(kb != NULL && err == SUCCESS && kb != ka);
    CHECK_RC(rvm_set_range(&tb, kb, 200), RVM_SUCCESS);
    memset(kb, 0xbb, 200);
    CHECK_RC(rvm_end_transaction(&tb, flush), RVM_SUCCESS);
    CHECK_RC(rvm_abort_transaction(&ta), RVM_SUCCESS);
    CHECK(rds_get_stats(&k11_after) == SUCCESS);
    CHECK(k11_after.mallocbytes > k11_before.mallocbytes);
    CHECK(kb[0] == (char)0xbb && kb[199] == (char)0xbb);
    /* A's block went back at its abort: freeing it again is refused (a double free, or no
       block there if the heap merged it), with the code returned and in err alike. */
    int ka_rc = rds_free(ka, NULL, &err);
    CHECK(ka_rc == err && (ka_rc == EFREED_TWICE || ka_rc == EBAD_ARGS));
    CHECK(rds_free(kb, NULL, &err) == SUCCESS && err == SUCCESS);
    CHECK(rds_get_stats(&k11_after) == SUCCESS);
    CHECK(k11_after.mallocbytes == k11_before.mallocbytes);

    /* prealloc, maxblock, no room. */
    CHECK(rds_prealloc(200, 5, NULL, &err) == SUCCESS && err == SUCCESS);
    CHECK(rds_maxblock(1000) == 1 && rds_maxblock(2 * HEAP_LEN) == 0);
    CHECK(rds_malloc(2 * HEAP_LEN, NULL, &err) == NULL && err == ENO_ROOM);

    /* Intention lists: fake frees recorded (table from malloc), done after commit. */
    intentionList_t list = {0, 0, NULL};
    char *blocks[20];
    for (int i = 0; i < 20; i++) {
        blocks[i] = rds_malloc(50, NULL, &err);
        CHECK(blocks[i] != NULL);
    }
    for (int i = 0; i < 20; i++)
        CHECK(rds_fake_free(blocks[i], &list) == SUCCESS);
    CHECK(list.count == 20 && list.size >= 20 * sizeof(char *) && list.table[19] == blocks[19]);
    CHECK(rds_fake_free(blocks[3], &list) == EFREED_TWICE);
    CHECK(rds_fake_free(NULL, &list) == SUCCESS && list.count == 20);
    CHECK(rds_fake_free(static_addr, &list) == EBAD_ARGS);
    CHECK(rds_get_stats(&before) == SUCCESS);
    CHECK(rds_do_free(&list, (rvm_mode_t)3) == RVM_EMODE);
    CHECK(rds_do_free(&list, flush) == SUCCESS);
    CHECK(list.table == NULL && list.count == 0);
    CHECK(rds_get_stats(&after) == SUCCESS && after.free == before.free + 20);
    CHECK(after.mallocbytes < before.mallocbytes && after.freebytes > before.freebytes);
    CHECK(rds_free(blocks[0], NULL, &err) == EFREED_TWICE);

    /* Statistics: print and clear. */
    CHECK(rds_print_stats() == SUCCESS);
    CHECK(rds_clear_stats(&err) == SUCCESS && err == SUCCESS);
    CHECK(rds_get_stats(&after) == SUCCESS && after.malloc == 0 && after.free == 0);
    CHECK(rds_get_stats(NULL) == EBAD_ARGS);

    CHECK(rds_trace_dump_heap() == SUCCESS);
    CHECK(rds_trace_off() == SUCCESS && !rds_tracing);
    fclose(trace);

    /* stop/start by address; init_heap in a caller transaction makes a fresh heap. */
    CHECK(rds_stop_heap(&err) == SUCCESS);
    CHECK(rds_malloc(10, NULL, &err) == NULL && err == EHEAP_INIT);
    CHECK(rds_start_heap(START + 4096, &err) != SUCCESS && err == EBAD_ARGS);
    CHECK(rds_start_heap(START, &err) == SUCCESS && err == SUCCESS);
    CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
    CHECK(rds_init_heap(START, HEAP_LEN, 64, 80, &tid, &err) == SUCCESS && err == SUCCESS);
    CHECK_RC(rvm_end_transaction(&tid, flush), RVM_SUCCESS);
    CHECK(rds_get_stats(&after) == SUCCESS && after.mallocbytes == 0);

    CHECK(rds_unload_heap(&err) == SUCCESS && err == SUCCESS);
    CHECK(NRegionDefs == 0 && RegionDefs == NULL);
    CHECK(rds_malloc(10, NULL, &err) == NULL && err == EHEAP_INIT);
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    puts("rds api ok");
    return 0;
}
