/* A counter in the static region of an rdsinit segment loaded with rds_load_heap, plus a ring
 * of heap blocks reallocated by every transaction. `run` commits forever, alternating flush
 * commits and no_flush commits followed by rvm_flush, and prints each committed value after
 * its commit returned; `verify ACKED` checks the recovered state.
 * Usage: counter LOG DATA run | counter LOG DATA verify ACKED */
#include <rvm/rvm.h>
#include <rvm/rds.h>
#include <string.h>
#include "check.h"

#define COPIES 15
#define RING 64

struct root {
    unsigned long value;
    unsigned long copies[COPIES];
    unsigned long *blocks[RING];
};

int main(int argc, char **argv) {
    CHECK(argc >= 4);
    rvm_options_t *opts = rvm_malloc_options();
    opts->log_dev = argv[1];
    CHECK_RC(RVM_INIT(opts), RVM_SUCCESS);
    char *static_addr = NULL;
    int err = -100;
    CHECK(rds_load_heap(argv[2], RVM_MK_OFFSET(0, 0), &static_addr, &err) == 0);
    CHECK(err == SUCCESS && static_addr != NULL);
    struct root *root = (struct root *)static_addr;

    if (strcmp(argv[3], "verify") == 0) {
        CHECK(argc == 5);
        unsigned long acked = strtoul(argv[4], NULL, 10);
        unsigned long v = root->value;
        if (v != acked && v != acked + 1) {
            fprintf(stderr, "recovered value %lu, acknowledged %lu\n", v, acked);
            return 1;
        }
        for (int i = 0; i < COPIES; i++)
            CHECK(root->copies[i] == v);
        for (int k = 0; k < RING; k++) {
            unsigned long *b = root->blocks[k];
            if (b == NULL)
                continue;
            CHECK(b[0] % RING == (unsigned long)k && b[0] <= v && b[1] == ~b[0]);
        }
        printf("value %lu\n", v);
        return 0;
    }

    CHECK(strcmp(argv[3], "run") == 0);
    for (unsigned long i = root->value + 1;; i++) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
        CHECK_RC(rvm_set_range(&tid, root, sizeof *root), RVM_SUCCESS);
        root->value = i;
        for (int c = 0; c < COPIES; c++)
            root->copies[c] = i;
        int k = (int)(i % RING);
        if (root->blocks[k] != NULL) {
            rds_free((char *)root->blocks[k], &tid, &err);
            CHECK(err == SUCCESS);
        }
        unsigned long *b = (unsigned long *)rds_malloc(16 + i % 200, &tid, &err);
        CHECK(b != NULL && err == SUCCESS);
        CHECK_RC(rvm_set_range(&tid, b, 16), RVM_SUCCESS);
        b[0] = i;
        b[1] = ~i;
        root->blocks[k] = b;
        commit_and_acknowledge(&tid, i);
    }
}
