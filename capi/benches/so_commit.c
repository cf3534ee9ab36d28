/* The C half of capi/benches/commit.rs's no_flush comparison, as a C program runs it: through
 * the installed shared library (its thread-locals reached through __tls_get_addr), not linked
 * into a Rust benchmark. Median ns per 8-byte restore-mode no_flush commit over 1,000 batches
 * of 2,000. Build and run (BENCHMARKS.md, "C interface versus Rust API"):
 *   cargo build --release -p rvm-capi && ln -sf librvm_capi.so target/release/librvm.so.1
 *   cc -O2 -Icapi/include -Icapi/tests/c capi/benches/so_commit.c -Ltarget/release -lrvm_capi \
 *      -o target/release/so_commit
 *   d=$(mktemp -d); LD_LIBRARY_PATH=target/release target/release/so_commit $d; rm -r $d
 * An optional second argument sets the number of batches (the tests run a few). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "one_segment.h"

static double now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(double*)a, y = *(double*)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: so_commit SCRATCH_DIR [BATCHES]\n");
        return 2;
    }
    char log[256], seg[256];
    snprintf(log, sizeof log, "%s/log", argv[1]);
    snprintf(seg, sizeof seg, "%s/seg", argv[1]);
    char *base = start_one_segment(log, 64ul << 20, seg, 1ul << 20, (char *)0x270000000000);
    int batches = argc == 3 ? atoi(argv[2]) : 1000, batch = 2000;
    if (batches < 1) return 2;
    double *v = malloc(sizeof(double) * batches);
    unsigned long i = 0;
    for (int b = 0; b < batches; b++) {
        double t = now_ns();
        for (int k = 0; k < batch; k++) {
            i++;
            rvm_tid_t tid;
            memset(&tid, 0, sizeof tid);
            rvm_init_tid(&tid);
            if (rvm_begin_transaction(&tid, restore) != RVM_SUCCESS) return 1;
            unsigned long *p = (unsigned long *)(base + (i % 4096) * 8);
            if (rvm_set_range(&tid, p, 8) != RVM_SUCCESS) return 2;
            *p = i;
            if (rvm_end_transaction(&tid, no_flush) != RVM_SUCCESS) return 3;
        }
        v[b] = (now_ns() - t) / batch;
    }
    qsort(v, batches, sizeof(double), cmp);
    printf("so no_flush: %.1f ns\n", v[batches / 2]);
    return 0;
}
