// Traps inside a named function, so the backtrace can be checked for its name.
#include <stdio.h>

__attribute__((noinline)) void crash_here(int depth) {
    if (depth == 0) {
        __builtin_trap();
    }
    crash_here(depth - 1);
    printf("unreachable\n");
}

int main(void) {
    printf("about to trap\n");
    fflush(stdout);
    crash_here(3);
    return 0;
}
