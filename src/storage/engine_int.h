/*
 * engine_int.h - what engine.c shares with the two engine implementations.
 *
 * Private to src/storage/. engine.c owns everything both engines have in
 * common (argument and limit checks, the write batch, the value-record and
 * range-record encodings, the user-facing iterator, the split key); an
 * engine implements only the primitive operations of engine_ops below, over
 * user keys of one range. Each engine lays its keys out as it must (LMDB has
 * a 511-byte key limit, RocksDB none): see the comment at the top of
 * engine_lmdb.c and engine_rocks.c.
 */
#ifndef CAIRN_ENGINE_INT_H
#define CAIRN_ENGINE_INT_H

#include "common/key.h" /* key_cmp: the stores' order */
#include "engine.h"

/* The value record: sequencer | flags | crc32c (4) | value bytes. The
 * checksum covers the range id, the user key and the rest of the record
 * (engine_rec_crc), so that a flipped bit anywhere - in the value, or in a
 * stored key that would move the record to another key - is detected when
 * the record is read, never served. */
#define ENGINE_REC_CRC_OFF (SEQ_LEN + 1)
#define ENGINE_REC_HDR (SEQ_LEN + 1 + 4)
#define ENGINE_FLAG_TOMBSTONE 0x01u

/* The range record (applied index, meta blob, and for LMDB the key and byte
 * counters) is encoded as:
 *     version (1) = 2 | flags (1) | applied (8) | keys (8) | bytes (8) |
 *     crc32c (4) | meta
 * flags bit 0: an applied index was set; bit 1: a meta blob was set. The
 * checksum covers every other byte of the record. */
#define ENGINE_RANGE_REC_VERSION 2
#define ENGINE_RANGE_REC_CRC_OFF 26
#define ENGINE_RANGE_REC_HDR 30
#define ENGINE_RANGE_HAS_APPLIED 0x01u
#define ENGINE_RANGE_HAS_META 0x02u

typedef struct engine_range_rec {
    unsigned flags;
    uint64_t applied;
    uint64_t keys;  /* LMDB only: records in the range, tombstones included */
    uint64_t bytes; /* LMDB only: sum of user key + value record lengths */
    const uint8_t *meta;
    size_t meta_len;
} engine_range_rec;

/* The checksum of value record `rec` of `key` in range `range_id`
 * (ENGINE_REC_HDR). */
uint32_t engine_rec_crc(uint64_t range_id, const void *key, size_t key_len,
                        const uint8_t *rec, size_t rec_len);

/* Decode a stored range record; pointers point into `p`. CAIRN_ERR_CORRUPT
 * if it is malformed or fails its checksum. */
int engine_range_rec_decode(const uint8_t *p, size_t n, engine_range_rec *out);

/* Encode `r` into `out` (replacing its contents). */
int engine_range_rec_encode(const engine_range_rec *r, buf *out);

/* Apply the parts of batch range entry `br` (set applied / set meta) to
 * `r`; `b` holds the bytes `br` points into. */
struct engine_batch_range;
void engine_range_rec_merge(engine_range_rec *r, const engine_batch *b,
                            const struct engine_batch_range *br);

/* ---- the write batch -------------------------------------------------- */

/* One operation, applied in the order added. A put or tombstone: the user
 * key and the encoded value record live in the batch's data buffer at the
 * given offsets. An interval delete: key_* is the start bound and rec_* the
 * end bound (length 0 = open, as in engine_delete_interval). */
typedef enum engine_op_kind {
    ENGINE_OP_PUT = 1, /* puts and tombstones */
    ENGINE_OP_DELETE_INTERVAL = 2,
} engine_op_kind;

typedef struct engine_batch_op {
    engine_op_kind kind;
    size_t range_idx; /* index into engine_batch.ranges */
    size_t key_off, key_len;
    size_t rec_off, rec_len;
} engine_batch_op;

/* Every range the batch touches, once, with what the batch sets for it. */
typedef struct engine_batch_range {
    uint64_t range_id;
    bool set_applied;
    uint64_t applied;
    bool set_meta;
    size_t meta_off, meta_len;
} engine_batch_range;

struct engine_batch {
    buf data;
    engine_batch_op *ops;
    size_t nops, cap_ops;
    size_t nputs; /* puts and tombstones among ops */
    engine_batch_range *ranges;
    size_t nranges, cap_ranges;
};

/* ---- what an engine implements ------------------------------------------
 * All keys below are user keys of range `range_id` (the range prefix is the
 * engine's business). Bounds: lo_len 0 = from the start of the range, hi_len
 * 0 = to its end. Arguments were checked by engine.c. */

typedef struct engine_raw_iter engine_raw_iter;

typedef struct engine_ops {
    void (*close)(engine *e);
    int (*write)(engine *e, const engine_batch *b);
    int (*sync)(engine *e);
    int (*drop_range)(engine *e, uint64_t range_id);
    int (*view_open)(engine *e, engine_view **out);
    void (*view_close)(engine_view *v);
    /* The raw value record of a key; CAIRN_ERR_NOT_FOUND if none. */
    int (*get)(engine *e, engine_view *v, uint64_t range_id,
               const uint8_t *key, size_t key_len, buf *rec_out);
    /* The raw range record; CAIRN_ERR_NOT_FOUND if none. */
    int (*get_range)(engine *e, engine_view *v, uint64_t range_id,
                     buf *rec_out);
    int (*list_ranges)(engine *e, uint64_t **ids_out, size_t *count_out);
    int (*iter_open)(engine *e, engine_view *v, uint64_t range_id,
                     const uint8_t *lo, size_t lo_len, const uint8_t *hi,
                     size_t hi_len, engine_raw_iter **out);
    /* 1 with key and value record (valid until the next call), 0 at the
     * end of the bounds, or a negative error. */
    int (*iter_next)(engine_raw_iter *it, const uint8_t **key,
                     size_t *key_len, const uint8_t **rec, size_t *rec_len);
    void (*iter_close)(engine_raw_iter *it);
    int (*range_stats)(engine *e, uint64_t range_id, uint64_t *bytes_out,
                       uint64_t *keys_out);
} engine_ops;

/* The head of every engine; each implementation embeds it first. */
struct engine {
    const engine_ops *ops;
    engine_kind kind;
};

/* The head of every view. */
struct engine_view {
    engine *e;
};

/* The head of every raw iterator. */
struct engine_raw_iter {
    engine *e;
};

int engine_lmdb_open(const char *dir, const engine_options *opts,
                     engine **out);
int engine_rocks_open(const char *dir, const engine_options *opts,
                      engine **out);

/* mkdir -p. 0 or CAIRN_ERR_IO. */
int engine_mkdirs(const char *dir);


#endif
