// Allocates and touches memory until allocation fails; exits 3 if malloc ever returns NULL
// (which a memory limit that traps must prevent from happening).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Every block is published here so the compiler cannot drop the allocations.
char *volatile last_block;

int main(void) {
    for (unsigned long mib = 1;; mib++) {
        char *block = malloc(1 << 20);
        if (!block) {
            printf("malloc failed after %lu MiB\n", mib);
            return 3;
        }
        memset(block, 0xa5, 1 << 20);
        last_block = block;
    }
}
