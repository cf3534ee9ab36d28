/* One tid used from several threads at once: four threads declare and write ranges through
 * byte copies of a tid another thread began, then it is committed or aborted (restore mode:
 * every byte gets its old value back). The image is checked after every round, the copies
 * are stale afterwards, and tids begun on one thread end on another. Then 700 tids open at
 * once, listed by rvm_query and ended through the listed copies.
 * Usage: shared_tid LOG SEGMENT */
#include <pthread.h>
#include <string.h>
#include "one_segment.h"

#define THREADS 4
#define RANGES 64 /* per thread and round */
#define ROUNDS 200
#define REGION (THREADS * RANGES * 8)

static unsigned char *base;
static unsigned char expect[REGION];
static rvm_tid_t shared;
static rvm_tid_t handed[THREADS];
static pthread_barrier_t barrier;

static void *worker(void *arg) {
    long index = (long)arg;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_wait(&barrier); /* the main thread has begun `shared` */
        rvm_tid_t copy;
        memcpy(&copy, &shared, sizeof copy);
        for (int r = 0; r < RANGES; r++) {
            unsigned char *p = base + (index * RANGES + r) * 8;
            CHECK_RC(rvm_set_range(&copy, p, 8), RVM_SUCCESS);
            memset(p, (round * 7 + (int)index + r) & 0xff, 8);
        }
        /* Begin one here for the main thread to end. */
        rvm_init_tid(&handed[index]);
        CHECK_RC(rvm_begin_transaction(&handed[index], no_restore), RVM_SUCCESS);
        pthread_barrier_wait(&barrier); /* every range declared */
        pthread_barrier_wait(&barrier); /* the main thread has ended or aborted it */
        CHECK_RC(rvm_set_range(&copy, base, 1), RVM_ETID);
        CHECK_RC(rvm_abort_transaction(&copy), RVM_ETID);
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 3);
    base = (unsigned char *)start_one_segment(argv[1], 4 << 20, argv[2], 4096 * 4, (char *)0x280000000000UL);
    memcpy(expect, base, REGION);

    CHECK(pthread_barrier_init(&barrier, NULL, THREADS + 1) == 0);
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0);
    int commits = 0;
    for (int round = 0; round < ROUNDS; round++) {
        rvm_init_tid(&shared);
        CHECK_RC(rvm_begin_transaction(&shared, restore), RVM_SUCCESS);
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
        for (int i = 0; i < THREADS; i++)
            CHECK_RC(rvm_end_transaction(&handed[i], no_flush), RVM_SUCCESS);
        if (round % 3 == 2) {
            CHECK_RC(rvm_abort_transaction(&shared), RVM_SUCCESS);
        } else {
            CHECK_RC(rvm_end_transaction(&shared, no_flush), RVM_SUCCESS);
            memcpy(expect, base, REGION);
            commits++;
            /* Every byte of the round's ranges has this round's value. */
            for (int i = 0; i < THREADS; i++)
                for (int r = 0; r < RANGES; r++)
                    CHECK(base[(i * RANGES + r) * 8] == ((round * 7 + i + r) & 0xff));
        }
        CHECK(memcmp(expect, base, REGION) == 0);
        CHECK_RC(rvm_end_transaction(&shared, no_flush), RVM_ETID);
        pthread_barrier_wait(&barrier);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    rvm_options_t q;
    rvm_init_options(&q);
    CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
    CHECK(q.n_uncommit == 0);

    /* Many tids open at once (the registry grows past its first blocks of slots): rvm_query
     * lists every one, its copies end them, and the originals are stale afterwards. */
    enum { MANY = 700 };
    static rvm_tid_t many[MANY];
    for (int i = 0; i < MANY; i++) {
        rvm_init_tid(&many[i]);
        CHECK_RC(rvm_begin_transaction(&many[i], restore), RVM_SUCCESS);
        CHECK_RC(rvm_set_range(&many[i], base + i, 1), RVM_SUCCESS);
        base[i] = (unsigned char)(i * 13 + 1);
    }
    rvm_init_options(&q);
    CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
    CHECK(q.n_uncommit == MANY && q.tid_array != NULL);
    CHECK_RC(rvm_terminate(), RVM_EUNCOMMIT);
    for (int i = 0; i < MANY; i++)
        CHECK_RC(rvm_end_transaction(&q.tid_array[i], no_flush), RVM_SUCCESS);
    free(q.tid_array);
    for (int i = 0; i < MANY; i++) {
        CHECK_RC(rvm_abort_transaction(&many[i]), RVM_ETID);
        CHECK(base[i] == (unsigned char)(i * 13 + 1));
    }
    rvm_init_options(&q);
    CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
    CHECK(q.n_uncommit == 0);
    CHECK_RC(rvm_flush(), RVM_SUCCESS);
    print_statistics();
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    printf("shared tid ok (%d commits)\n", commits);
    return 0;
}
