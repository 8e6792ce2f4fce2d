// Misbehaviour on demand for the wasi:http test services: computing forever, and
// allocating until no memory is left.
#ifndef KEEP_GUESTS_MISBEHAVE_H
#define KEEP_GUESTS_MISBEHAVE_H

#include <stdlib.h>
#include <string.h>

// Computes forever: no host call, so only the epoch (or fuel) can stop it.
static void spin(void) {
    volatile unsigned long counter = 0;
    for (;;) counter++;
}

// The blocks `bomb` allocated, chained through their first word: kept reachable so that
// the compiler cannot elide the allocations.
static void *volatile allocated;

// Allocates 1 MiB blocks and writes to them until malloc fails, then aborts.
static void bomb(void) {
    for (;;) {
        char *block = malloc(1 << 20);
        if (!block) abort();
        memset(block, 0x5a, 1 << 20);
        *(void **)block = allocated;
        allocated = block;
    }
}

#endif
