/* RVM_MAP_HUGE_PAGES (an rvm-rs extension flag): a region mapped with it has its anonymous
 * memory advised MADV_HUGEPAGE (the "hg" flag of its mapping in /proc/self/smaps), one mapped
 * without it does not, and both read the file's bytes. DATA is a file of 4 MiB whose first
 * page holds data and the rest is a hole. Copy mode advises the whole copy; private mode
 * (RVM_MAP_PRIVATE) the hole only. In `segment` mode DATA is made an rvm-rs segment of one
 * fresh (all hole) region with rvm_create_segment and loaded with rvm_load_segment.
 * Usage: huge_pages LOG DATA copy|private|segment */
#define _GNU_SOURCE
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include <string.h>
#include <sys/mman.h>
#include "check.h"

#define LENGTH (4ul << 20)

/* 1 if the mapping holding `addr` is advised MADV_HUGEPAGE, 0 if not; exits if none holds it. */
static int advised(const char *addr) {
    FILE *f = fopen("/proc/self/smaps", "r");
    CHECK(f != NULL);
    char line[1024];
    int inside = 0, found = -1;
    unsigned long a = (unsigned long)addr;
    while (found < 0 && fgets(line, sizeof line, f)) {
        unsigned long start, end;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
            inside = a >= start && a < end;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
        }
    }
    fclose(f);
    CHECK(found >= 0);
    return found;
}

/* Whether this kernel takes the advice at all (built with transparent huge pages). */
static int kernel_advises(void) {
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    int ok = madvise(p, 4096, MADV_HUGEPAGE) == 0;
    munmap(p, 4096);
    return ok;
}

/* Map DATA with `flags` in force and check the advice on the first page and in the hole. */
static void map_and_check(rvm_options_t *opts, const char *data, unsigned long flags,
                          const char *disk) {
    opts->flags = flags;
    CHECK_RC(rvm_set_options(opts), RVM_SUCCESS);
    rvm_region_t *region = rvm_malloc_region();
    region->data_dev = (char *)data;
    CHECK_RC(rvm_map(region, NULL), RVM_SUCCESS);
    CHECK(region->length == LENGTH);
    CHECK(memcmp(region->vmaddr, disk, LENGTH) == 0);
    int asked = (flags & RVM_MAP_HUGE_PAGES) != 0;
    int copy = (flags & RVM_MAP_PRIVATE) == 0;
    if (kernel_advises()) {
        /* The first page is file data: advised only when the region is a copy. */
        CHECK(advised(region->vmaddr) == (asked && copy));
        CHECK(advised(region->vmaddr + LENGTH / 2) == asked);
    }
    CHECK_RC(rvm_unmap(region), RVM_SUCCESS);
    rvm_free_region(region);
}

/* Load the segment DATA with `flags` in force and check the advice in its (hole) region. */
static void load_and_check(rvm_options_t *opts, const char *data, unsigned long flags) {
    opts->flags = flags;
    CHECK_RC(rvm_set_options(opts), RVM_SUCCESS);
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    CHECK_RC(rvm_load_segment((char *)data, RVM_MK_OFFSET(0, 0), opts, &n, &defs), RVM_SUCCESS);
    CHECK(n == 1 && defs[0].length == LENGTH);
    for (unsigned long i = 0; i < LENGTH; i += 4096)
        CHECK(defs[0].vmaddr[i] == 0);
    if (kernel_advises())
        CHECK(advised(defs[0].vmaddr + LENGTH / 2) == ((flags & RVM_MAP_HUGE_PAGES) != 0));
    CHECK_RC(rvm_release_segment(n, &defs), RVM_SUCCESS);
}

int main(int argc, char **argv) {
    CHECK(argc == 4);
    if (strcmp(argv[3], "segment") == 0) {
        rvm_options_t *opts = rvm_malloc_options();
        opts->log_dev = argv[1];
        CHECK_RC(RVM_INIT(opts), RVM_SUCCESS);
        rvm_region_def_t def = {RVM_OFFSET_INITIALIZER(0, 0), LENGTH, (char *)0x370000000000UL};
        CHECK_RC(rvm_create_segment(argv[2], RVM_MK_OFFSET(0, 0), opts, 1, &def), RVM_SUCCESS);
        load_and_check(opts, argv[2], RVM_MAP_HUGE_PAGES);
        load_and_check(opts, argv[2], 0);
        CHECK_RC(rvm_terminate(), RVM_SUCCESS);
        printf("huge pages segment ok (%s)\n",
               kernel_advises() ? "advice checked" : "the kernel takes no advice");
        return 0;
    }
    unsigned long mode = 0;
    if (strcmp(argv[3], "private") == 0)
        mode = RVM_MAP_PRIVATE;
    else
        CHECK(strcmp(argv[3], "copy") == 0);
    char *disk = malloc(LENGTH);
    CHECK(disk != NULL);
    FILE *f = fopen(argv[2], "rb");
    CHECK(f != NULL && fread(disk, 1, LENGTH, f) == LENGTH);
    fclose(f);

    rvm_options_t *opts = rvm_malloc_options();
    opts->log_dev = argv[1];
    CHECK_RC(RVM_INIT(opts), RVM_SUCCESS);
    map_and_check(opts, argv[2], mode | RVM_MAP_HUGE_PAGES, disk);
    map_and_check(opts, argv[2], mode, disk);
    CHECK_RC(rvm_terminate(), RVM_SUCCESS);
    printf("huge pages %s ok (%s)\n", argv[3],
           kernel_advises() ? "advice checked" : "the kernel takes no advice");
    return 0;
}
