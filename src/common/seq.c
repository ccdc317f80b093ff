#include "seq.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"

struct seq_clock {
    uint32_t node_id;
    seq_now_fn now;
    void *now_arg;
    uint64_t last_time;    /* HLC time of the last issued/observed seq */
    uint32_t last_counter; /* counter within last_time */
    int64_t offset_ns;     /* seq_clock_new_offset: added to the wall clock */
};

static uint64_t wall_now(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

seq_clock *seq_clock_new(uint32_t node_id, seq_now_fn now, void *now_arg)
{
    seq_clock *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->node_id = node_id;
    c->now = now ? now : wall_now;
    c->now_arg = now_arg;
    return c;
}

static uint64_t offset_now(void *arg)
{
    const seq_clock *c = arg;
    uint64_t wall = wall_now(NULL);
    if (c->offset_ns < 0 && (uint64_t)-c->offset_ns > wall)
        return 0;
    return wall + (uint64_t)c->offset_ns;
}

seq_clock *seq_clock_new_offset(uint32_t node_id, int64_t offset_ms)
{
    seq_clock *c = seq_clock_new(node_id, NULL, NULL);
    if (c == NULL || offset_ms == 0)
        return c;
    c->offset_ns = offset_ms * 1000000;
    c->now = offset_now;
    c->now_arg = c;
    return c;
}

void seq_clock_free(seq_clock *c) { free(c); }

seq seq_make(uint64_t time_ns, uint32_t counter, uint32_t node_id)
{
    seq s;
    be_put_u64(s.bytes, time_ns);
    be_put_u32(s.bytes + 8, counter);
    be_put_u32(s.bytes + 12, node_id);
    return s;
}

seq seq_next(seq_clock *c)
{
    uint64_t wall = c->now(c->now_arg);
    if (wall > c->last_time) {
        c->last_time = wall;
        c->last_counter = 0;
    } else if (c->last_counter == UINT32_MAX) {
        /* 4 billion writes in one nanosecond of HLC time: borrow the next
         * nanosecond rather than wrap, which would go backwards. */
        c->last_time++;
        c->last_counter = 0;
    } else {
        c->last_counter++;
    }
    return seq_make(c->last_time, c->last_counter, c->node_id);
}

seq seq_clock_mark(const seq_clock *c)
{
    return seq_make(c->last_time, c->last_counter, c->node_id);
}

void seq_observe(seq_clock *c, const seq *s)
{
    uint64_t t = seq_time(s);
    uint32_t n = seq_counter(s);
    /* Ties on (time, counter) are taken too: the next local seq then bumps
     * the counter and lands above `s` whatever the node ids are. */
    if (t > c->last_time || (t == c->last_time && n >= c->last_counter)) {
        c->last_time = t;
        c->last_counter = n;
    }
}

int seq_cmp(const seq *a, const seq *b)
{
    return memcmp(a->bytes, b->bytes, SEQ_LEN);
}

seq seq_zero(void)
{
    seq s;
    memset(&s, 0, sizeof s);
    return s;
}

bool seq_is_zero(const seq *s)
{
    static const uint8_t zero[SEQ_LEN];
    return memcmp(s->bytes, zero, SEQ_LEN) == 0;
}

uint64_t seq_time(const seq *s) { return be_get_u64(s->bytes); }
uint32_t seq_counter(const seq *s) { return be_get_u32(s->bytes + 8); }
uint32_t seq_node(const seq *s) { return be_get_u32(s->bytes + 12); }

void seq_to_hex(const seq *s, char out[SEQ_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SEQ_LEN; i++) {
        out[2 * i] = digits[s->bytes[i] >> 4];
        out[2 * i + 1] = digits[s->bytes[i] & 15];
    }
    out[SEQ_HEX_LEN] = '\0';
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int seq_from_hex(const char *hex, size_t len, seq *out)
{
    if (len != SEQ_HEX_LEN)
        return CAIRN_ERR_INVALID;
    for (int i = 0; i < SEQ_LEN; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return CAIRN_ERR_INVALID;
        out->bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
