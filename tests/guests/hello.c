// Prints a fixed greeting: the smallest end-to-end check of a Keep.
#include <stdio.h>

int main(void) {
    printf("Hello from a Keep!\n");
    return 0;
}
