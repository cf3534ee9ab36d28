/* Small helpers shared by the C test programs (our own, for rvm-rs's tests). */
#ifndef CHECK_H
#define CHECK_H
#include <rvm/rvm.h>
#include <rvm/rvm_statistics.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

#define CHECK_RC(call, want)                                                     \
    do {                                                                         \
        rvm_return_t rc_ = (call);                                               \
        if (rc_ != (want)) {                                                     \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n",         \
                    __FILE__, __LINE__, #call, rc_, rvm_return(rc_), #want);     \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Commit counter value `i` (the crash-loop programs): odd values with a flush commit, even ones
 * with a no_flush commit followed by rvm_flush. Then print `i`: it is acknowledged. */
static inline void commit_and_acknowledge(rvm_tid_t *tid, unsigned long i) {
    if (i % 2) {
        CHECK_RC(rvm_end_transaction(tid, flush), RVM_SUCCESS);
    } else {
        CHECK_RC(rvm_end_transaction(tid, no_flush), RVM_SUCCESS);
        CHECK_RC(rvm_flush(), RVM_SUCCESS);
    }
    printf("%lu\n", i);
    fflush(stdout);
}

/* Print the statistics report (its "tid calls" line says which path this process's tid calls
 * take: the test driver checks it). */
static inline void print_statistics(void) {
    rvm_statistics_t stats;
    rvm_init_statistics(&stats);
    CHECK_RC(rvm_statistics(RVM_STATISTICS_VERSION, &stats), RVM_SUCCESS);
    CHECK_RC(rvm_print_statistics(&stats, stdout), RVM_SUCCESS);
}

#endif
