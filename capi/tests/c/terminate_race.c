/* rvm_terminate while other threads keep calling: it refuses (EUNCOMMIT) while any of their
 * transactions is open, succeeds once none is, and every call after it returns RVM_EINIT.
 * Usage: terminate_race LOG SEGMENT */
#include <pthread.h>
#include <string.h>
#include "one_segment.h"

#define THREADS 3
static char *base;
static volatile int stop;

static void *worker(void *arg) {
    long index = (long)arg;
    unsigned long commits = 0;
    for (;;) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        rvm_return_t rc = rvm_begin_transaction(&tid, restore);
        if (rc == RVM_EINIT)
            break;
        CHECK_RC(rc, RVM_SUCCESS);
        CHECK_RC(rvm_set_range(&tid, base + index * 64, 8), RVM_SUCCESS);
        memcpy(base + index * 64, &commits, sizeof commits);
        CHECK_RC(rvm_end_transaction(&tid, stop ? flush : no_flush), RVM_SUCCESS);
        commits++;
        /* Once asked to stop, leave no transaction open and keep calling other entry points. */
        while (stop) {
            rc = rvm_flush();
            if (rc == RVM_EINIT)
                return NULL;
            CHECK_RC(rc, RVM_SUCCESS);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 3);
    base = start_one_segment(argv[1], 1 << 20, argv[2], 4096, (char *)0x270000000000UL);

    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0);
    /* While the workers run, terminate is refused or succeeds only between transactions;
     * a refusal never disturbs them. */
    int refused = 0;
    for (int i = 0; i < 2000; i++) {
        rvm_tid_t mine;
        rvm_init_tid(&mine);
        CHECK_RC(rvm_begin_transaction(&mine, restore), RVM_SUCCESS);
        CHECK_RC(rvm_terminate(), RVM_EUNCOMMIT);
        refused++;
        CHECK_RC(rvm_abort_transaction(&mine), RVM_SUCCESS);
    }
    stop = 1;
    print_statistics();
    rvm_return_t rc;
    while ((rc = rvm_terminate()) == RVM_EUNCOMMIT)
        ;
    CHECK_RC(rc, RVM_SUCCESS);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    CHECK_RC(rvm_flush(), RVM_EINIT);
    CHECK_RC(RVM_INIT(NULL), RVM_EINIT);
    printf("terminate race ok (%d refusals)\n", refused);
    return 0;
}
