// SHA-256 (FIPS 180-4) over 64 MiB of generated data; prints the digest so native and Wasm
// runs can be checked to compute the same thing.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tests/guests/sha256.h"

int main(void) {
    const size_t size = 64u << 20;
    uint8_t *data = malloc(size);
    if (!data) return 1;
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    uint32_t h[8];
    sha256(data, size, h);
    for (int i = 0; i < 8; i++) printf("%08x", h[i]);
    printf("\n");
    free(data);
    return 0;
}
