/*
 * seq.h - the 16-byte sequencer: the version of every value and tombstone.
 *
 * Layout, big-endian so that byte order equals time order (memcmp works):
 *
 *     bytes 0..7    hybrid-logical-clock time, nanoseconds since the epoch
 *     bytes 8..11   per-node counter within that nanosecond
 *     bytes 12..15  node id of the node that assigned it
 *
 * Rules (DESIGN.md, "Sequencer"):
 *  1. A range leader assigns a sequencer to each write when it proposes it;
 *     last write wins means the highest sequencer wins.
 *  2. seq_next() never returns a value <= any value it returned before on the
 *     same clock, even if the wall clock steps backwards: the HLC keeps the
 *     larger of (wall time, last time) and counts within a nanosecond.
 *  3. seq_observe() moves the clock past a sequencer seen elsewhere (a value
 *     replicated from another leader, a copied record during a move), so the
 *     next local sequencer is higher than anything this node has seen.
 *  4. A node restarting re-observes the sequencers of the entries it replays,
 *     so rule 2 holds across restarts for every value the node holds.
 *
 * A seq_clock is not thread-safe: a node owns one and uses it from its loop.
 */
#ifndef CAIRN_SEQ_H
#define CAIRN_SEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEQ_LEN 16
#define SEQ_HEX_LEN 32

typedef struct seq {
    uint8_t bytes[SEQ_LEN];
} seq;

/* A source of wall-clock nanoseconds; injectable for tests. */
typedef uint64_t (*seq_now_fn)(void *arg);

typedef struct seq_clock seq_clock;

/* Create a clock for node `node_id`. `now` NULL means CLOCK_REALTIME.
 * Returns NULL when out of memory. */
seq_clock *seq_clock_new(uint32_t node_id, seq_now_fn now, void *now_arg);

/* A clock on CLOCK_REALTIME shifted by `offset_ms` (may be negative): the
 * test-only `cairn node --clock-offset-ms`, which simulates a node whose wall
 * clock is wrong, for the fault suite (tests/faults). The HLC rules still
 * hold. Returns NULL when out of memory. */
seq_clock *seq_clock_new_offset(uint32_t node_id, int64_t offset_ms);

void seq_clock_free(seq_clock *c);

/* The next sequencer of this node: strictly greater than every sequencer
 * previously returned or observed by this clock (rules 2 and 3). */
seq seq_next(seq_clock *c);

/* Move the clock past `s` (rule 3). Never moves it backwards. */
void seq_observe(seq_clock *c, const seq *s);

/* The clock's high-water mark: a sequencer >= every one it returned or
 * observed so far. Observing it later (e.g. after a restart, from where it
 * was saved) keeps rule 2 for all of them. */
seq seq_clock_mark(const seq_clock *c);

/* memcmp order: <0, 0, >0. */
int seq_cmp(const seq *a, const seq *b);

/* The all-zero sequencer sorts below every assigned one. */
seq seq_zero(void);
bool seq_is_zero(const seq *s);

/* Build a sequencer from its parts (tests, decoding). */
seq seq_make(uint64_t time_ns, uint32_t counter, uint32_t node_id);

uint64_t seq_time(const seq *s);
uint32_t seq_counter(const seq *s);
uint32_t seq_node(const seq *s);

/* Lower-case hex text, 32 digits plus NUL. */
void seq_to_hex(const seq *s, char out[SEQ_HEX_LEN + 1]);

/* Parse exactly 32 hex digits (either case). 0 or CAIRN_ERR_INVALID. */
int seq_from_hex(const char *hex, size_t len, seq *out);

#endif
