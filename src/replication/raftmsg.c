/*
 * raftmsg.c - encoding and decoding of Raft messages (raftmsg.h).
 */
#include "raftmsg.h"

#include <string.h>

#include "../common/err.h"

#define ENTRY_FIXED 13 /* term | type | len */

/* ---- encoding --------------------------------------------------------- */

int raftmsg_conf_encode(const struct raft_configuration *c, buf *out)
{
    int rc = buf_append_u32(out, c->n);
    for (unsigned i = 0; rc == 0 && i < c->n; i++) {
        size_t alen = strlen(c->servers[i].address);
        if (alen > RAFTMSG_ADDR_MAX)
            return CAIRN_ERR_INVALID;
        rc = buf_append_u64(out, c->servers[i].id);
        if (rc == 0)
            rc = buf_append_u8(out, (uint8_t)c->servers[i].role);
        if (rc == 0)
            rc = buf_append_u16(out, (uint16_t)alen);
        if (rc == 0)
            rc = buf_append(out, c->servers[i].address, alen);
    }
    return rc;
}

static int put_u64s(buf *out, const uint64_t *v, int n)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = buf_append_u64(out, v[i]);
    return rc;
}

static int encode_append(const struct raft_append_entries *a, buf *out)
{
    size_t bytes = 36;
    for (unsigned i = 0; i < a->n_entries; i++)
        bytes += ENTRY_FIXED + a->entries[i].buf.len;
    int rc = buf_reserve(out, bytes);
    uint64_t head[4] = {a->term, a->prev_log_index, a->prev_log_term,
                        a->leader_commit};
    if (rc == 0)
        rc = put_u64s(out, head, 4);
    if (rc == 0)
        rc = buf_append_u32(out, a->n_entries);
    for (unsigned i = 0; rc == 0 && i < a->n_entries; i++) {
        const struct raft_entry *e = &a->entries[i];
        rc = buf_append_u64(out, e->term);
        if (rc == 0)
            rc = buf_append_u8(out, (uint8_t)e->type);
        if (rc == 0)
            rc = buf_append_u32(out, (uint32_t)e->buf.len);
        if (rc == 0)
            rc = buf_append(out, e->buf.base, e->buf.len);
    }
    return rc;
}

static int encode_snapshot(const struct raft_install_snapshot *s, buf *out)
{
    uint64_t head[4] = {s->term, s->last_index, s->last_term, s->conf_index};
    buf conf = BUF_INIT;
    int rc = raftmsg_conf_encode(&s->conf, &conf);
    if (rc == 0)
        rc = buf_reserve(out, 32 + 4 + conf.len + 8 + s->data.len);
    if (rc == 0)
        rc = put_u64s(out, head, 4);
    if (rc == 0)
        rc = buf_append(out, conf.data, conf.len);
    if (rc == 0)
        rc = buf_append_u64(out, s->data.len);
    if (rc == 0)
        rc = buf_append(out, s->data.base, s->data.len);
    buf_free(&conf);
    return rc;
}

int raftmsg_encode(const struct raft_message *m, buf *out)
{
    size_t mark = out->len;
    int rc = buf_append_u8(out, (uint8_t)m->type);
    switch (rc == 0 ? m->type : 0) {
    case 0:
        break;
    case RAFT_IO_REQUEST_VOTE: {
        const struct raft_request_vote *v = &m->request_vote;
        uint64_t f[4] = {v->term, v->candidate_id, v->last_log_index,
                         v->last_log_term};
        rc = put_u64s(out, f, 4);
        if (rc == 0)
            rc = buf_append_u8(out, (uint8_t)((v->disrupt_leader ? 1 : 0) |
                                              (v->pre_vote ? 2 : 0)));
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        const struct raft_request_vote_result *v = &m->request_vote_result;
        rc = buf_append_u64(out, v->term);
        if (rc == 0)
            rc = buf_append_u8(out, v->vote_granted ? 1 : 0);
        if (rc == 0)
            rc = buf_append_u8(out, (uint8_t)v->pre_vote);
        break;
    }
    case RAFT_IO_APPEND_ENTRIES:
        rc = encode_append(&m->append_entries, out);
        break;
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        const struct raft_append_entries_result *a = &m->append_entries_result;
        uint64_t f[3] = {a->term, a->rejected, a->last_log_index};
        rc = put_u64s(out, f, 3);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT:
        rc = encode_snapshot(&m->install_snapshot, out);
        break;
    case RAFT_IO_TIMEOUT_NOW: {
        const struct raft_timeout_now *t = &m->timeout_now;
        uint64_t f[3] = {t->term, t->last_log_index, t->last_log_term};
        rc = put_u64s(out, f, 3);
        break;
    }
    default:
        rc = CAIRN_ERR_INVALID;
    }
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* ---- decoding --------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
    int err;
} cursor;

/* Each getter checks the bytes are there; after an error every getter
 * returns zero, and the caller checks c->err once. */
static const uint8_t *take(cursor *c, size_t n)
{
    if (c->err || c->len - c->pos < n) {
        c->err = CAIRN_ERR_PROTO;
        return NULL;
    }
    const uint8_t *p = c->p + c->pos;
    c->pos += n;
    return p;
}

static uint64_t get_u64(cursor *c)
{
    const uint8_t *p = take(c, 8);
    return p ? be_get_u64(p) : 0;
}

static uint32_t get_u32(cursor *c)
{
    const uint8_t *p = take(c, 4);
    return p ? be_get_u32(p) : 0;
}

static uint16_t get_u16(cursor *c)
{
    const uint8_t *p = take(c, 2);
    return p ? be_get_u16(p) : 0;
}

static uint8_t get_u8(cursor *c)
{
    const uint8_t *p = take(c, 1);
    return p ? p[0] : 0;
}

static int decode_conf(cursor *c, struct raft_configuration *conf)
{
    raft_configuration_init(conf);
    uint32_t n = get_u32(c);
    /* each server takes at least 11 bytes: refuse an impossible count
     * before looping on it */
    if (!c->err && (size_t)n > (c->len - c->pos) / 11)
        c->err = CAIRN_ERR_PROTO;
    for (uint32_t i = 0; !c->err && i < n; i++) {
        char addr[RAFTMSG_ADDR_MAX + 1];
        uint64_t id = get_u64(c);
        uint8_t role = get_u8(c);
        uint16_t alen = get_u16(c);
        const uint8_t *a = alen <= RAFTMSG_ADDR_MAX ? take(c, alen) : NULL;
        if (a == NULL) {
            c->err = CAIRN_ERR_PROTO;
            break;
        }
        memcpy(addr, a, alen);
        addr[alen] = '\0';
        int rv = raft_configuration_add(conf, id, addr, role);
        if (rv != 0)
            c->err = rv == RAFT_NOMEM ? CAIRN_ERR_NOMEM : CAIRN_ERR_PROTO;
    }
    if (c->err)
        raft_configuration_close(conf);
    return c->err;
}

int raftmsg_conf_decode(const void *p, size_t len,
                        struct raft_configuration *conf)
{
    cursor c = {p, len, 0, 0};
    int rc = decode_conf(&c, conf);
    if (rc == 0 && c.pos != len) {
        raft_configuration_close(conf);
        rc = CAIRN_ERR_PROTO;
    }
    return rc;
}

/* Entries: a first pass checks the lengths and sizes the batch, the
 * second copies each entry's bytes to an 8-byte boundary of it. */
static int decode_append(cursor *c, struct raft_append_entries *a)
{
    a->term = get_u64(c);
    a->prev_log_index = get_u64(c);
    a->prev_log_term = get_u64(c);
    a->leader_commit = get_u64(c);
    uint32_t n = get_u32(c);
    a->entries = NULL;
    a->n_entries = 0;
    if (!c->err && (size_t)n > (c->len - c->pos) / ENTRY_FIXED)
        c->err = CAIRN_ERR_PROTO;
    if (c->err || n == 0)
        return c->err;
    size_t start = c->pos, total = 0;
    for (uint32_t i = 0; !c->err && i < n; i++) {
        take(c, 9);
        uint32_t len = get_u32(c);
        take(c, len);
        total += ((size_t)len + 7) & ~(size_t)7;
    }
    if (c->err)
        return c->err;
    uint8_t *batch = raft_malloc(total ? total : 8);
    a->entries = raft_malloc(n * sizeof *a->entries);
    if (batch == NULL || a->entries == NULL) {
        raft_free(batch);
        raft_free(a->entries);
        a->entries = NULL;
        return c->err = CAIRN_ERR_NOMEM;
    }
    c->pos = start;
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct raft_entry *e = &a->entries[i];
        e->term = get_u64(c);
        e->type = get_u8(c);
        e->buf.len = get_u32(c);
        e->buf.base = batch + off;
        e->batch = batch;
        memcpy(e->buf.base, take(c, e->buf.len), e->buf.len);
        off += (e->buf.len + 7) & ~(size_t)7;
    }
    a->n_entries = n;
    return 0;
}

static int decode_snapshot(cursor *c, struct raft_install_snapshot *s)
{
    s->term = get_u64(c);
    s->last_index = get_u64(c);
    s->last_term = get_u64(c);
    s->conf_index = get_u64(c);
    s->data.base = NULL;
    s->data.len = 0;
    if (c->err || decode_conf(c, &s->conf) != 0)
        return c->err;
    uint64_t len = get_u64(c);
    const uint8_t *d = len <= c->len - c->pos ? take(c, (size_t)len) : NULL;
    if (d == NULL) {
        c->err = CAIRN_ERR_PROTO;
    } else if ((s->data.base = raft_malloc(len ? (size_t)len : 8)) == NULL) {
        c->err = CAIRN_ERR_NOMEM;
    } else {
        memcpy(s->data.base, d, (size_t)len);
        s->data.len = (size_t)len;
        return 0;
    }
    raft_configuration_close(&s->conf);
    return c->err;
}

int raftmsg_decode(const void *p, size_t len, struct raft_message *m)
{
    cursor c = {p, len, 0, 0};
    m->type = get_u8(&c);
    switch (c.err ? 0 : m->type) {
    case 0:
        c.err = CAIRN_ERR_PROTO;
        break;
    case RAFT_IO_REQUEST_VOTE: {
        struct raft_request_vote *v = &m->request_vote;
        v->term = get_u64(&c);
        v->candidate_id = get_u64(&c);
        v->last_log_index = get_u64(&c);
        v->last_log_term = get_u64(&c);
        uint8_t f = get_u8(&c);
        v->disrupt_leader = f & 1;
        v->pre_vote = (f & 2) != 0;
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        struct raft_request_vote_result *v = &m->request_vote_result;
        v->term = get_u64(&c);
        v->vote_granted = get_u8(&c) != 0;
        uint8_t t = get_u8(&c);
        if (t > raft_tribool_false)
            c.err = CAIRN_ERR_PROTO;
        v->pre_vote = (raft_tribool)t;
        break;
    }
    case RAFT_IO_APPEND_ENTRIES:
        decode_append(&c, &m->append_entries);
        break;
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        struct raft_append_entries_result *a = &m->append_entries_result;
        a->term = get_u64(&c);
        a->rejected = get_u64(&c);
        a->last_log_index = get_u64(&c);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT:
        decode_snapshot(&c, &m->install_snapshot);
        break;
    case RAFT_IO_TIMEOUT_NOW: {
        struct raft_timeout_now *t = &m->timeout_now;
        t->term = get_u64(&c);
        t->last_log_index = get_u64(&c);
        t->last_log_term = get_u64(&c);
        break;
    }
    default:
        c.err = CAIRN_ERR_PROTO;
    }
    if (c.err == 0 && c.pos != len) {
        raftmsg_free(m); /* trailing bytes: not a message we wrote */
        c.err = CAIRN_ERR_PROTO;
    }
    return c.err;
}

void raftmsg_free(struct raft_message *m)
{
    if (m->type == RAFT_IO_APPEND_ENTRIES && m->append_entries.entries) {
        raft_free(m->append_entries.entries[0].batch);
        raft_free(m->append_entries.entries);
        m->append_entries.entries = NULL;
        m->append_entries.n_entries = 0;
    } else if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        raft_configuration_close(&m->install_snapshot.conf);
        raft_free(m->install_snapshot.data.base);
        m->install_snapshot.data.base = NULL;
    }
}
