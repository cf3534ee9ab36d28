/*
 * persistent_counter: a classic RVM/RDS program running on rvm-rs.
 *
 * Counts its own runs in the static region of a heap segment and keeps a note from every
 * run in heap memory, so the data survives restarts and crashes.
 *
 *   rdsinit --log-size 1M LOG DATA --data-len 4M --yes
 *   cc persistent_counter.c $(pkg-config --cflags --libs rvmpt) -o persistent_counter
 *   ./persistent_counter LOG DATA
 */
#include <rvm/rvm.h>
#include <rvm/rds.h>
#include <stdio.h>
#include <string.h>

struct root {
    unsigned long runs;
    char *last_note; /* in the heap */
};

static int fail(const char *what, int code) {
    fprintf(stderr, "%s: %d (%s)\n", what, code, code > 0 ? rvm_return(code) : "RDS error");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LOG DATA\n", argv[0]);
        return 2;
    }
    rvm_options_t *options = rvm_malloc_options();
    options->log_dev = argv[1];
    rvm_return_t rc = RVM_INIT(options); /* opens the log and recovers it */
    if (rc != RVM_SUCCESS)
        return fail("rvm_initialize", rc);

    char *static_area;
    int err;
    rds_load_heap(argv[2], RVM_MK_OFFSET(0, 0), &static_area, &err);
    if (err != SUCCESS)
        return fail("rds_load_heap", err);
    struct root *root = (struct root *)static_area;

    rvm_tid_t tid;
    rvm_init_tid(&tid);
    rvm_begin_transaction(&tid, restore);
    char note[64];
    snprintf(note, sizeof note, "run %lu", root->runs + 1);
    char *copy = rds_malloc(strlen(note) + 1, &tid, &err);
    if (copy == NULL) {
        rvm_abort_transaction(&tid);
        return fail("rds_malloc", err);
    }
    rvm_modify_bytes(&tid, copy, note, strlen(note) + 1);
    char *old = root->last_note;
    rvm_set_range(&tid, root, sizeof *root); /* then write in place */
    root->runs++;
    root->last_note = copy;
    if (old != NULL)
        rds_free(old, &tid, &err);
    rc = rvm_end_transaction(&tid, flush); /* durable when this returns */
    if (rc != RVM_SUCCESS)
        return fail("rvm_end_transaction", rc);

    printf("%s\n", root->last_note);
    rds_unload_heap(&err);
    rvm_terminate();
    rvm_free_options(options);
    return 0;
}
