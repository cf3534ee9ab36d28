/* Small helpers shared by the C test programs (our own, for rvm-rs's tests). */
#ifndef CHECK_H
#define CHECK_H
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

#endif
