/*
 * zipf.c - PRNG and zipfian generator of zipf.h.
 */
#include "zipf.h"

#include <math.h>

#include "common/err.h"

void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    /* One splitmix64 step spreads small seeds (1, 2, 3 per connection) over
     * the whole state so that neighbouring seeds give unrelated streams. */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545f4914f6cdd1dull;
}

uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

double bench_rng_double(bench_rng *r)
{
    return (double)(bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t bench_rng_below(bench_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift: unbiased enough for load generation (bias
     * below n / 2^64) and free of a division. */
    return (uint64_t)(((unsigned __int128)bench_rng_next(r) * n) >> 64);
}

double bench_zipf_zeta(uint64_t n, double theta)
{
    double sum = 0;
    for (uint64_t i = 1; i <= n; i++)
        sum += 1.0 / pow((double)i, theta);
    return sum;
}

int bench_zipf_init(bench_zipf *z, uint64_t n, double theta)
{
    if (n < 1 || !(theta > 0 && theta < 1))
        return CAIRN_ERR_INVALID;
    z->n = n;
    z->theta = theta;
    z->alpha = 1.0 / (1.0 - theta);
    z->zetan = bench_zipf_zeta(n, theta);
    double zeta2 = bench_zipf_zeta(n < 2 ? n : 2, theta);
    /* Gray's eta; for n <= 2 the closed form is never reached (ranks 0 and
     * 1 cover everything), so any finite value will do. */
    z->eta = n > 2 ? (1.0 - pow(2.0 / (double)n, 1.0 - theta)) /
                         (1.0 - zeta2 / z->zetan)
                   : 0.0;
    z->half_pow_theta = 1.0 + pow(0.5, theta);
    return CAIRN_OK;
}

uint64_t bench_zipf_rank(const bench_zipf *z, bench_rng *r)
{
    double u = bench_rng_double(r);
    double uz = u * z->zetan;
    if (uz < 1.0 || z->n == 1)
        return 0;
    if (uz < z->half_pow_theta || z->n == 2)
        return 1;
    uint64_t v = (uint64_t)((double)z->n *
                            pow(z->eta * u - z->eta + 1.0, z->alpha));
    return v < z->n ? v : z->n - 1;
}

uint64_t bench_fnv64(uint64_t v)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        h *= 0x100000001b3ull;
        v >>= 8;
    }
    return h;
}

uint64_t bench_zipf_next(const bench_zipf *z, bench_rng *r)
{
    return bench_fnv64(bench_zipf_rank(z, r)) % z->n;
}
