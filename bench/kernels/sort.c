// Sorts 10,000,000 pseudo-random 32-bit integers with qsort; prints a checksum of the result.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int compare(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(void) {
    const size_t n = 10000000;
    uint32_t *v = malloc(n * sizeof *v);
    if (!v) return 1;
    uint32_t x = 88172645u;
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; v[i] = x; }
    qsort(v, n, sizeof *v, compare);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && v[i - 1] > v[i]) { printf("not sorted\n"); return 1; }
        sum = sum * 31 + v[i];
    }
    printf("%llu\n", (unsigned long long)sum);
    free(v);
    return 0;
}
