// Sorts 10,000,000 pseudo-random 32-bit integers; prints a checksum of the result.
// The sort is in this file (quicksort, median of three, insertion sort for short runs) so the
// native and Wasm builds run the same algorithm: libc's qsort differs between glibc and
// wasi-libc (musl's smoothsort), which would measure the libraries, not the runtimes.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void insertion_sort(uint32_t *v, size_t n) {
    for (size_t i = 1; i < n; i++) {
        uint32_t x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static void swap(uint32_t *a, uint32_t *b) {
    uint32_t t = *a;
    *a = *b;
    *b = t;
}

static void quicksort(uint32_t *v, size_t n) {
    while (n > 16) {
        size_t mid = n / 2;
        if (v[mid] < v[0]) swap(&v[mid], &v[0]);
        if (v[n - 1] < v[0]) swap(&v[n - 1], &v[0]);
        if (v[n - 1] < v[mid]) swap(&v[n - 1], &v[mid]);
        uint32_t pivot = v[mid];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i >= j) break;
            swap(&v[i], &v[j]);
            i++;
            j--;
        }
        // Recurse into the smaller side, loop on the larger: stack depth stays logarithmic.
        size_t left = j + 1;
        if (left < n - left) {
            quicksort(v, left);
            v += left;
            n -= left;
        } else {
            quicksort(v + left, n - left);
            n = left;
        }
    }
    insertion_sort(v, n);
}

int main(void) {
    const size_t n = 10000000;
    uint32_t *v = malloc(n * sizeof *v);
    if (!v) return 1;
    uint32_t x = 88172645u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v[i] = x;
    }
    quicksort(v, n);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && v[i - 1] > v[i]) {
            printf("not sorted\n");
            return 1;
        }
        sum = sum * 31 + v[i];
    }
    printf("%llu\n", (unsigned long long)sum);
    free(v);
    return 0;
}
