/* Five transactions open at once, in restore and no_restore mode, writing in place after
 * rvm_set_range (and with rvm_modify_bytes), committed and aborted; memory is compared byte for
 * byte with an expected image after every step, then with the data file after truncation.
 * The region is an rvm-rs segment (`segment`, loaded with rvm_load_segment) or a plain file
 * mapped with rvm_map, copied into memory (`copy`) or mapped private (`private`).
 * Usage: five_tids LOG DATA [segment|copy|private]. */
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include <string.h>
#include "check.h"

#define SIZE 16384
static char expected[SIZE];
static char *base;

static void compare(const char *what) {
    if (memcmp(base, expected, SIZE) != 0) {
        for (int i = 0; i < SIZE; i++)
            if (base[i] != expected[i]) {
                fprintf(stderr, "%s: byte %d is %d, expected %d\n", what, i, base[i], expected[i]);
                break;
            }
        exit(1);
    }
}

/* Declare [off, off+len) in tid and write `value` there in place; `commit` says whether the
 * write is expected to stay. */
static void write_range(rvm_tid_t *tid, int off, int len, char value, int stays) {
    CHECK_RC(rvm_set_range(tid, base + off, len), RVM_SUCCESS);
    memset(base + off, value, len);
    if (stays)
        memset(expected + off, value, len);
}

/* Map the plain file DATA (SIZE bytes of a pattern, written here) with rvm_map: checks the
 * classic codes for bad requests first. Returns the mapped region. */
static rvm_region_t *map_plain_file(char *data, rvm_options_t *opts) {
    FILE *f = fopen(data, "wb");
    CHECK(f != NULL);
    for (int i = 0; i < SIZE; i++)
        expected[i] = (char)(i * 13 + 1);
    CHECK(fwrite(expected, 1, SIZE, f) == SIZE);
    CHECK(fclose(f) == 0);

    rvm_region_t *region = rvm_malloc_region();
    CHECK_RC(rvm_map(NULL, NULL), RVM_EREGION);
    region->data_dev = data;
    RVM_ZERO_OFFSET(region->offset);
    region->offset.low = SIZE; /* past the end of the file */
    CHECK_RC(rvm_map(region, NULL), RVM_EOFFSET);
    region->offset.low = 0;
    region->vmaddr = (char *)0x220000000123UL; /* not page-aligned */
    CHECK_RC(rvm_map(region, NULL), RVM_ERANGE);
    region->vmaddr = NULL; /* the library chooses */
    region->length = 0;    /* to the end of the file */
    /* Options given to rvm_map are applied as by rvm_set_options (the same log here). */
    CHECK_RC(rvm_map(region, opts), RVM_SUCCESS);
    CHECK(region->vmaddr != NULL && region->length == SIZE && region->offset.low == 0);
    rvm_region_t again = *region;
    CHECK_RC(rvm_map(&again, NULL), RVM_EOVERLAP);
    return region;
}

int main(int argc, char **argv) {
    CHECK(argc == 3 || argc == 4);
    const char *mode = argc == 4 ? argv[3] : "segment";
    int plain = strcmp(mode, "segment") != 0;
    CHECK(!plain || strcmp(mode, "copy") == 0 || strcmp(mode, "private") == 0);
    rvm_options_t opts;
    rvm_init_options(&opts);
    opts.log_dev = argv[1];
    opts.flags = RVM_ALL_OPTIMIZATIONS;
    if (strcmp(mode, "private") == 0)
        opts.flags |= RVM_MAP_PRIVATE;
    CHECK_RC(RVM_INIT(NULL), RVM_SUCCESS);
    rvm_offset_t log_size = RVM_MK_OFFSET(0, 1 << 20);
    CHECK_RC(rvm_create_log(&opts, &log_size, 0600), RVM_SUCCESS);
    CHECK_RC(rvm_set_options(&opts), RVM_SUCCESS);

    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    rvm_region_t *region = NULL;
    long file_offset = 0;
    if (plain) {
        region = map_plain_file(argv[2], &opts);
        base = region->vmaddr;
        compare("fresh plain file");
    } else {
        rvm_region_def_t def = {RVM_OFFSET_INITIALIZER(0, 0), SIZE, (char *)0x220000000000UL};
        CHECK_RC(rvm_create_segment(argv[2], RVM_MK_OFFSET(0, 0), &opts, 1, &def), RVM_SUCCESS);
        CHECK_RC(rvm_load_segment(argv[2], RVM_MK_OFFSET(0, 0), &opts, &n, &defs), RVM_SUCCESS);
        base = defs[0].vmaddr;
        file_offset = (long)defs[0].offset.low;
        compare("fresh segment");
    }

    /* A pattern everybody starts from. */
    rvm_tid_t t0;
    rvm_init_tid(&t0);
    CHECK_RC(rvm_begin_transaction(&t0, no_restore), RVM_SUCCESS);
    CHECK_RC(rvm_set_range(&t0, base, SIZE), RVM_SUCCESS);
    for (int i = 0; i < SIZE; i++)
        base[i] = expected[i] = (char)(i * 7 + 3);
    CHECK_RC(rvm_end_transaction(&t0, flush), RVM_SUCCESS);
    compare("pattern");

    rvm_tid_t t1, t2, t3, t4, t5;
    rvm_init_tid(&t1);
    rvm_init_tid(&t2);
    rvm_init_tid(&t3);
    rvm_init_tid(&t4);
    rvm_init_tid(&t5);
    CHECK_RC(rvm_begin_transaction(&t1, no_restore), RVM_SUCCESS);
    CHECK_RC(rvm_begin_transaction(&t2, restore), RVM_SUCCESS);
    CHECK_RC(rvm_begin_transaction(&t3, no_restore), RVM_SUCCESS);
    CHECK_RC(rvm_begin_transaction(&t4, restore), RVM_SUCCESS);
    CHECK_RC(rvm_begin_transaction(&t5, restore), RVM_SUCCESS);

    /* Unames are unique and strictly increasing in the order transactions begin (spec C.8). */
    {
        const rvm_tid_t *begun[] = {&t1, &t2, &t3, &t4, &t5};
        for (int i = 1; i < 5; i++) {
            const struct timeval *a = &begun[i - 1]->uname, *b = &begun[i]->uname;
            CHECK(a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_usec < b->tv_usec));
            CHECK(b->tv_usec >= 0 && b->tv_usec < 1000000);
        }
    }

    /* t2: a null transaction; a bad end mode leaves it open. */
    CHECK_RC(rvm_end_transaction(&t2, restore), RVM_EMODE);
    CHECK_RC(rvm_end_transaction(&t2, flush), RVM_SUCCESS);
    compare("null transaction");

    /* t1: one range, committed with flush. */
    write_range(&t1, 100, 100, 0, 1);
    CHECK_RC(rvm_end_transaction(&t1, flush), RVM_SUCCESS);
    compare("t1");

    /* t3: several ranges, one through rvm_modify_bytes, committed no_flush, then rvm_flush. */
    write_range(&t3, 300, 50, 0100, 1);
    write_range(&t3, 400, 150, 0101, 1);
    char src[512];
    memset(src, 0102, sizeof src);
    CHECK_RC(rvm_modify_bytes(&t3, base + 1000, src, sizeof src), RVM_SUCCESS);
    memcpy(expected + 1000, src, sizeof src);
    CHECK_RC(rvm_end_transaction(&t3, no_flush), RVM_SUCCESS);
    CHECK_RC(rvm_flush(), RVM_SUCCESS);
    compare("t3");

    /* t4: overlapping ranges, aborted: every byte restored, in reverse order of declaration. */
    write_range(&t4, 2000, 150, 0141, 0);
    write_range(&t4, 2100, 50, 0142, 0);
    write_range(&t4, 2050, 500, 0143, 0);
    CHECK(base[2000] == 0141 && base[2100] == 0143);
    CHECK_RC(rvm_abort_transaction(&t4), RVM_SUCCESS);
    compare("t4 aborted");

    /* t5: the same ranges plus shadowed ones, committed with flush. */
    write_range(&t5, 2000, 150, 0141, 1);
    write_range(&t5, 2100, 50, 0142, 1);
    write_range(&t5, 2050, 500, 0143, 1);
    write_range(&t5, 2400, 100, 0144, 1);
    write_range(&t5, 2600, 200, 0145, 1);
    write_range(&t5, 2600, 100, 0146, 1);
    /* Values are captured at commit: a write after set_range and before end is logged. */
    base[2799] = expected[2799] = 077;
    CHECK_RC(rvm_end_transaction(&t5, flush), RVM_SUCCESS);
    compare("t5");

    /* A no_restore abort leaves memory as written (and logs nothing). */
    rvm_tid_t t6;
    rvm_init_tid(&t6);
    CHECK_RC(rvm_begin_transaction(&t6, no_restore), RVM_SUCCESS);
    write_range(&t6, 5000, 10, 0150, 1);
    CHECK_RC(rvm_abort_transaction(&t6), RVM_SUCCESS);
    compare("t6 aborted");
    /* Put the committed value back so memory and segment agree after truncation. */
    CHECK_RC(rvm_begin_transaction(&t6, restore), RVM_SUCCESS);
    for (int i = 5000; i < 5010; i++)
        expected[i] = (char)(i * 7 + 3);
    CHECK_RC(rvm_modify_bytes(&t6, base + 5000, expected + 5000, 10), RVM_SUCCESS);
    CHECK_RC(rvm_end_transaction(&t6, no_flush), RVM_SUCCESS);

    /* Truncation writes the committed image into the segment file. */
    CHECK_RC(rvm_truncate(), RVM_SUCCESS);
    FILE *f = fopen(argv[2], "rb");
    CHECK(f != NULL);
    static char disk[SIZE];
    CHECK(fseek(f, file_offset, SEEK_SET) == 0);
    CHECK(fread(disk, 1, SIZE, f) == SIZE);
    fclose(f);
    CHECK(memcmp(disk, expected, SIZE) == 0);

    if (plain) {
        /* Unmapping needs the exact region and no transaction holding a range in it. */
        rvm_region_t wrong = *region;
        wrong.vmaddr = base + 4096;
        wrong.length = SIZE - 4096;
        CHECK_RC(rvm_unmap(&wrong), RVM_ERANGE);
        wrong.vmaddr = (char *)0x10000;
        CHECK_RC(rvm_unmap(&wrong), RVM_ENOT_MAPPED);
        rvm_tid_t t7;
        rvm_init_tid(&t7);
        CHECK_RC(rvm_begin_transaction(&t7, restore), RVM_SUCCESS);
        CHECK_RC(rvm_set_range(&t7, base, 8), RVM_SUCCESS);
        CHECK_RC(rvm_unmap(region), RVM_EUNCOMMIT);
        CHECK_RC(rvm_abort_transaction(&t7), RVM_SUCCESS);
        CHECK_RC(rvm_unmap(region), RVM_SUCCESS);
        CHECK_RC(rvm_unmap(region), RVM_ENOT_MAPPED);
        /* Mapped again: the committed image. */
        region->vmaddr = NULL;
        region->length = 0;
        CHECK_RC(rvm_map(region, NULL), RVM_SUCCESS);
        base = region->vmaddr;
        compare("mapped again");
        CHECK_RC(rvm_unmap(region), RVM_SUCCESS);
        /* Two ranges of the file at once; a third that overlaps one of them is refused. */
        rvm_region_t *first = rvm_malloc_region(), *last = rvm_malloc_region();
        first->data_dev = last->data_dev = argv[2];
        first->length = 4096;
        last->offset.low = 8192 + 100; /* rounded down to 8192 */
        CHECK_RC(rvm_map(first, NULL), RVM_SUCCESS);
        CHECK_RC(rvm_map(last, NULL), RVM_SUCCESS);
        CHECK(last->offset.low == 8192 && last->length == SIZE - 8192);
        CHECK(memcmp(first->vmaddr, expected, 4096) == 0);
        CHECK(memcmp(last->vmaddr, expected + 8192, SIZE - 8192) == 0);
        rvm_region_t overlapping = *first;
        overlapping.vmaddr = NULL;
        overlapping.length = 8192;
        CHECK_RC(rvm_map(&overlapping, NULL), RVM_EOVERLAP);
        CHECK_RC(rvm_unmap(first), RVM_SUCCESS);
        CHECK_RC(rvm_unmap(last), RVM_SUCCESS);
        rvm_free_region(first);
        rvm_free_region(last);
        rvm_free_region(region);
    } else {
        CHECK_RC(rvm_release_segment(n, &defs), RVM_SUCCESS);
    }
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    puts("five tids ok");
    return 0;
}
