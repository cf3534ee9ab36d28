/* A counter in a plain file mapped with rvm_map (copied into memory, or mapped private with
 * RVM_MAP_PRIVATE): the value and copies of it at the start of the file and in its last,
 * partial page. `run` commits forever, alternating flush commits and no_flush commits followed
 * by rvm_flush, and prints each committed value after its commit returned; `verify ACKED`
 * checks the recovered state, truncates, and compares the mapped memory with the file.
 * Usage: plain_counter LOG DATA copy|private run | plain_counter LOG DATA copy|private verify ACKED */
#include <rvm/rvm.h>
#include <string.h>
#include "check.h"

#define COPIES 15

struct counter {
    unsigned long value;
    unsigned long copies[COPIES];
};

int main(int argc, char **argv) {
    CHECK(argc >= 5);
    rvm_options_t *opts = rvm_malloc_options();
    opts->log_dev = argv[1];
    if (strcmp(argv[3], "private") == 0)
        opts->flags |= RVM_MAP_PRIVATE;
    else
        CHECK(strcmp(argv[3], "copy") == 0);
    CHECK_RC(RVM_INIT(opts), RVM_SUCCESS);
    rvm_region_t *region = rvm_malloc_region();
    region->data_dev = argv[2];
    CHECK_RC(rvm_map(region, NULL), RVM_SUCCESS);
    unsigned long size = region->length;
    CHECK(size > 4096 && size % 4096 != 0);
    struct counter *head = (struct counter *)region->vmaddr;
    struct counter *tail = (struct counter *)(region->vmaddr + size - sizeof *tail);

    if (strcmp(argv[4], "verify") == 0) {
        CHECK(argc == 6);
        unsigned long acked = strtoul(argv[5], NULL, 10);
        unsigned long v = head->value;
        if (v != acked && v != acked + 1) {
            fprintf(stderr, "recovered value %lu, acknowledged %lu\n", v, acked);
            return 1;
        }
        for (int i = 0; i < COPIES; i++)
            CHECK(head->copies[i] == v && tail->copies[i] == ~v);
        CHECK(tail->value == v);
        CHECK_RC(rvm_truncate(), RVM_SUCCESS);
        FILE *f = fopen(argv[2], "rb");
        CHECK(f != NULL);
        char *disk = malloc(size);
        CHECK(disk != NULL && fread(disk, 1, size, f) == size);
        fclose(f);
        CHECK(memcmp(disk, region->vmaddr, size) == 0);
        free(disk);
        CHECK_RC(rvm_unmap(region), RVM_SUCCESS);
        CHECK_RC(rvm_terminate(), RVM_SUCCESS);
        printf("value %lu\n", v);
        return 0;
    }

    CHECK(strcmp(argv[4], "run") == 0);
    for (unsigned long i = head->value + 1;; i++) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        CHECK_RC(rvm_begin_transaction(&tid, restore), RVM_SUCCESS);
        CHECK_RC(rvm_set_range(&tid, head, sizeof *head), RVM_SUCCESS);
        CHECK_RC(rvm_set_range(&tid, tail, sizeof *tail), RVM_SUCCESS);
        head->value = i;
        tail->value = i;
        for (int c = 0; c < COPIES; c++) {
            head->copies[c] = i;
            tail->copies[c] = ~i;
        }
        commit_and_acknowledge(&tid, i);
    }
}
