/*
 * crc32c.c - CRC-32C in hardware when the CPU has SSE4.2, else a table.
 */
#include "crc32c.h"

#include <stdbool.h>
#include <string.h>

/* The reflected Castagnoli polynomial. */
#define POLY 0x82F63B78u

static uint32_t table[256];
static bool use_hw;

/* Set once, before main: both are constant after that, so threads may
 * share them without locks. */
__attribute__((constructor)) static void crc32c_init(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init(); /* constructors may run before libgcc's */
    use_hw = __builtin_cpu_supports("sse4.2");
#endif
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        table[i] = c;
    }
}

static uint32_t soft(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--)
        crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xFFu];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t hard(uint32_t crc,
                                                       const uint8_t *p,
                                                       size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* unaligned-safe; x86 is little-endian */
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t crc32c_extend(uint32_t crc, const void *p, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (use_hw)
        return ~hard(crc, p, len);
#endif
    return ~soft(crc, p, len);
}
