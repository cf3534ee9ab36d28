/* The whole lifecycle on a 64 KiB thread stack: start (with recovery of a log that holds
 * committed records), load a heap, transactions, heap calls, truncate, unload, terminate.
 * Usage: small_stack LOG DATA crash|recover */
#include <rvm/rvm.h>
#include <rvm/rds.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

static char **args;

static void *body(void *unused) {
    (void)unused;
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = args[1];
    o.truncate = 0; /* keep the records in the log for the next run's recovery */
    CHECK_RC(RVM_INIT(&o), RVM_SUCCESS);
    char *static_addr;
    int err;
    rds_load_heap(args[2], RVM_MK_OFFSET(0, 0), &static_addr, &err);
    CHECK(err == SUCCESS);
    unsigned long **root = (unsigned long **)static_addr;
    if (strcmp(args[3], "crash") == 0) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
        unsigned long *p = (unsigned long *)rds_malloc(64, &tid, &err);
        CHECK(p != NULL && err == SUCCESS);
        unsigned long value = 0x1234567890UL;
        CHECK_RC(rvm_modify_bytes(&tid, p, &value, sizeof value), RVM_SUCCESS);
        CHECK_RC(rvm_set_range(&tid, root, sizeof *root), RVM_SUCCESS);
        *root = p;
        CHECK_RC(rvm_end_transaction(&tid, flush), RVM_SUCCESS);
        _exit(0); /* no terminate, no truncation: the next start recovers */
    }
    CHECK(*root != NULL && **root == 0x1234567890UL);
    char *q = rds_malloc(100, NULL, &err);
    CHECK(q != NULL && err == SUCCESS);
    CHECK(rds_free(q, NULL, &err) == SUCCESS);
    rvm_options_t query;
    rvm_init_options(&query);
    CHECK_RC(rvm_query(&query, NULL), RVM_SUCCESS);
    CHECK_RC(rvm_truncate(), RVM_SUCCESS);
    CHECK(rds_unload_heap(&err) == SUCCESS);
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    puts("small stack ok");
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 4);
    args = argv;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    CHECK(pthread_attr_setstacksize(&attr, 64 * 1024) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, &attr, body, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    return 0;
}
