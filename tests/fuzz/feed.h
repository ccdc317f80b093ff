/*
 * feed.h - what the RESP fuzzers share: CHECK, and feeding an input to an
 * incremental parser the way a socket would.
 *
 * The input arrives in chunks whose sizes follow from a seed (seed 0: all
 * at once). Every call gets a fresh heap copy of exactly the bytes not yet
 * consumed, so AddressSanitizer catches a parser that reads past what it
 * was given or keeps a pointer into an earlier buffer.
 */
#ifndef CAIRN_FUZZ_FEED_H
#define CAIRN_FUZZ_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                          \
        }                                                                     \
    } while (0)

typedef struct feed {
    const uint8_t *in;
    size_t n;      /* input size */
    size_t start;  /* bytes consumed by the parser */
    size_t avail;  /* bytes "received" so far */
    unsigned seed; /* chunk-size generator state; 0 = one chunk */
    uint8_t *copy; /* the window handed to the parser */
} feed;

static inline void feed_init(feed *f, const uint8_t *in, size_t n,
                             unsigned seed)
{
    memset(f, 0, sizeof *f);
    f->in = in;
    f->n = n;
    f->seed = seed;
}

/* The next window [start, avail) as a fresh copy in *p, *len. When the
 * parser asked for more (`need_more`), first receive another chunk; false
 * when there is no more input to receive. */
static inline bool feed_next(feed *f, bool need_more, const uint8_t **p,
                             size_t *len)
{
    if (need_more) {
        if (f->avail == f->n)
            return false;
        f->seed = f->seed * 1103515245u + 12345u;
        size_t step = f->seed ? 1 + (f->seed >> 16) % 17 : f->n;
        f->avail = f->avail + step > f->n ? f->n : f->avail + step;
    }
    *len = f->avail - f->start;
    free(f->copy);
    f->copy = malloc(*len ? *len : 1);
    CHECK(f->copy != NULL);
    if (*len)
        memcpy(f->copy, f->in + f->start, *len);
    *p = f->copy;
    return true;
}

/* The parser consumed `n` bytes of the window. */
static inline void feed_consume(feed *f, size_t n) { f->start += n; }

static inline void feed_free(feed *f)
{
    free(f->copy);
    f->copy = NULL;
}

#endif
