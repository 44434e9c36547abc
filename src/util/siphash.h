/* SipHash-2-4 with a 128-bit tag (Aumasson and Bernstein): a keyed hash that one who does not know
 * the key cannot make collide. */
#ifndef VMSNAP_SIPHASH_H
#define VMSNAP_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct siphash_tag {
    uint64_t lo, hi;
};

/* The tag of data[0..len) under the 16-byte key: the reference's 16 output bytes are lo's 8 then
 * hi's 8, each little-endian. */
struct siphash_tag siphash128(const unsigned char key[16], const void *data, size_t len);

#endif
