/*
 * rvm.h: the classic RVM C interface, implemented by rvm-rs.
 *
 * Written for rvm-rs from the published interface facts (types, values, layouts); programs
 * written for Coda's RVM compile against it unchanged. See README.md, "C programs".
 */
#ifndef RVM_RS_RVM_H
#define RVM_RS_RVM_H

#include <sys/time.h>
#include <sys/param.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RVM_VERSION "RVM Interface Version 1.3  7 Mar 1994"
#define RVM_VERSION_MAX 128

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#ifndef SUCCESS
#define SUCCESS 0
#endif
#ifndef MIN
#define MIN(a, b) (((a) < (b)) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) (((a) > (b)) ? (a) : (b))
#endif

typedef enum rvm_bool_t { rvm_false = 0, rvm_true = 1 } rvm_bool_t;

typedef enum rvm_struct_id_t {
    rvm_first_struct_id = 39,
    rvm_region_id = 40,
    rvm_options_id = 41,
    rvm_tid_id = 42,
    rvm_statistics_id = 43,
    rvm_last_struct_id = 44
} rvm_struct_id_t;

typedef enum rvm_mode_t {
    rvm_first_mode = 139,
    restore = 140,
    no_restore = 141,
    flush = 142,
    no_flush = 143,
    rvm_last_mode = 144
} rvm_mode_t;

typedef int rvm_return_t;

#define RVM_SUCCESS 0
#define rvm_first_code 199
#define RVM_EINIT 200
#define RVM_EINTERNAL 201
#define RVM_EIO 202
#define RVM_ELOG 204
#define RVM_ELOG_VERSION_SKEW 205
#define RVM_EMODE 206
#define RVM_ENAME_TOO_LONG 207
#define RVM_ENO_MEMORY 208
#define RVM_ENOT_MAPPED 209
#define RVM_EOFFSET 210
#define RVM_EOPTIONS 211
#define RVM_EOVERLAP 212
#define RVM_EPAGER 213
#define RVM_ERANGE 214
#define RVM_EREGION 215
#define RVM_EREGION_DEF 216
#define RVM_ESRC 217
#define RVM_ESTATISTICS 218
#define RVM_ESTAT_VERSION_SKEW 219
#define RVM_ETERMINATED 220
#define RVM_ETHREADS 221
#define RVM_ETID 222
#define RVM_ETOO_BIG 223
#define RVM_EUNCOMMIT 224
#define RVM_EVERSION_SKEW 225
#define RVM_EVM_OVERLAP 226
#define rvm_last_code 227

typedef unsigned long rvm_length_t;

typedef struct rvm_offset_t {
    rvm_length_t high;
    rvm_length_t low;
} rvm_offset_t;

/* Optimisation and mapping flags (rvm_options_t.flags). */
#define RVM_COALESCE_RANGES 1
#define RVM_COALESCE_TRANS 2
#define RVM_ALL_OPTIMIZATIONS (RVM_COALESCE_RANGES | RVM_COALESCE_TRANS)
#define RVM_MAP_PRIVATE 8
/* rvm-rs extension: back the anonymous memory of mapped regions and loaded segments (a copied
 * region, the holes of a private or loaded one) with transparent huge pages. */
#define RVM_MAP_HUGE_PAGES 16

/* Option defaults. */
#define TRUNCATE 50
#define RECOVERY_BUF_LEN (256 * 1024)
#define MIN_RECOVERY_BUF_LEN (64 * 1024)
#define FLUSH_BUF_LEN (256 * 1024)
#define MIN_FLUSH_BUF_LEN (64 * 1024)
#define MAX_READ_LEN (512 * 1024)

typedef struct rvm_tid_t {
    rvm_struct_id_t struct_id;
    rvm_bool_t from_heap;
    struct timeval uname;
    void *tid;
    rvm_length_t reserved;
} rvm_tid_t;

typedef struct rvm_options_t {
    rvm_struct_id_t struct_id;
    rvm_bool_t from_heap;
    char *log_dev;
    long truncate;
    rvm_length_t recovery_buf_len;
    rvm_length_t flush_buf_len;
    rvm_length_t max_read_len;
    rvm_bool_t log_empty;
    char *pager;
    long n_uncommit;
    rvm_tid_t *tid_array;
    rvm_length_t flags;
    rvm_bool_t create_log_file;
    rvm_offset_t create_log_size;
    long create_log_mode;
} rvm_options_t;

typedef struct rvm_region_t {
    rvm_struct_id_t struct_id;
    rvm_bool_t from_heap;
    char *data_dev;
    rvm_offset_t dev_length;
    rvm_offset_t offset;
    char *vmaddr;
    rvm_length_t length;
    rvm_bool_t no_copy;
} rvm_region_t;

/* Lifecycle. */
rvm_return_t rvm_initialize(const char *version, rvm_options_t *options);
#define RVM_INIT(options) rvm_initialize(RVM_VERSION, (options))
rvm_return_t rvm_terminate(void);
rvm_return_t rvm_set_options(rvm_options_t *options);
rvm_return_t rvm_query(rvm_options_t *options, rvm_region_t *region);
rvm_return_t rvm_create_log(rvm_options_t *options, rvm_offset_t *log_len, long mode);

/* Mapping. */
rvm_return_t rvm_map(rvm_region_t *region, rvm_options_t *options);
rvm_return_t rvm_unmap(rvm_region_t *region);

/* Transactions. */
rvm_return_t rvm_begin_transaction(rvm_tid_t *tid, rvm_mode_t mode);
rvm_return_t rvm_set_range(rvm_tid_t *tid, void *dest, rvm_length_t length);
rvm_return_t rvm_modify_bytes(rvm_tid_t *tid, void *dest, const void *src, rvm_length_t length);
rvm_return_t rvm_abort_transaction(rvm_tid_t *tid);
rvm_return_t rvm_end_transaction(rvm_tid_t *tid, rvm_mode_t mode);
rvm_return_t rvm_flush(void);
rvm_return_t rvm_truncate(void);

/* Record helpers. */
rvm_tid_t *rvm_malloc_tid(void);
void rvm_init_tid(rvm_tid_t *tid);
rvm_tid_t *rvm_copy_tid(rvm_tid_t *tid);
void rvm_free_tid(rvm_tid_t *tid);
rvm_options_t *rvm_malloc_options(void);
void rvm_init_options(rvm_options_t *options);
rvm_options_t *rvm_copy_options(rvm_options_t *options);
void rvm_free_options(rvm_options_t *options);
rvm_region_t *rvm_malloc_region(void);
void rvm_init_region(rvm_region_t *region);
rvm_region_t *rvm_copy_region(rvm_region_t *region);
void rvm_free_region(rvm_region_t *region);

/* Names for printing. */
char *rvm_return(rvm_return_t code);
char *rvm_mode(rvm_mode_t mode);
char *rvm_type(rvm_struct_id_t id);

/* Offsets. */
rvm_offset_t rvm_mk_offset(rvm_length_t high, rvm_length_t low);
rvm_offset_t rvm_add_offsets(rvm_offset_t *a, rvm_offset_t *b);
rvm_offset_t rvm_add_length_to_offset(rvm_offset_t *offset, rvm_length_t length);
rvm_offset_t rvm_sub_offsets(rvm_offset_t *a, rvm_offset_t *b);
rvm_offset_t rvm_sub_length_from_offset(rvm_offset_t *offset, rvm_length_t length);
rvm_offset_t rvm_rnd_offset_up_to_page(rvm_offset_t *offset);
rvm_offset_t rvm_rnd_offset_dn_to_page(rvm_offset_t *offset);
rvm_length_t rvm_page_size(void);
rvm_length_t rvm_page_mask(void);

#define RVM_MK_OFFSET(high, low) rvm_mk_offset((rvm_length_t)(high), (rvm_length_t)(low))
#define RVM_OFFSET_INITIALIZER(high, low) { (high), (low) }
#define RVM_ZERO_OFFSET(o) ((o) = rvm_mk_offset(0, 0))
#define RVM_LENGTH_TO_OFFSET(x) rvm_mk_offset(0, (rvm_length_t)(x))
#define RVM_OFFSET_TO_LENGTH(o) ((o).low)
#define RVM_OFFSET_HIGH_BITS_TO_LENGTH(o) ((o).high)

#define RVM_OFFSET_LSS(a, b) \
    (((a).high < (b).high) || (((a).high == (b).high) && ((a).low < (b).low)))
#define RVM_OFFSET_GTR(a, b) \
    (((a).high > (b).high) || (((a).high == (b).high) && ((a).low > (b).low)))
#define RVM_OFFSET_LEQ(a, b) (!RVM_OFFSET_GTR((a), (b)))
#define RVM_OFFSET_GEQ(a, b) (!RVM_OFFSET_LSS((a), (b)))
#define RVM_OFFSET_EQL(a, b) (((a).high == (b).high) && ((a).low == (b).low))
#define RVM_OFFSET_EQL_ZERO(a) (((a).high == 0) && ((a).low == 0))

#define RVM_ADD_OFFSETS(a, b) rvm_add_offsets(&(a), &(b))
#define RVM_ADD_LENGTH_TO_OFFSET(o, n) rvm_add_length_to_offset(&(o), (rvm_length_t)(n))
#define RVM_SUB_OFFSETS(a, b) rvm_sub_offsets(&(a), &(b))
#define RVM_SUB_LENGTH_FROM_OFFSET(o, n) rvm_sub_length_from_offset(&(o), (rvm_length_t)(n))
#define RVM_ADD_LENGTH_TO_ADDR(n, p) ((char *)((char *)(p) + (rvm_length_t)(n)))
#define RVM_SUB_LENGTH_FROM_ADDR(p, n) ((char *)((char *)(p) - (rvm_length_t)(n)))

#define RVM_PAGE_SIZE rvm_page_size()
#define RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(x) \
    ((rvm_length_t)(((rvm_length_t)(x) + rvm_page_size() - 1) & rvm_page_mask()))
#define RVM_ROUND_LENGTH_DOWN_TO_PAGE_SIZE(x) ((rvm_length_t)((rvm_length_t)(x) & rvm_page_mask()))
#define RVM_ROUND_ADDR_UP_TO_PAGE_SIZE(x) \
    ((char *)(((rvm_length_t)(x) + rvm_page_size() - 1) & rvm_page_mask()))
#define RVM_ROUND_ADDR_DOWN_TO_PAGE_SIZE(x) ((char *)((rvm_length_t)(x) & rvm_page_mask()))
#define RVM_ROUND_OFFSET_UP_TO_PAGE_SIZE(o) rvm_rnd_offset_up_to_page(&(o))
#define RVM_ROUND_OFFSET_DOWN_TO_PAGE_SIZE(o) rvm_rnd_offset_dn_to_page(&(o))

#define RVM_INIT_REGION(region, off, len, addr) \
    do {                                         \
        (region).length = (len);                 \
        (region).vmaddr = (addr);                \
        (region).offset = (off);                 \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* RVM_RS_RVM_H */
