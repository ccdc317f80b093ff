/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every record the index
 * stores hold (engine.h).
 *
 * Why a checksum of our own: LMDB 0.9 keeps no checksums, so a flipped bit
 * in its file would be served as data. RocksDB checks its blocks, but one
 * record format for both engines keeps the check in one place (engine.c).
 * Why Castagnoli: it is what the x86-64 SSE4.2 instruction computes (about
 * 8 bytes a cycle), and it is the polynomial of iSCSI, ext4 and RocksDB.
 * Without SSE4.2 a table-driven version computes the same values.
 */
#ifndef CAIRN_CRC32C_H
#define CAIRN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend `crc` (0 to start) over `len` bytes of `p`. crc32c of a message
 * split in parts is crc32c_extend over the parts in order. */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t len);

/* crc32c of one buffer. The check value: crc32c("123456789") ==
 * 0xE3069283. */
static inline uint32_t crc32c(const void *p, size_t len)
{
    return crc32c_extend(0, p, len);
}

#endif
