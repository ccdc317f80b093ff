/*
 * schema.h - the byte-level layout of cairn's metadata in etcd (internal
 * to src/meta; meta.h describes the layout). Key builders, a key parser,
 * and JSON encoders/decoders of each record, kept apart from any I/O so
 * they are tested without etcd.
 */
#ifndef CAIRN_META_SCHEMA_H
#define CAIRN_META_SCHEMA_H

#include "common/buf.h"
#include "common/key.h" /* key_cmp: range bounds */
#include "meta/meta.h"

typedef enum meta_key_kind {
    META_KEY_TABLE,  /* P/tables/<name>: name */
    META_KEY_RANGE,  /* P/ranges/<table>/<range>: a = table, b = range */
    META_KEY_LEADER, /* P/leaders/<range>: a = range */
    META_KEY_NODE,   /* P/nodes/<id>: a = node */
    META_KEY_LIVE,   /* P/live/<id>: a = node */
    META_KEY_ID,     /* P/ids/<kind>: a = meta_id_kind */
    META_KEY_HEALTH, /* P/health/<id>: a = node */
    META_KEY_DRAIN,  /* P/drain/<id>: a = node */
    META_KEY_MOVE,   /* P/moves/<range>: a = range */
    META_KEY_BALANCE, /* P/balance */
    META_KEY_RELOCATION, /* P/relocations/<range>: a = range */
    META_KEY_OTHER,  /* under the prefix, but not ours */
} meta_key_kind;

typedef struct meta_key {
    meta_key_kind kind;
    char name[CAIRN_TABLE_NAME_MAX + 1];
    uint64_t a, b;
} meta_key;

/* Key builders: reset `b` and write the key (NUL-terminated, not
 * counted). 0 or CAIRN_ERR_NOMEM. */
int meta_key_table(buf *b, const char *prefix, const char *name);
int meta_key_range(buf *b, const char *prefix, uint64_t table, uint64_t range);
int meta_key_table_ranges(buf *b, const char *prefix, uint64_t table);
int meta_key_leader(buf *b, const char *prefix, uint64_t range);
int meta_key_node(buf *b, const char *prefix, uint64_t node);
int meta_key_live(buf *b, const char *prefix, uint64_t node);
int meta_key_id(buf *b, const char *prefix, meta_id_kind kind);
int meta_key_health(buf *b, const char *prefix, uint64_t node);
int meta_key_drain(buf *b, const char *prefix, uint64_t node);
int meta_key_move(buf *b, const char *prefix, uint64_t range);
int meta_key_balance(buf *b, const char *prefix);
int meta_key_relocation(buf *b, const char *prefix, uint64_t range);
/* "P/" - everything (use etcd_prefix_end for the end). */
int meta_key_all(buf *b, const char *prefix);

/* Classify a key. CAIRN_ERR_INVALID if it is not under "P/"; keys under
 * it that do not parse are META_KEY_OTHER. */
int meta_key_parse(const char *prefix, const uint8_t *key, size_t len,
                   meta_key *out);

/* Records. Encoders return a new string (free()) or NULL on NOMEM;
 * decoders return 0 or CAIRN_ERR_CORRUPT and fill what the value holds
 * (the parts that live in the key are the caller's). */
char *meta_table_encode(const meta_table *t);
int meta_table_decode(const uint8_t *v, size_t n, meta_table *t);
char *meta_range_encode(const meta_range *r);
int meta_range_decode(const uint8_t *v, size_t n, meta_range *r);
char *meta_leader_encode(const meta_leader *l);
int meta_leader_decode(const uint8_t *v, size_t n, meta_leader *l);
char *meta_node_encode(const meta_node *nd);
int meta_node_decode(const uint8_t *v, size_t n, meta_node *nd);

char *meta_health_encode(const meta_health *h);
int meta_health_decode(const uint8_t *v, size_t n, meta_health *h);
char *meta_drain_encode(const meta_drain *d);
int meta_drain_decode(const uint8_t *v, size_t n, meta_drain *d);
char *meta_move_encode(const meta_move *mv);
int meta_move_decode(const uint8_t *v, size_t n, meta_move *mv);
char *meta_relocation_encode(const meta_relocation *r);
int meta_relocation_decode(const uint8_t *v, size_t n, meta_relocation *r);
char *meta_balance_encode(const meta_balance *b);
int meta_balance_decode(const uint8_t *v, size_t n, meta_balance *b);

/* An id counter's value ("" or absent = 0). */
int meta_counter_decode(const uint8_t *v, size_t n, uint64_t *out);

#endif
