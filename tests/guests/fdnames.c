// Prints the Enarx descriptor variables, then writes one line to each of fd 1 and fd 2
// and reports whether fd 0 gives end of file.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    const char *count = getenv("FD_COUNT");
    const char *names = getenv("FD_NAMES");
    printf("FD_COUNT=%s\n", count ? count : "(unset)");
    printf("FD_NAMES=%s\n", names ? names : "(unset)");
    char c;
    ssize_t n = read(0, &c, 1);
    printf("stdin read returned %zd\n", n);
    fflush(stdout);
    fprintf(stderr, "to fd 2\n");
    return 0;
}
