/* Multi-threaded RDS stress on 64 KiB thread stacks: every worker allocates, frees and
 * modifies its own heap blocks inside transactions (10% aborted and checked to restore the
 * block exactly, 20% flush commits, the rest no_flush). Every round all workers pause at a
 * barrier; the main thread truncates and compares every mapped byte with the data file.
 * Usage: stress LOG DATA THREADS SEED ROUNDS OPS_PER_ROUND */
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include <rvm/rvm_statistics.h>
#include <rvm/rds.h>
#include <pthread.h>
#include <string.h>
#include "check.h"

extern rvm_region_def_t *RegionDefs;
extern unsigned long NRegionDefs;

#define BLOCKS 48
#define STACK (64 * 1024)

struct worker {
    pthread_t thread;
    int index;
    unsigned long long rng;
    char *blocks[BLOCKS];
    unsigned long sizes[BLOCKS];
};

static pthread_barrier_t pause_start, pause_end;
static int rounds, ops;

static unsigned long next(struct worker *w) {
    w->rng = w->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned long)(w->rng >> 33);
}

static void one_op(struct worker *w) {
    int err = 0;
    int k = (int)(next(w) % BLOCKS);
    int abort_it = next(w) % 10 == 0;
    rvm_mode_t end_mode = next(w) % 5 == 0 ? flush : no_flush;
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    if (w->blocks[k] == NULL) {
        unsigned long size = 1 + next(w) % 3000;
        CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
        char *p = rds_malloc(size, &tid, &err);
        if (p == NULL) {
            CHECK(err == ENO_ROOM);
            CHECK_RC(rvm_abort_transaction(&tid), RVM_SUCCESS);
            return;
        }
        CHECK(err == SUCCESS);
        CHECK_RC(rvm_set_range(&tid, p, size), RVM_SUCCESS);
        memset(p, 'A' + w->index, size);
        if (abort_it) {
            CHECK_RC(rvm_abort_transaction(&tid), RVM_SUCCESS);
        } else {
            CHECK_RC(rvm_end_transaction(&tid, end_mode), RVM_SUCCESS);
            w->blocks[k] = p;
            w->sizes[k] = size;
        }
    } else if (next(w) % 3 == 0) {
        char *p = w->blocks[k];
        CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
        rds_free(p, &tid, &err);
        CHECK(err == SUCCESS);
        if (abort_it) {
            CHECK_RC(rvm_abort_transaction(&tid), RVM_SUCCESS);
        } else {
            CHECK_RC(rvm_end_transaction(&tid, end_mode), RVM_SUCCESS);
            w->blocks[k] = NULL;
        }
    } else {
        char *p = w->blocks[k];
        unsigned long size = w->sizes[k];
        static __thread char saved[3000];
        memcpy(saved, p, size);
        CHECK_RC(rvm_begin_transaction(&tid, abort_it || next(w) % 5 == 0 ? restore : no_restore),
                 RVM_SUCCESS);
        int ranges = 1 + (int)(next(w) % 8);
        for (int r = 0; r < ranges; r++) {
            unsigned long off = next(w) % size;
            unsigned long len = 1 + next(w) % (size - off);
            char byte = (char)next(w);
            if (next(w) % 2) {
                CHECK_RC(rvm_set_range(&tid, p + off, len), RVM_SUCCESS);
                memset(p + off, byte, len);
            } else {
                char src[64];
                memset(src, byte, sizeof src);
                if (len > sizeof src)
                    len = sizeof src;
                CHECK_RC(rvm_modify_bytes(&tid, p + off, src, len), RVM_SUCCESS);
            }
        }
        if (abort_it) {
            CHECK_RC(rvm_abort_transaction(&tid), RVM_SUCCESS);
            CHECK(memcmp(saved, p, size) == 0);
        } else {
            CHECK_RC(rvm_end_transaction(&tid, end_mode), RVM_SUCCESS);
        }
    }
}

static void *work(void *arg) {
    struct worker *w = (struct worker *)arg;
    for (int round = 0; round < rounds; round++) {
        /* The other entry points on this small stack too. */
        rvm_options_t q;
        rvm_init_options(&q);
        CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
        free(q.tid_array);
        rvm_statistics_t *st = rvm_malloc_statistics();
        CHECK_RC(RVM_STATISTICS(st), RVM_SUCCESS);
        rvm_free_statistics(st);
        CHECK_RC(rvm_flush(), RVM_SUCCESS);
        CHECK(rds_maxblock(64) == 1);
        for (int i = 0; i < ops; i++)
            one_op(w);
        pthread_barrier_wait(&pause_start);
        pthread_barrier_wait(&pause_end);
    }
    return NULL;
}

static void compare_with_file(const char *data) {
    FILE *f = fopen(data, "rb");
    CHECK(f != NULL);
    for (unsigned long r = 0; r < NRegionDefs; r++) {
        rvm_length_t len = RegionDefs[r].length;
        char *disk = (char *)malloc(len);
        CHECK(disk != NULL);
        CHECK(fseek(f, (long)RegionDefs[r].offset.low, SEEK_SET) == 0);
        CHECK(fread(disk, 1, len, f) == len);
        if (memcmp(disk, RegionDefs[r].vmaddr, len) != 0) {
            fprintf(stderr, "region %lu: memory and segment differ\n", r);
            exit(1);
        }
        free(disk);
    }
    fclose(f);
}

int main(int argc, char **argv) {
    CHECK(argc == 7);
    int threads = atoi(argv[3]);
    unsigned long long seed = strtoull(argv[4], NULL, 10);
    rounds = atoi(argv[5]);
    ops = atoi(argv[6]);
    rvm_options_t opts;
    rvm_init_options(&opts);
    opts.log_dev = argv[1];
    opts.truncate = 40;
    CHECK_RC(RVM_INIT(&opts), RVM_SUCCESS);
    char *static_addr;
    int err;
    rds_load_heap(argv[2], RVM_MK_OFFSET(0, 0), &static_addr, &err);
    CHECK(err == SUCCESS && NRegionDefs == 2 && RegionDefs != NULL);

    pthread_barrier_init(&pause_start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&pause_end, NULL, (unsigned)threads + 1);
    struct worker *workers = (struct worker *)calloc((size_t)threads, sizeof *workers);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    CHECK(pthread_attr_setstacksize(&attr, STACK) == 0);
    for (int i = 0; i < threads; i++) {
        workers[i].index = i;
        workers[i].rng = seed * 1000003ULL + (unsigned long long)i;
        CHECK(pthread_create(&workers[i].thread, &attr, work, &workers[i]) == 0);
    }
    for (int round = 0; round < rounds; round++) {
        pthread_barrier_wait(&pause_start);
        rvm_options_t q;
        rvm_init_options(&q);
        CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
        CHECK(q.n_uncommit == 0);
        CHECK_RC(rvm_truncate(), RVM_SUCCESS);
        compare_with_file(argv[2]);
        pthread_barrier_wait(&pause_end);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(workers[i].thread, NULL);
    rds_stats_t stats;
    CHECK(rds_get_stats(&stats) == SUCCESS && stats.malloc > 0);
    rvm_statistics_t rs;
    rvm_init_statistics(&rs);
    CHECK_RC(RVM_STATISTICS(&rs), RVM_SUCCESS);
    CHECK(rs.n_abort > 0 && rs.n_flush_commit > 0 && rs.n_no_flush_commit > 0);
    CHECK(rds_unload_heap(&err) == SUCCESS);
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    printf("stress ok: %u mallocs, %lu aborts\n", stats.malloc, rs.n_abort);
    return 0;
}
