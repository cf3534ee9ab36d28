/* The thread that began a tid keeps using it while other threads use byte copies of it at
 * the same moment (the owner's calls take the fast path until another thread's call revokes
 * it mid-stream). No declared range may be lost or torn: a commit leaves every byte of the
 * round's ranges with the round's value, and an abort (restore mode) gives every byte its old
 * value back. Each round also ends the tid from the thread where a revocation is most likely
 * in flight: the owner on even rounds, a worker on odd ones.
 * Usage: owner_and_copies LOG SEGMENT */
#include <pthread.h>
#include <string.h>
#include "one_segment.h"

#define WORKERS 3
#define RANGES 96 /* per worker and round */
#define ROUNDS 400
/* The owner declares long ranges (each call copies a chunk: a revocation arriving during one
 * must wait for it), the workers short ones after them. */
#define CHUNK 32768
#define CHUNKS 4
#define OWNED (CHUNK * CHUNKS)
#define REGION (OWNED + (WORKERS + 1) * RANGES * 8)

static unsigned char *base;
static unsigned char expect[REGION];
static rvm_tid_t shared;
static pthread_barrier_t barrier;

static unsigned char *range(long index, int r) {
    return base + OWNED + (index * RANGES + r) * 8;
}

/* Declare and write thread `index`'s short ranges of `round` through `tid`. */
static void declare(rvm_tid_t *tid, long index, int round) {
    for (int r = 0; r < RANGES; r++) {
        unsigned char *p = range(index, r);
        CHECK_RC(rvm_set_range(tid, p, 8), RVM_SUCCESS);
        memset(p, (round * 11 + (int)index + r) & 0xff, 8);
    }
}

static void *worker(void *arg) {
    long index = (long)arg;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_wait(&barrier); /* the owner has begun `shared` */
        rvm_tid_t copy;
        memcpy(&copy, &shared, sizeof copy);
        declare(&copy, index, round);
        pthread_barrier_wait(&barrier); /* every range declared */
        if (round % 2 == 1 && index == 1) {
            if (round % 4 == 1)
                CHECK_RC(rvm_end_transaction(&copy, no_flush), RVM_SUCCESS);
            else
                CHECK_RC(rvm_abort_transaction(&copy), RVM_SUCCESS);
        }
        pthread_barrier_wait(&barrier); /* ended or aborted */
        CHECK_RC(rvm_set_range(&copy, base, 1), RVM_ETID);
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 3);
    base = (unsigned char *)start_one_segment(argv[1], 4 << 20, argv[2], 4096 * 64, (char *)0x290000000000UL);
    memcpy(expect, base, REGION);

    CHECK(pthread_barrier_init(&barrier, NULL, WORKERS + 1) == 0);
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&threads[i], NULL, worker, (void *)(i + 1)) == 0);
    int commits = 0;
    for (int round = 0; round < ROUNDS; round++) {
        rvm_init_tid(&shared);
        CHECK_RC(rvm_begin_transaction(&shared, restore), RVM_SUCCESS);
        /* A call on the fast path before the workers start. */
        CHECK_RC(rvm_set_range(&shared, range(0, 0), 8), RVM_SUCCESS);
        memset(range(0, 0), (round * 11) & 0xff, 8);
        pthread_barrier_wait(&barrier);
        /* While the workers declare through their copies: long calls, then short ones. */
        static unsigned char chunk[CHUNK];
        memset(chunk, (round * 11 + 5) & 0xff, CHUNK);
        for (int c = 0; c < CHUNKS; c++)
            CHECK_RC(rvm_modify_bytes(&shared, base + c * CHUNK, chunk, CHUNK), RVM_SUCCESS);
        declare(&shared, 0, round);
        pthread_barrier_wait(&barrier);
        int commit;
        if (round % 2 == 0) {
            commit = round % 3 != 2;
            if (commit)
                CHECK_RC(rvm_end_transaction(&shared, no_flush), RVM_SUCCESS);
            else
                CHECK_RC(rvm_abort_transaction(&shared), RVM_SUCCESS);
        } else {
            commit = round % 4 == 1; /* worker 1 ends or aborts it */
        }
        pthread_barrier_wait(&barrier);
        if (commit) {
            for (long i = 0; i <= WORKERS; i++)
                for (int r = 0; r < RANGES; r++)
                    CHECK(*range(i, r) == ((round * 11 + (int)i + r) & 0xff));
            for (int b = 0; b < OWNED; b++)
                CHECK(base[b] == ((round * 11 + 5) & 0xff));
            memcpy(expect, base, REGION);
            commits++;
        }
        CHECK(memcmp(expect, base, REGION) == 0);
        CHECK_RC(rvm_end_transaction(&shared, no_flush), RVM_ETID);
    }
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    rvm_options_t q;
    rvm_init_options(&q);
    CHECK_RC(rvm_query(&q, NULL), RVM_SUCCESS);
    CHECK(q.n_uncommit == 0);
    print_statistics();
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    printf("owner and copies ok (%d commits)\n", commits);
    return 0;
}
