/*
 * load.c - where a range's load is, for a load-based split (issue 10:
 * "sample the keys of requests on the leader, so that a hot range over
 * uniform keys splits near its load median, and a single hot key is never
 * split around").
 *
 * The leader keeps the keys of one request in LOAD_EVERY in a ring of
 * LOAD_SAMPLES, allocated when traffic comes and dropped when the range
 * sleeps. replica_load_key() is the median of the ring: the key with half
 * the recent requests below it. If one key is more than half of the
 * samples, there is no split point that divides the load (the hot key
 * would carry it to whichever half holds it): none is offered.
 */
#include "replica_int.h"

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

void load_note(replica *r, const void *key, size_t len)
{
    if (++r->load_skip < LOAD_EVERY)
        return;
    r->load_skip = 0;
    if (r->load == NULL &&
        (r->load = calloc(LOAD_SAMPLES, sizeof *r->load)) == NULL)
        return;
    buf *b = &r->load[r->load_pos];
    buf_reset(b);
    if (buf_append(b, key, len) != 0)
        return;
    r->load_pos = (r->load_pos + 1) % LOAD_SAMPLES;
    if (r->load_n < LOAD_SAMPLES)
        r->load_n++;
}

void load_forget(replica *r)
{
    if (r->load == NULL)
        return;
    for (unsigned i = 0; i < LOAD_SAMPLES; i++)
        buf_free(&r->load[i]);
    free(r->load);
    r->load = NULL;
    r->load_n = r->load_pos = 0;
}

static int cmp_buf(const void *a, const void *b)
{
    const buf *x = *(const buf *const *)a, *y = *(const buf *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->data, y->data, n) : 0;
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

int replica_load_key(replica *r, buf *out)
{
    buf_reset(out);
    if (r->load_n < LOAD_SAMPLES / 4)
        return CAIRN_ERR_NOT_FOUND; /* too few requests to tell */
    const buf *v[LOAD_SAMPLES];
    for (unsigned i = 0; i < r->load_n; i++)
        v[i] = &r->load[i];
    qsort(v, r->load_n, sizeof v[0], cmp_buf);
    const buf *mid = v[r->load_n / 2];
    unsigned same = 0;
    for (unsigned i = 0; i < r->load_n; i++)
        same += cmp_buf(&v[i], &mid) == 0;
    if (same * 2 > r->load_n)
        return CAIRN_ERR_NOT_FOUND; /* one hot key: no split divides it */
    /* the split key must leave keys below it: the median, or the first
     * sampled key above the smallest */
    if (cmp_buf(&mid, &v[0]) == 0)
        return CAIRN_ERR_NOT_FOUND;
    if (!range_meta_contains(&r->meta, mid->data, mid->len) ||
        (mid->len == r->meta.start.len &&
         memcmp(mid->data, r->meta.start.data, mid->len) == 0))
        return CAIRN_ERR_NOT_FOUND;
    return buf_append(out, mid->data, mid->len);
}
