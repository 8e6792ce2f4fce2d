// Never ends on its own: a busy loop for --timeout and --fuel.
#include <stdio.h>

int main(void) {
    printf("spinning\n");
    fflush(stdout);
    volatile unsigned long long counter = 0;
    for (;;) {
        counter++;
    }
}
